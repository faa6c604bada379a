// Planned stop (docs/runbooks/planned-stop.md): record the replica count, scale to 0 keeping the
// volumes, verify the quiescent point; with a hold, wait durably for `resume` (or maxHold) and
// start again. A planned stop always has a way back: the count to restore is in this workflow's
// history and, on Kubernetes, in an annotation on the StatefulSet.
import {
  CancellationScope,
  CancelledFailure,
  condition,
  isCancellation,
  patched,
  setHandler,
} from '@temporalio/workflow';
import { resumeSignal } from '../contract/definitions';
import type { ClusterSnapshotState, PlannedStopInput, PlannedStopResult } from '../contract/operations/plannedStop';
import { bringUpStep, localStep, longStep } from './activityProxies';
import { trackProgress, type ProgressReporter } from './progress';
import { tagWorkflow } from './searchAttributes';
import { workflowClockMs } from './clock';
import { resolveWithLockOrBefore, withClusterLock, type HeldLock } from './clusterLock';
import { parsePlannedStopInput } from './stopStartInput';
import { OPERATION_LABELS, WORKFLOW_TYPES } from '../contract/operations/registry';

export type { ClusterSnapshotState, PlannedStopInput, PlannedStopResult };

const TYPE = WORKFLOW_TYPES.plannedStop;

export async function plannedStopWorkflow(input: PlannedStopInput): Promise<PlannedStopResult> {
  const { cluster, reason, hold, maxHoldMs, lockWait } = parsePlannedStopInput(input);

  let resumeRequestedBy: string | undefined;
  let resumeRequested = false;
  setHandler(resumeSignal, (arg) => {
    resumeRequested = true;
    resumeRequestedBy = arg?.by;
  });

  tagWorkflow(cluster, OPERATION_LABELS.plannedStop);
  const progress = trackProgress(OPERATION_LABELS.plannedStop, cluster);
  const resolveWithLock = await resolveWithLockOrBefore(cluster, progress);

  // Since 'describe-with-lock' the lock request's local activity also describes the cluster once
  // granted, and since 'verify-in-stop' the stop step checks the quiescent point itself: two
  // local activities less per run. Runs begun before keep them as steps of their own.
  const describeWithLock = patched('describe-with-lock');
  const verifyInStop = patched('verify-in-stop');
  const lockOptions = { ...lockWait, progress, resolveFirst: resolveWithLock, describe: describeWithLock };
  return withClusterLock(cluster, TYPE, lockOptions, async (lock) => {
    progress.step('describe', 'recording the replica count before the stop');
    const before = lock.described ?? (await localStep.describeCluster({ cluster }));
    progress.note({ replicasBefore: before.replicas });

    const run: StopRun = { cluster, reason, progress };
    const { stopped, quiescent } = await stopAndVerifyQuiescent(run, lock, before, verifyInStop);
    const result: PlannedStopResult = {
      cluster,
      reason,
      before,
      stopped: {
        replicasBefore: stopped.replicasBefore,
        alreadyStopped: stopped.alreadyStopped,
        volumesKept: quiescent.volumesKept,
        msToStop: stopped.ms,
      },
      after: { running: false, replicas: 0, readyReplicas: 0 },
    };
    if (!hold) {
      progress.step(
        'stopped',
        `cluster stopped; ${stopped.replicasBefore} replica(s) to restore with plannedStartWorkflow`,
        { replicasToRestore: stopped.replicasBefore },
      );
      return result;
    }

    const held = await holdUntilResume(run, stopped, { maxHoldMs, resumed: () => resumeRequested });
    // The way back is never cancelled: a cancel during this start would leave production down.
    await CancellationScope.nonCancellable(() =>
      startAgainAfterHold(run, result, stopped, { ...held, resumeRequestedBy: () => resumeRequestedBy }),
    );
    return result;
  });
}

/** One run of the workflow: its cluster, the reason given and its progress. */
interface StopRun {
  cluster: string;
  reason: PlannedStopResult['reason'];
  progress: ProgressReporter;
}

type Stopped = Awaited<ReturnType<typeof longStep.stopCluster>>;
type Quiescent = Awaited<ReturnType<typeof localStep.verifyQuiescent>>;
type ResumedBy = NonNullable<PlannedStopResult['hold']>['resumedBy'];

/** Stops the cluster and verifies the quiescent point; a cancel meanwhile starts it again. */
async function stopAndVerifyQuiescent(
  { cluster, reason, progress }: StopRun,
  lock: HeldLock,
  before: ClusterSnapshotState,
  verifyInStop: boolean,
): Promise<{ stopped: Stopped; quiescent: Quiescent }> {
  const stopping = verifyInStop ? 'stopping the cluster, then verifying the quiescent point' : 'stopping the cluster';
  progress.step('stop', reason ? `${stopping}: ${reason}` : stopping);
  let stopped: Stopped;
  let quiescent: Quiescent;
  try {
    stopped = await longStep.stopCluster({
      cluster,
      lockGrantedAt: lock.grantedAt,
      ...(verifyInStop && { verify: true }),
    });
    if (stopped.quiescent) {
      quiescent = stopped.quiescent;
      // A cancel that arrived while the stop ran (it runs to its end): taken here, as the
      // separate check used to take it, so the cluster is started again.
      if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('cancelled during the stop');
      progress.step(
        'verify',
        `quiescent point verified: ${quiescent.volumesKept.length} volume(s) kept, connections refused`,
      );
    } else {
      progress.step('verify', 'verifying the quiescent point: nothing running, volumes kept, connections refused');
      quiescent = await localStep.verifyQuiescent({ cluster });
    }
  } catch (err) {
    // A cancel during the stop or the check: the stop step has finished its shutdown (it does
    // not abort half way), and the cluster is started again before the lock is released.
    if (!isCancellation(err) || !before.running) throw err;
    progress.step('start', 'cancelled during the stop: starting the cluster again');
    await CancellationScope.nonCancellable(() => bringUpStep.startCluster({ cluster, replicas: before.replicas }));
    throw err;
  }
  return { stopped, quiescent };
}

/** Holds the cluster stopped until the "resume" signal, maxHold or a cancel, whichever comes first. */
async function holdUntilResume(
  { progress }: StopRun,
  stopped: Stopped,
  { maxHoldMs, resumed }: { maxHoldMs: number; resumed: () => boolean },
): Promise<{ holdStartedAt: number; resumedBy: ResumedBy }> {
  progress.step(
    'hold',
    `stopped and held for maintenance until the "resume" signal (at most ${Math.round(maxHoldMs / 60000)} min)`,
    { replicasToRestore: stopped.replicasBefore },
  );
  const holdStartedAt = workflowClockMs();
  let resumedBy: ResumedBy;
  try {
    resumedBy = (await condition(resumed, maxHoldMs)) ? 'signal' : 'maxHold';
  } catch (err) {
    // Cancelling a held stop must not leave production down: start again, then report the cancel.
    if (!isCancellation(err)) throw err;
    resumedBy = 'cancel';
  }
  return { holdStartedAt, resumedBy };
}

/** Once the hold ends: starts the replicas again, recording the hold and the start in the result. */
async function startAgainAfterHold(
  { cluster, progress }: StopRun,
  result: PlannedStopResult,
  stopped: Stopped,
  held: { holdStartedAt: number; resumedBy: ResumedBy; resumeRequestedBy: () => string | undefined },
): Promise<void> {
  const { holdStartedAt, resumedBy } = held;
  const heldMs = workflowClockMs() - holdStartedAt;
  result.hold = { resumedBy, resumeRequestedBy: held.resumeRequestedBy(), heldMs };
  progress.step('start', `starting ${stopped.replicasBefore} replica(s) again (hold ended by ${resumedBy})`);
  const started = await bringUpStep.startCluster({ cluster, replicas: stopped.replicasBefore });
  result.restarted = {
    replicas: started.replicas,
    readyReplicas: started.readyReplicas,
    msToReady: started.msToReady,
  };
  result.after = { running: true, replicas: started.replicas, readyReplicas: started.readyReplicas };
  progress.step('done', `cluster running again with ${started.readyReplicas} ready replica(s)`, {
    msToReady: started.msToReady,
  });
}
