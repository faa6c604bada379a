// Restore drill (docs/operations/scratch.md): a backup cloned onto a scratch server, recovered to
// consistency (or through the whole archive), checked with pg_amcheck, pg_checksums and the
// archive's coverage, timed, and removed. The verdict is kept in the backup's record; a failed
// drill fails the run with its findings at the top. Never the cluster's lock: a scheduled drill
// never blocks a stop, a backup or a restore.
import { ApplicationFailure, isCancellation, workflowInfo } from '@temporalio/workflow';
import { localStep, longStep, quickStep } from './activityProxies';
import { workflowClockMs } from './clock';
import { trackProgress } from './progress';
import { tagWorkflow } from './searchAttributes';
import { parseVerifyBackupInput } from './scratchInput';
import { withinTimeLimit, withScratch } from './scratchLifecycle';
import type { BackupVerification, DrillChecks } from '../contract/scratch';
import type { VerifyBackupInput, VerifyBackupResult } from '../contract/operations/scratchRestores';
import { OPERATION_LABELS, WORKFLOW_TYPES } from '../contract/operations/registry';

export type { VerifyBackupInput, VerifyBackupResult };

const TYPE = WORKFLOW_TYPES.verifyBackup;

export async function verifyBackupWorkflow(input: VerifyBackupInput): Promise<VerifyBackupResult> {
  const opts = parseVerifyBackupInput(input);
  const { cluster } = opts;
  tagWorkflow(cluster, OPERATION_LABELS.verifyBackup);
  const progress = trackProgress(OPERATION_LABELS.verifyBackup, cluster);
  progress.step('resolve', 'looking the cluster up in the worker catalog');
  await localStep.resolveCluster({ cluster });
  const began = workflowClockMs();
  let backup: string | undefined;
  return withinTimeLimit(`${TYPE} of cluster "${cluster}"`, opts.maxDurationMs, async () => {
    let outcome;
    try {
      outcome = await withScratch(
        {
          plan: {
            cluster,
            backup: opts.backup,
            target: opts.replayToEnd ? 'end' : 'immediate',
            inclusive: false,
            action: 'promote',
          },
          operation: OPERATION_LABELS.verifyBackup,
          progress,
          lifetimeMs: opts.maxDurationMs,
          onPlanned: (plan) => (backup = plan.backup.id),
        },
        async (scratch) => {
          progress.step('check', checking(opts));
          const checks = await longStep.checkScratch({
            cluster,
            scratchId: scratch.scratchId,
            backup: scratch.plan.backup.id,
            amcheck: opts.amcheck,
            checksums: opts.checksums,
            archive: opts.archive,
          });
          return {
            checks,
            timeToUsableMs: scratch.timeToUsableMs,
            recoveryMs: scratch.recovery.ms,
            replayLsn: scratch.recovery.replayLsn,
          };
        },
      );
    } catch (err) {
      // A refusal of the plan (no backup, no archive) is not a drill that failed: nothing was cloned.
      if (isCancellation(err) || backup === undefined) throw err;
      // The copy did not come up (recovery stopped, a segment missing, a clone that failed): a failed drill.
      const finding = `the backup did not recover on a scratch server: ${messageOf(err)}`;
      await keep(cluster, backup, failedVerification(finding, workflowClockMs() - began, opts.replayToEnd));
      throw ApplicationFailure.nonRetryable(`restore drill of backup ${backup} failed: ${finding}`, 'DrillFailed');
    }
    const { checks, timeToUsableMs, recoveryMs, replayLsn } = outcome.value;
    const verified = backup as string;
    const findings = findingsOf(checks);
    const verification: BackupVerification = {
      at: new Date(workflowClockMs()).toISOString(),
      ok: findings.length === 0,
      findings,
      timeToUsableMs,
      recoveryMs,
      replayedTo: opts.replayToEnd ? 'end of archive' : 'consistency',
      replayLsn,
      checks,
      workflowId: workflowInfo().workflowId,
    };
    await keep(cluster, verified, verification);
    if (!verification.ok)
      throw ApplicationFailure.nonRetryable(
        `restore drill of backup ${verified} failed: ${findings.join('; ')}`,
        'DrillFailed',
        { verification },
      );
    progress.step(
      'done',
      `backup ${verified} restores: usable after ${Math.round(timeToUsableMs / 1000)}s, every check passed`,
    );
    return { cluster, backup: verified, verification, checks, scratch: outcome.scratch };
  });
}

function checking(opts: { amcheck: boolean; checksums: boolean; archive: boolean }): string {
  const what = [
    opts.amcheck && 'pg_amcheck over every database',
    opts.archive && 'the WAL archive from the backup on',
    opts.checksums && 'pg_checksums on the stopped copy',
  ].filter(Boolean);
  return what.length ? `checking ${what.join(', ')}` : 'no checks asked for: the copy recovered';
}

/** One line per problem found, the most telling first. */
export function findingsOf(checks: DrillChecks): string[] {
  const findings: string[] = [];
  if (checks.archive && !checks.archive.ok) findings.push(`WAL archive: ${checks.archive.note}`);
  if (checks.amcheck && !checks.amcheck.ok)
    findings.push(`pg_amcheck found corruption: ${checks.amcheck.problems.slice(0, 5).join(' | ')}`);
  if (checks.checksums && !checks.checksums.ok)
    findings.push(
      `pg_checksums: ${checks.checksums.badBlocks} bad block(s): ${checks.checksums.problems.slice(0, 5).join(' | ')}`,
    );
  return findings;
}

function failedVerification(finding: string, ms: number, replayToEnd: boolean): BackupVerification {
  return {
    at: new Date(workflowClockMs()).toISOString(),
    ok: false,
    findings: [finding],
    timeToUsableMs: ms,
    recoveryMs: 0,
    replayedTo: replayToEnd ? 'end of archive' : 'consistency',
    checks: {},
    workflowId: workflowInfo().workflowId,
  };
}

async function keep(cluster: string, backup: string, verification: BackupVerification): Promise<void> {
  await quickStep.recordVerification({ cluster, backup, verification });
}

function messageOf(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  // The activity's own message, not the wrappers' ("Activity task failed").
  while (e?.cause && typeof e.cause === 'object') e = e.cause as typeof e;
  return e?.message ?? String(err);
}
