// A scratch instance's life inside a workflow: planned (backup, timeline, stop point), cloned,
// started and recovered, used by the workflow's body, and removed whatever happens (success,
// failure, cancel, the run's time limit). What an earlier run of the cluster left behind (a
// crashed or terminated workflow's scratch) is removed first.
import { ApplicationFailure, CancellationScope, isCancellation, sleep, workflowInfo } from '@temporalio/workflow';
import type { PgOpsActivities } from '../activities';
import { cleanupStep, longStep, replayStep } from './activityProxies';
import { workflowClockMs } from './clock';
import type { ProgressReporter } from './progress';
import { formatDuration } from '../common/durations';
import type { ScratchRecord } from '../contract/scratch';

type Result<K extends keyof PgOpsActivities> = Awaited<ReturnType<PgOpsActivities[K]>>;
type PlanInput = Parameters<PgOpsActivities['planScratch']>[0];

export interface OpenedScratch {
  cluster: string;
  scratchId: string;
  plan: Result<'planScratch'>;
  record: ScratchRecord;
  recovery: Result<'watchScratchRecovery'>;
  /** From the start of the clone to a usable instance. */
  timeToUsableMs: number;
}

export interface ScratchOutcome<T> {
  value: T;
  scratch: { id: string; methods: string[]; removed: boolean };
}

/** The scratch id of this run: the same for every retry of its steps, unique per run. */
export function scratchIdOfThisRun(): string {
  return `pgops-scratch-${workflowInfo().runId.replace(/-/g, '').slice(0, 8).toLowerCase()}`;
}

export async function withScratch<T>(
  args: {
    plan: PlanInput;
    operation: string;
    progress: ProgressReporter;
    lifetimeMs: number;
    /** Told the plan before the clone begins. */
    onPlanned?: (plan: Result<'planScratch'>) => void;
  },
  body: (scratch: OpenedScratch) => Promise<T>,
): Promise<ScratchOutcome<T>> {
  const { plan: planInput, progress } = args;
  const cluster = planInput.cluster;
  const info = workflowInfo();
  progress.step('plan', 'choosing the backup, its timeline and where recovery stops');
  const plan = await longStep.planScratch(planInput);
  args.onPlanned?.(plan);
  progress.note({ backupId: plan.backup.id, ...(plan.stopLsn && { stopLsn: plan.stopLsn }) });
  const scratchId = scratchIdOfThisRun();
  progress.step('gc', 'removing scratch instances earlier runs of this cluster left behind');
  // A long step: removing what earlier runs left (copies, mounts) can outlast a quick step's minute.
  await longStep.collectScratch({ cluster, exceptOwner: info.workflowId }).catch(() => undefined);
  let record: ScratchRecord;
  let value: T;
  let removed = false;
  try {
    progress.step('clone', `cloning backup ${plan.backup.id} into scratch instance ${scratchId}`);
    const started = workflowClockMs();
    record = await longStep.createScratch({
      cluster,
      scratchId,
      backup: plan.backup.id,
      recovery: plan.recovery,
      owner: { workflowId: info.workflowId, runId: info.runId, operation: args.operation },
      expiresAt: new Date(started + args.lifetimeMs + 3_600_000).toISOString(),
    });
    progress.note({ scratchId, cloneMs: workflowClockMs() - started });
    progress.step('start', `starting the scratch server on its copy (${record.methods.join('; ')})`);
    await longStep.startScratch({ cluster, scratchId });
    progress.step('recover', `replaying archived WAL on the scratch server ${describeStop(plan)}`);
    const recovery = await replayStep.watchScratchRecovery({ cluster, scratchId, targetLsn: plan.stopLsn });
    const timeToUsableMs = workflowClockMs() - started;
    progress.note({
      timeToUsableMs,
      recoveryMs: recovery.ms,
      ...(recovery.replayLsn && { replayLsn: recovery.replayLsn }),
    });
    value = await body({ cluster, scratchId, plan, record, recovery, timeToUsableMs });
  } finally {
    progress.step('remove', `removing scratch instance ${scratchId}`);
    removed = (await CancellationScope.nonCancellable(() => cleanupStep.removeScratch({ cluster, scratchId }))).removed;
  }
  return { value, scratch: { id: scratchId, methods: record.methods, removed } };
}

function describeStop(plan: Result<'planScratch'>): string {
  const target = plan.recovery.target;
  if (target === 'immediate') return 'to consistency';
  if (target === 'end') return 'to the end of the archive';
  return plan.stopLsn ? `to ${plan.stopLsn}` : 'to the target';
}

/**
 * Runs `fn`, cancelled after `ms` with a failure saying so (its own cleanup still runs: it is
 * non-cancellable). A cancel of the workflow cancels it too, and stays a cancel.
 */
export async function withinTimeLimit<T>(what: string, ms: number, fn: () => Promise<T>): Promise<T> {
  let timedOut = false;
  const work = new CancellationScope();
  const timer = new CancellationScope();
  timer
    .run(() => sleep(ms))
    .then(
      () => {
        timedOut = true;
        work.cancel();
      },
      () => undefined,
    );
  try {
    return await work.run(fn);
  } catch (err) {
    if (timedOut && isCancellation(err))
      throw ApplicationFailure.nonRetryable(
        `${what} gave up after its time limit (maxDuration ${formatDuration(ms)}); its scratch instance was removed. Nothing in production was changed.`,
        'TimedOut',
      );
    throw err;
  } finally {
    timer.cancel();
  }
}
