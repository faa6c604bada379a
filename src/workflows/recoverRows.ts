// Rows and databases back from a backup (docs/operations/scratch.md): the newest backup before the
// target cloned onto a scratch server, replayed to just before the target (before a DROP DATABASE's
// record, which acts before its commit), the tables exported and the databases dumped from it, the
// scratch removed; then, only if asked, the missing rows inserted into the running primary and a
// dumped database restored under a new name. The cluster's lock is taken for those writes only:
// production is never stopped or locked for the replay.
import { localStep, longStep } from './activityProxies';
import { trackProgress } from './progress';
import { tagWorkflow } from './searchAttributes';
import { withClusterLock } from './clusterLock';
import { resolveIncident } from './pitrIncident';
import { parseRecoverRowsInput, type ParsedRecoverRowsInput } from './scratchInput';
import { withinTimeLimit, withScratch } from './scratchLifecycle';
import type { ProgressReporter } from './progress';
import type { RecoveryTarget } from '../common/recoveryTarget';
import type { RecoverRowsInput, RecoverRowsResult } from '../contract/operations/scratchRestores';
import { OPERATION_LABELS, WORKFLOW_TYPES } from '../contract/operations/registry';

export type { RecoverRowsInput, RecoverRowsResult };

const TYPE = WORKFLOW_TYPES.recoverRows;

export async function recoverRowsWorkflow(input: RecoverRowsInput): Promise<RecoverRowsResult> {
  const opts = parseRecoverRowsInput(input);
  const { cluster } = opts;
  tagWorkflow(cluster, OPERATION_LABELS.recoverRows);
  const progress = trackProgress(OPERATION_LABELS.recoverRows, cluster);
  progress.step('resolve', 'looking the cluster up in the worker catalog');
  await localStep.resolveCluster({ cluster });
  return withinTimeLimit(`${TYPE} of cluster "${cluster}"`, opts.maxDurationMs, async () => {
    const target: RecoveryTarget =
      'incident' in opts.target
        ? await resolveIncident(cluster, opts.target.incident, progress, 'Nothing was changed')
        : opts.target;
    const outcome = await withScratch(
      {
        plan: { cluster, backup: opts.backup, target, inclusive: opts.inclusive, action: 'pause' },
        operation: OPERATION_LABELS.recoverRows,
        progress,
        lifetimeMs: opts.maxDurationMs,
      },
      async (scratch) => {
        const ref = { cluster, scratchId: scratch.scratchId, exportDir: opts.exportDir };
        let exported;
        let dumps;
        if (opts.tables.length > 0) {
          progress.step('export', `exporting ${opts.tables.join(', ')} as of the target`);
          exported = await longStep.exportFromScratch({ ...ref, tables: opts.tables });
        }
        if (opts.databases.length > 0) {
          progress.step('dump', `pg_dump -Fc of ${opts.databases.join(', ')} as of the target`);
          dumps = await longStep.dumpFromScratch({ ...ref, databases: opts.databases });
        }
        return { exported, dumps, backup: scratch.plan.backup.id, recovery: scratch.recovery, plan: scratch.plan };
      },
    );
    const { exported, dumps, backup, recovery, plan } = outcome.value;
    const written = await writeToPrimary(opts, progress, backup, exported, dumps);
    progress.step('done', doneLine(opts, written));
    return {
      cluster,
      backup,
      target,
      inclusive: opts.inclusive,
      stopped: {
        replayLsn: recovery.replayLsn,
        note: [recovery.note, ...plan.notes].filter(Boolean).join('; '),
        recoveryMs: recovery.ms,
      },
      ...(exported && { exported }),
      ...(dumps && { dumps }),
      ...written,
      scratch: outcome.scratch,
    };
  });
}

type Exports = Awaited<ReturnType<typeof longStep.exportFromScratch>>;
type Dumps = Awaited<ReturnType<typeof longStep.dumpFromScratch>>;

/** The only writes to production, under the cluster's lock: the missing rows, the database under its new name. */
async function writeToPrimary(
  opts: ParsedRecoverRowsInput,
  progress: ProgressReporter,
  backup: string,
  exported: Exports | undefined,
  dumps: Dumps | undefined,
): Promise<Pick<RecoverRowsResult, 'inserted' | 'restoredAs'>> {
  const { cluster } = opts;
  const dump = dumps?.[0];
  const insert = opts.insertMissing && exported !== undefined;
  const restore = opts.restoreAs !== undefined && dump !== undefined;
  if (!insert && !restore) return {};
  return withClusterLock(cluster, TYPE, { ...opts.lockWait, progress }, async () => {
    const written: Pick<RecoverRowsResult, 'inserted' | 'restoredAs'> = {};
    if (insert) {
      progress.step('insert', 'inserting into the primary the rows it lacks, one transaction per table');
      written.inserted = await longStep.insertRecoveredRows({ cluster, backup, exports: exported });
    }
    if (restore) {
      progress.step('restore-as', `restoring database ${dump.database} into the primary as ${opts.restoreAs}`);
      const restored = await longStep.restoreDatabaseAs({ cluster, backup, dump, name: opts.restoreAs! });
      written.restoredAs = { database: restored.database, from: restored.from };
    }
    return written;
  });
}

function doneLine(opts: ParsedRecoverRowsInput, written: Pick<RecoverRowsResult, 'inserted' | 'restoredAs'>): string {
  const parts = [
    opts.tables.length > 0 && `${opts.tables.length} table(s) exported`,
    written.inserted && `${written.inserted.reduce((n, r) => n + r.inserted, 0)} row(s) inserted into the primary`,
    opts.databases.length > 0 && `${opts.databases.length} database(s) dumped`,
    written.restoredAs && `database ${written.restoredAs.from} restored as ${written.restoredAs.database}`,
  ].filter(Boolean);
  return parts.join(', ');
}
