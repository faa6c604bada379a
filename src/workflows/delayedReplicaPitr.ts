// Delayed-replica PITR (seed 004, procedures.md §4): pause at once, check the target, set it with
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
import { withClusterLock } from './clusterLock';
import { parsePitrInput } from './pitrInput';
import type {
  DelayedReplicaPitrInput,
  DelayedReplicaPitrResult,
  IncidentQuery,
} from '../contract/operations/delayedReplicaPitr';
import type { PgOpsActivities } from '../activities';

type Result<K extends keyof PgOpsActivities> = Awaited<ReturnType<PgOpsActivities[K]>>;

export type { DelayedReplicaPitrResult };

const OPERATION = 'delayedReplicaPitr';

export async function delayedReplicaPitrWorkflow(input: DelayedReplicaPitrInput): Promise<DelayedReplicaPitrResult> {
  const opts = parsePitrInput(input);
  const { cluster } = opts;
  tagWorkflow(cluster, OPERATION);
  const progress = trackProgress(OPERATION, cluster);
  let resumeRequested = false;
  setHandler(resumeSignal, () => void (resumeRequested = true));

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

  // Since 'check-beside-lock', a target given as such is checked (a read: replica, archive,
  // primary) while the lock is asked for, in a local activity beside the lock's, instead of
  // after it. Its verdict stands if the lock was granted at once and replay has not moved since
  // (inspectReplica, under the lock, reads the same position); otherwise it is checked again.
  const givenTarget = 'incident' in opts.target ? undefined : opts.target;
  const earlyCheck =
    localFirstSteps && givenTarget && patched('check-beside-lock')
      ? localStep.checkPitrTarget({ cluster, target: givenTarget, inclusive: opts.inclusive, then: opts.then }).then(
          (checked) => ({ checked }),
          (failure: unknown) => ({ failure }),
        )
      : undefined;

  return withClusterLock(cluster, 'delayedReplicaPitrWorkflow', { ...opts.lockWait, progress }, async (lock) => {
    const replica = await (localFirstSteps ? localStep : quickStep).inspectReplica({ cluster });
    progress.note({ originalDelay: replica.delay });
    const target = givenTarget ?? (await resolveIncident(cluster, (opts.target as IncidentTarget).incident, progress));
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
    if (earlyCheck && CancellationScope.current().consideredCancelled) {
      // A cancel sent during the first workflow task (the pause, the lock, the check) reaches the
      // workflow only once that task ends, and since the check runs there, that is after this
      // write. Nothing has applied it yet (no reload, no restart): take it back, and the replica
      // is left paused with its settings as they were, as for any cancel before the target.
      await CancellationScope.nonCancellable(() => quickStep.clearPitrTarget({ cluster, originalDelay }));
      throw new CancelledFailure('cancelled before the target took effect; the replica is left paused');
    }
    // From here the target is set: a cancel returns the replica to its delay, as the end of a run
    // does (unless it is to be promoted or left paused). Before, a cancel leaves it paused.
    const backToDelayOnCancel = async <T>(body: () => Promise<T>): Promise<T> => {
      try {
        return await body();
      } catch (err) {
        if (!isCancellation(err) || !opts.returnToDelay) throw err;
        const scratch = {} as DelayedReplicaPitrResult;
        await CancellationScope.nonCancellable(() => returnToDelay(cluster, originalDelay, progress, scratch));
        throw err;
      }
    };
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
    let reached: Result<'waitForReplayTarget'>;
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
      reached = await backToDelayOnCancel(() =>
        restartAndWatch(firstRestart).catch(async (err: unknown) => {
          await fallBackToCommit(err);
          return restartAndWatch({});
        }),
      );
    } else {
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
      reached = await backToDelayOnCancel(() =>
        replayStep.waitForReplayTarget({
          cluster,
          targetLsn: checked.targetLsn,
          targetTime: checked.targetTime,
          stallTimeoutMs: opts.stallTimeoutMs,
        }),
      );
    }
    progress.step(
      'at-target',
      `replay paused at ${reached.replayLsn} (last commit replayed ${reached.replayTimestamp ?? 'none'})`,
      { replayLsn: reached.replayLsn },
    );
    const result: DelayedReplicaPitrResult = {
      cluster,
      target,
      inclusive: opts.inclusive,
      pause: { latencyMs, state: pause.pauseState, replayLsn: pause.replayLsn },
      checked,
      reached,
      finalState: 'paused at target',
    };

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
        await condition(() => resumeRequested, opts.maxPauseMs);
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
        : `left paused at ${reached.replayLsn}`,
    );
    return result;
  });
}

type IncidentTarget = { incident: IncidentQuery };

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

async function resolveIncident(
  cluster: string,
  query: IncidentQuery,
  progress: ProgressReporter,
): Promise<RecoveryTarget> {
  progress.step(
    'locate',
    `searching the WAL archive for deletes, truncates and drops between ${query.from} and ${query.to}${query.table ? ` on ${query.table}` : ''}`,
  );
  const incidents = await longStep.locateIncident({ cluster, ...query });
  if (incidents.length === 1) {
    const only = incidents[0]!;
    progress.note({ incidentXid: only.xid, incidentCommitTime: only.commitTime });
    return { xid: only.xid };
  }
  const listing = incidents
    .slice(0, 10)
    .map(
      (i) =>
        `xid ${i.xid} committed ${i.commitTime} at ${i.commitLsn}: ${[
          ...i.relations.map(
            (r) =>
              `${r.name ?? r.relfilenode}${r.dropped ? ' dropped' : r.truncated ? ' truncated' : ` ${r.deletes} row(s) deleted`}`,
          ),
          ...(i.dropped ?? []).map(
            (d) => `${d.kind} ${d.name ?? `with OID ${d.oid}`} dropped (drop record at ${d.dropLsn})`,
          ),
        ].join(', ')}`,
    )
    .join('; ');
  throw ApplicationFailure.nonRetryable(
    incidents.length === 0
      ? `no transaction deleted, truncated or dropped${query.table ? ` in ${query.table}` : ''} between ${query.from} and ${query.to}. The replica is left paused; widen the window or give the target directly.`
      : `${incidents.length} transactions match: ${listing}. The replica is left paused; run again with target { "xid": … } naming the bad one.`,
    'PreconditionFailed',
  );
}
