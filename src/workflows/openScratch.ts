// A preview of the database as of a moment (docs/operations/scratch.md): a backup cloned onto a
// scratch server, replayed to the moment and paused there, read-only, for a DBA to query before
// choosing a restore point. Its connection is in the result and the `progress` query; it ends with
// the `close` signal, at its ttl (counted from when it is open), or by a cancel, and is removed.
import { condition, setHandler } from '@temporalio/workflow';
import { localStep, quickStep } from './activityProxies';
import { workflowClockMs } from './clock';
import { trackProgress } from './progress';
import { tagWorkflow } from './searchAttributes';
import { parseOpenScratchInput } from './scratchInput';
import { withinTimeLimit, withScratch } from './scratchLifecycle';
import { formatDuration } from '../common/durations';
import { closeScratchSignal } from '../contract/definitions';
import type { OpenScratchInput, OpenScratchResult } from '../contract/operations/scratchRestores';
import { OPERATION_LABELS, WORKFLOW_TYPES } from '../contract/operations/registry';

export type { OpenScratchInput, OpenScratchResult };

/** How long the clone and the replay may take before the preview opens. */
const PREPARATION_MS = 6 * 3_600_000;

export async function openScratchWorkflow(input: OpenScratchInput): Promise<OpenScratchResult> {
  const opts = parseOpenScratchInput(input);
  const { cluster } = opts;
  let closed = false;
  setHandler(closeScratchSignal, () => {
    closed = true;
  });
  tagWorkflow(cluster, OPERATION_LABELS.openScratch);
  const progress = trackProgress(OPERATION_LABELS.openScratch, cluster);
  progress.step('resolve', 'looking the cluster up in the worker catalog');
  await localStep.resolveCluster({ cluster });
  const lifetimeMs = opts.ttlMs + PREPARATION_MS;
  return withinTimeLimit(`${WORKFLOW_TYPES.openScratch} of cluster "${cluster}"`, lifetimeMs, async () => {
    const asBackup = 'backup' in opts.asOf;
    const outcome = await withScratch(
      {
        plan: {
          cluster,
          ...('backup' in opts.asOf
            ? { backup: opts.asOf.backup, target: 'immediate' as const }
            : { target: opts.asOf }),
          // A moment in time or an LSN includes what committed at it; an xid is the bad one: stop before it.
          inclusive: !asBackup && !('xid' in opts.asOf),
          action: 'pause',
        },
        operation: OPERATION_LABELS.openScratch,
        progress,
        lifetimeMs,
      },
      async (scratch) => {
        const opened = await quickStep.scratchConnection({ cluster, scratchId: scratch.scratchId });
        progress.note({ host: opened.host, port: opened.port, user: opened.user, database: opened.database });
        progress.step(
          'open',
          `open, read-only, as of ${scratch.plan.stopLsn ?? scratch.recovery.replayLsn ?? 'the backup'}: ${opened.portForward ? `${opened.portForward}, then ` : ''}${opened.psql}. Ends with the "close" signal (pgops scratch close) or in ${formatDuration(opts.ttlMs)}`,
        );
        const openedAt = workflowClockMs();
        const byClose = await condition(() => closed, opts.ttlMs);
        return {
          opened,
          ended: byClose ? ('closed' as const) : ('ttl' as const),
          openMs: workflowClockMs() - openedAt,
          backup: scratch.plan.backup.id,
        };
      },
    );
    const { opened, ended, openMs, backup } = outcome.value;
    progress.step(
      'done',
      `closed (${ended}) after ${formatDuration(Math.round(openMs / 1000) * 1000)}; scratch instance removed`,
    );
    return { cluster, backup, opened, ended, openMs, scratch: outcome.scratch };
  });
}
