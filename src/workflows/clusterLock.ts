// The requesting side of the per-cluster lock: acquire before touching a cluster, release in a
// non-cancellable scope whatever happens. Both are local activities: the request is an
// update-with-start answered in one round trip (granted, queued or refused), the release a signal.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  patched,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { holdsClusterLockQuery, lockAnswerSignal, type ClusterSnapshotState } from '../contract/definitions';
import { localStep, lockStep } from './activityProxies';
import { clusterBusy } from './clusterLockWorkflow';
import type { ProgressReporter } from './progress';

export interface HeldLock {
  release(): Promise<void>;
  /**
   * When the lock workflow granted the lock, if it answered the request at once (not after a
   * wait in its queue). Passed to the first mutating step as `lockGrantedAt`: started within
   * seconds of the grant, that step need not ask the lock again (see src/activities/lockGuard.ts).
   */
  grantedAt?: string;
  /** The cluster as described right after an immediate grant, when `describe` was asked for. */
  described?: ClusterSnapshotState;
}

export interface LockOptions {
  wait: boolean;
  waitTimeoutMs: number;
  progress: ProgressReporter;
  /** Look the cluster up in the worker catalog in the lock request's local activity (no step of its own). */
  resolveFirst?: boolean;
  /** Describe the cluster in the same local activity once the lock is granted (HeldLock.described). */
  describe?: boolean;
}

export async function acquireClusterLock(cluster: string, operation: string, opts: LockOptions): Promise<HeldLock> {
  // A lock workflow started again (after it ended idle, or was terminated) asks the running
  // mutating workflows of the cluster which of them holds it.
  let held = false;
  setHandler(holdsClusterLockQuery, () => held);
  let granted = false;
  setHandler(lockAnswerSignal, (a) => {
    if (a.status === 'granted') granted = true;
  });
  const { workflowId, runId } = workflowInfo();
  opts.progress.step(
    'lock',
    opts.resolveFirst
      ? `looking the cluster up in the worker catalog and acquiring the lock of cluster "${cluster}"`
      : `acquiring the lock of cluster "${cluster}"`,
  );
  const answer = await lockStep.requestClusterLock({
    cluster,
    request: { workflowId, runId, operation, wait: opts.wait },
    ...(opts.resolveFirst && { resolveFirst: true }),
    ...(opts.describe && { describeIfGranted: true }),
  });
  if (answer.status === 'refused') throw clusterBusy(cluster, operation, answer.holder);
  if (answer.status === 'queued') {
    opts.progress.step(
      'lock',
      `waiting for the lock: ${answer.holder.operation} (${answer.holder.workflowId}) holds cluster "${cluster}"; position ${answer.position} in the queue`,
    );
    if (!(await condition(() => granted, opts.waitTimeoutMs))) {
      await releaseLock(cluster, workflowId);
      throw ApplicationFailure.nonRetryable(
        `${operation}: gave up waiting for the lock of cluster "${cluster}" after ${Math.round(opts.waitTimeoutMs / 1000)}s (it queued at position ${answer.position} behind ${answer.holder.operation} ${answer.holder.workflowId}); nothing was changed`,
        'ClusterBusy',
      );
    }
  }
  held = true;
  return {
    grantedAt: answer.status === 'granted' ? answer.since : undefined,
    described: answer.status === 'granted' ? answer.described : undefined,
    release: async () => {
      await releaseLock(cluster, workflowId);
      held = false;
    },
  };
}

async function releaseLock(cluster: string, workflowId: string): Promise<void> {
  await CancellationScope.nonCancellable(() =>
    // A lock workflow that is gone has nothing to release; it re-checks holders' liveness anyway.
    lockStep.releaseClusterLock({ cluster, workflowId }),
  );
}

/** Runs `body` while holding the cluster's lock. */
export async function withClusterLock<T>(
  cluster: string,
  operation: string,
  opts: LockOptions,
  body: (lock: HeldLock) => Promise<T>,
): Promise<T> {
  const lock = await acquireClusterLock(cluster, operation, opts);
  try {
    return await body(lock);
  } finally {
    await lock.release();
  }
}

/**
 * Since 'resolve-with-lock' the catalog look-up runs inside the lock request's local activity (one
 * local activity less per run): true, pass it as `resolveFirst`. Runs begun before keep it as a step
 * of its own, taken here.
 */
export async function resolveWithLockOrBefore(cluster: string, progress: ProgressReporter): Promise<boolean> {
  const resolveWithLock = patched('resolve-with-lock');
  if (!resolveWithLock) {
    progress.step('resolve', 'looking the cluster up in the worker catalog');
    await localStep.resolveCluster({ cluster });
  }
  return resolveWithLock;
}
