// Delayed-replica PITR (docs/runbooks/delayed-replica-pitr.md): pause at once, check the target, set it with
// delay 0 and action pause, restart, watch replay stop just before the bad transaction, then
// export the lost rows, promote, or hold for inspection; finally return to being delayed.
import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  isCancellation,
  patched,
  setHandler,
  workflowInfo,
  CancellationScope,
  CancelledFailure,
} from '@temporalio/workflow';
import type { RecoveryTarget } from '../common/recoveryTarget';
import { describeRecoveryTarget } from '../common/recoveryTarget';
import { resumeSignal } from '../contract/definitions';
import { localStep, longStep, quickStep, replayStep, urgentLocalStep, urgentStep } from './activityProxies';
import { trackProgress, type ProgressReporter } from './progress';
import { tagWorkflow } from './searchAttributes';
import { withClusterLock, type HeldLock } from './clusterLock';
import { parsePitrInput, type ParsedPitrInput } from './pitrInput';
import { resolveIncident } from './pitrIncident';
import type {
  DelayedReplicaPitrInput,
  DelayedReplicaPitrResult,
  IncidentQuery,
} from '../contract/operations/delayedReplicaPitr';
import type { PgOpsActivities } from '../activities';
import { OPERATION_LABELS, WORKFLOW_TYPES } from '../contract/operations/registry';

type Result<K extends keyof PgOpsActivities> = Awaited<ReturnType<PgOpsActivities[K]>>;

export type { DelayedReplicaPitrResult };

const OPERATION = OPERATION_LABELS.pitr;

export async function delayedReplicaPitrWorkflow(input: DelayedReplicaPitrInput): Promise<DelayedReplicaPitrResult> {
  const opts = parsePitrInput(input);
  const { cluster } = opts;
  tagWorkflow(cluster, OPERATION);
  const progress = trackProgress(OPERATION, cluster);
  let resumeRequested = false;
  setHandler(resumeSignal, () => void (resumeRequested = true));
  const run: PitrRun = { opts, cluster, progress };

  const paused = await pauseReplayAtOnce(run);
  const givenTarget = 'incident' in opts.target ? undefined : opts.target;
  const earlyCheck = checkBesideTheLock(run, givenTarget, paused.localFirstSteps);

  return withClusterLock(cluster, WORKFLOW_TYPES.pitr, { ...opts.lockWait, progress }, async (lock) => {
    const { target, targetText, checked } = await checkTargetUnderLock(run, lock, {
      givenTarget,
      earlyCheck,
      localFirstSteps: paused.localFirstSteps,
    });
    const originalDelay = await setTarget(run, lock, checked, earlyCheck !== undefined);
    const backToDelayOnCancel = returningToDelayOnCancel(run, originalDelay);
    const reached = await replayToTarget(run, { target, targetText, checked }, backToDelayOnCancel);
    progress.step(
      'at-target',
      `replay paused at ${reached.replayLsn} (last commit replayed ${reached.replayTimestamp ?? 'none'})`,
      { replayLsn: reached.replayLsn },
    );
    const result: DelayedReplicaPitrResult = {
      cluster,
      target,
      inclusive: opts.inclusive,
      pause: { latencyMs: paused.latencyMs, state: paused.pause.pauseState, replayLsn: paused.pause.replayLsn },
      checked,
      reached,
      finalState: 'paused at target',
    };
    return finishAtTarget(run, result, { originalDelay, backToDelayOnCancel, resumed: () => resumeRequested });
  });
}

/** One run of the workflow: its parsed input, its cluster and its progress. */
interface PitrRun {
  opts: ParsedPitrInput;
  cluster: string;
  progress: ProgressReporter;
}

type Checked = Result<'checkPitrTarget'>;
type OriginalDelay = Result<'applyPitrTarget'>['originalDelay'];
type EarlyCheck = Promise<{ checked: Checked } | { failure: unknown }>;
/** Runs a step; a cancel during it returns the replica to its delay first (see returningToDelayOnCancel). */
type BackToDelayOnCancel = <T>(body: () => Promise<T>) => Promise<T>;

/** Step 1, before even the lock: pause replay on the delayed replica. */
async function pauseReplayAtOnce({ cluster, progress }: PitrRun) {
  // Step 1, before even the lock: a pause is idempotent and harmless, and every second it waits
  // the delay brings the bad commit closer to being applied.
  progress.step('pause', 'pausing WAL replay on the delayed replica');
  // The pause and the inspection are local activities since 'local-pause-and-inspect' (no
  // activity task round trip each); runs begun before that keep their activities. The lock is
  // requested only once the pause is done: asked for beside it, it slowed the pause by ~15 ms.
  const localFirstSteps = patched('local-pause-and-inspect');
  const pause = await (localFirstSteps ? urgentLocalStep : urgentStep).pauseReplicaReplay({ cluster });
  const latencyMs = Date.parse(pause.pausedAt) - workflowInfo().startTime.getTime();
  progress.step('paused', `replay ${pause.pauseState}${pause.replayLsn ? ` at ${pause.replayLsn}` : ''}`, {
    pauseLatencyMs: latencyMs,
    replayLsnAtPause: pause.replayLsn,
  });
  return { pause, latencyMs, localFirstSteps };
}

/** The check of a target given as such, started beside the lock's request (undefined: after it). */
function checkBesideTheLock(
  { opts, cluster }: PitrRun,
  givenTarget: RecoveryTarget | undefined,
  localFirstSteps: boolean,
): EarlyCheck | undefined {
  // Since 'check-beside-lock', a target given as such is checked (a read: replica, archive,
  // primary) while the lock is asked for, in a local activity beside the lock's, instead of
  // after it. Its verdict stands if the lock was granted at once and replay has not moved since
  // (inspectReplica, under the lock, reads the same position); otherwise it is checked again.
  return localFirstSteps && givenTarget && patched('check-beside-lock')
    ? localStep.checkPitrTarget({ cluster, target: givenTarget, inclusive: opts.inclusive, then: opts.then }).then(
        (checked) => ({ checked }),
        (failure: unknown) => ({ failure }),
      )
    : undefined;
}

/** Under the lock: inspect the replica, find the incident's transaction if asked to, and check the target. */
async function checkTargetUnderLock(
  { opts, cluster, progress }: PitrRun,
  lock: HeldLock,
  given: { givenTarget: RecoveryTarget | undefined; earlyCheck: EarlyCheck | undefined; localFirstSteps: boolean },
): Promise<{ target: RecoveryTarget; targetText: string; checked: Checked }> {
  const { givenTarget, earlyCheck } = given;
  const replica = await (given.localFirstSteps ? localStep : quickStep).inspectReplica({ cluster });
  progress.note({ originalDelay: replica.delay });
  const target =
    givenTarget ?? (await resolveIncident(cluster, (opts.target as { incident: IncidentQuery }).incident, progress));
  const targetText = describeRecoveryTarget(target, opts.inclusive);

  progress.step('check', `checking that the replica can still stop at ${targetText}`);
  const early = await earlyCheck;
  const earlyStands =
    early !== undefined &&
    lock.grantedAt !== undefined &&
    ('checked' in early ? early.checked.replayLsnAtCheck === replica.replayLsn : isPrecondition(early.failure));
  if (early && earlyStands && 'failure' in early) throw early.failure;
  const checked =
    early && earlyStands && 'checked' in early
      ? early.checked
      : await quickStep.checkPitrTarget({ cluster, target, inclusive: opts.inclusive, then: opts.then });
  progress.note({
    ...(checked.targetLsn ? { targetLsn: checked.targetLsn } : {}),
    ...(checked.targetTime ? { targetTime: checked.targetTime } : {}),
  });
  return { target, targetText, checked };
}

/** Writes the target with no delay and action pause; returns the delay to restore. */
async function setTarget(
  { cluster, progress }: PitrRun,
  lock: HeldLock,
  checked: Checked,
  checkedBesideTheLock: boolean,
): Promise<OriginalDelay> {
  if (checked.note) progress.note({ note: checked.note });
  const applied = describeRecoveryTarget(checked.effectiveTarget, checked.effectiveInclusive);
  progress.step(
    'set-target',
    `writing ${applied} with recovery_min_apply_delay = 0 and recovery_target_action = pause`,
  );
  const { originalDelay } = await quickStep.applyPitrTarget({
    cluster,
    target: checked.effectiveTarget,
    inclusive: checked.effectiveInclusive,
    timeline: checked.timeline,
    lockGrantedAt: lock.grantedAt,
  });
  if (checkedBesideTheLock && CancellationScope.current().consideredCancelled) {
    // A cancel sent during the first workflow task (the pause, the lock, the check) reaches the
    // workflow only once that task ends, and since the check runs there, that is after this
    // write. Nothing has applied it yet (no reload, no restart): take it back, and the replica
    // is left paused with its settings as they were, as for any cancel before the target.
    await CancellationScope.nonCancellable(() => quickStep.clearPitrTarget({ cluster, originalDelay }));
    throw new CancelledFailure('cancelled before the target took effect; the replica is left paused');
  }
  return originalDelay;
}

/**
 * From here the target is set: a cancel returns the replica to its delay, as the end of a run
 * does (unless it is to be promoted or left paused). Before, a cancel leaves it paused.
 */
function returningToDelayOnCancel(
  { opts, cluster, progress }: PitrRun,
  originalDelay: OriginalDelay,
): BackToDelayOnCancel {
  return async <T>(body: () => Promise<T>): Promise<T> => {
    try {
      return await body();
    } catch (err) {
      if (!isCancellation(err) || !opts.returnToDelay) throw err;
      const scratch = {} as DelayedReplicaPitrResult;
      await CancellationScope.nonCancellable(() => returnToDelay(cluster, originalDelay, progress, scratch));
      throw err;
    }
  };
}

/** Restarts the replica so the target takes effect, and watches replay up to it. */
async function replayToTarget(
  { opts, cluster, progress }: PitrRun,
  { target, targetText, checked }: { target: RecoveryTarget; targetText: string; checked: Checked },
  backToDelayOnCancel: BackToDelayOnCancel,
): Promise<Result<'waitForReplayTarget'>> {
  // Stopping before a locking transaction re-replays records: restart without a shutdown
  // restartpoint, and only while the minimum recovery point is still before the stop point.
  const firstRestart = {
    immediate: checked.beforeLockingTransaction,
    mustNotPass: checked.beforeLockingTransaction ? checked.targetLsn : undefined,
  };
  /** The minimum recovery point passed the lock's start: stop before the commit after all. */
  const fallBackToCommit = async (err: unknown) => {
    if (!checked.beforeLockingTransaction || failureType(err) !== 'StopPointPassed') throw err;
    checked.note = `${checked.note ?? ''}; the replica flushed past the transaction's start before the restart, so it stops before the commit instead: the locked tables cannot be read at the target`;
    checked.effectiveTarget = target;
    checked.effectiveInclusive = opts.inclusive;
    checked.targetLsn = checked.requestedTargetLsn;
    checked.beforeLockingTransaction = false;
    progress.note({ note: checked.note });
    await CancellationScope.nonCancellable(() =>
      quickStep.applyPitrTarget({ cluster, target, inclusive: opts.inclusive, timeline: checked.timeline }),
    );
  };
  if (patched('restart-and-watch-together')) {
    // The restart and the watch in one activity (one workflow task and one activity dispatch
    // less). The activity itself never abandons a restart half way: a cancel takes effect once
    // the restart is done, and then the replica returns to its delay.
    progress.step('restart', `restarting the replica so the target takes effect, then replaying up to ${targetText}`);
    const restartAndWatch = async (restart: { immediate?: boolean; mustNotPass?: string }) =>
      (
        await replayStep.restartAndWaitForReplayTarget({
          cluster,
          ...restart,
          targetLsn: checked.targetLsn,
          targetTime: checked.targetTime,
          stallTimeoutMs: opts.stallTimeoutMs,
        })
      ).reached;
    return backToDelayOnCancel(() =>
      restartAndWatch(firstRestart).catch(async (err: unknown) => {
        await fallBackToCommit(err);
        return restartAndWatch({});
      }),
    );
  }
  progress.step('restart', 'restarting the replica so the target takes effect');
  // A restart is never abandoned half way (the replica stopped, not started again): a cancel
  // takes effect once it is done, and then the replica returns to its delay.
  await backToDelayOnCancel(() =>
    CancellationScope.nonCancellable(async () => {
      try {
        await longStep.restartReplicaIfPending({ cluster, ...firstRestart });
      } catch (err) {
        await fallBackToCommit(err);
        await longStep.restartReplicaIfPending({ cluster });
      }
    }),
  );
  progress.step('replay', `replaying archived WAL up to ${targetText}`);
  return backToDelayOnCancel(() =>
    replayStep.waitForReplayTarget({
      cluster,
      targetLsn: checked.targetLsn,
      targetTime: checked.targetTime,
      stallTimeoutMs: opts.stallTimeoutMs,
    }),
  );
}

/** At the target: export (and insert), promote, or hold for inspection; then back to the delay. */
async function finishAtTarget(
  { opts, cluster, progress }: PitrRun,
  result: DelayedReplicaPitrResult,
  after: { originalDelay: OriginalDelay; backToDelayOnCancel: BackToDelayOnCancel; resumed: () => boolean },
): Promise<DelayedReplicaPitrResult> {
  const { originalDelay, backToDelayOnCancel } = after;
  if (opts.then === 'export') {
    progress.step('export', `exporting ${opts.tables.join(', ')} as of the target`);
    const exported = await backToDelayOnCancel(() => longStep.exportLostRows({ cluster, tables: opts.tables }));
    result.exported = exported;
    if (opts.insertMissing) {
      progress.step('insert', 'inserting the rows the primary is missing, in one transaction per table');
      result.inserted = await backToDelayOnCancel(() =>
        quickStep.insertMissingRowsIntoPrimary({ cluster, exports: exported }),
      );
    }
  } else if (opts.then === 'promote') {
    // pg_wal_replay_resume() at a paused target would promote too; pg_promote() says so openly.
    progress.step('promote', 'taking the replica off the shared archive and promoting it');
    result.promoted = await longStep.promoteReplica({ cluster });
    result.finalState = 'promoted';
    return result;
  } else if (opts.returnToDelay) {
    progress.step(
      'inspect',
      `paused at the target for inspection: send the "resume" signal to return to the delay (at most ${Math.round(opts.maxPauseMs / 60000)} min)`,
    );
    try {
      await condition(after.resumed, opts.maxPauseMs);
    } catch (err) {
      if (!isCancellation(err)) throw err;
      await CancellationScope.nonCancellable(() => returnToDelay(cluster, originalDelay, progress, result));
      throw err;
    }
  }

  // The way back to a delayed replica is never cancelled half way (target cleared, not restarted).
  if (opts.returnToDelay)
    await CancellationScope.nonCancellable(() => returnToDelay(cluster, originalDelay, progress, result));
  progress.step(
    'done',
    result.finalState === 'delayed replica again'
      ? `back to a delayed replica (lag ${result.returnedToDelay?.lagSeconds ?? '?'} s)`
      : `left paused at ${result.reached.replayLsn}`,
  );
  return result;
}

/** A refusal by a check (the target cannot be reached), not a failure to check. */
function isPrecondition(err: unknown): boolean {
  return failureType(err) === 'PreconditionFailed';
}

function failureType(err: unknown): string | undefined {
  let cause: unknown = err;
  while (cause instanceof ActivityFailure) cause = cause.cause;
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

async function returnToDelay(
  cluster: string,
  originalDelay: Result<'applyPitrTarget'>['originalDelay'],
  progress: ProgressReporter,
  result: DelayedReplicaPitrResult,
): Promise<void> {
  progress.step('return-to-delay', 'removing the target, restoring the original delay and restarting');
  await quickStep.clearPitrTarget({ cluster, originalDelay });
  await longStep.restartReplicaIfPending({ cluster });
  result.returnedToDelay = await longStep.confirmDelayedReplay({ cluster, timeoutMs: 300_000 });
  result.finalState = 'delayed replica again';
}
