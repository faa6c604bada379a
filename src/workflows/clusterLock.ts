// The requesting side of the per-cluster lock: acquire before touching a cluster, release in a
// non-cancellable scope whatever happens.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { lockAnswerSignal, lockReleaseSignal, lockWorkflowId, type LockAnswer } from './definitions';
import { quickStep } from './activityProxies';
import { clusterBusy } from './clusterLockWorkflow';
import type { ProgressReporter } from './progress';

export interface HeldLock {
  release(): Promise<void>;
}

export async function acquireClusterLock(
  cluster: string,
  operation: string,
  opts: { wait: boolean; waitTimeoutMs: number; progress: ProgressReporter },
): Promise<HeldLock> {
  let answer: LockAnswer | undefined;
  setHandler(lockAnswerSignal, (a) => {
    if (answer?.status !== 'granted') answer = a;
  });
  const { workflowId, runId } = workflowInfo();
  opts.progress.step('lock', `acquiring the lock of cluster "${cluster}"`);
  await quickStep.requestClusterLock({ cluster, request: { workflowId, runId, operation, wait: opts.wait } });
  if (!(await condition(() => answer !== undefined, '2 minutes'))) {
    throw ApplicationFailure.retryable(
      `the lock workflow ${lockWorkflowId(cluster, workflowInfo().taskQueue)} did not answer within 2 minutes; is a pg-ops worker running?`,
      'LockTimeout',
    );
  }
  if (answer?.status === 'queued') {
    opts.progress.step(
      'lock',
      `waiting for the lock: ${answer.holder.operation} (${answer.holder.workflowId}) holds cluster "${cluster}"; position ${answer.position} in the queue`,
    );
    if (!(await condition(() => answer?.status === 'granted', opts.waitTimeoutMs))) {
      await releaseLock(cluster, workflowId);
      throw ApplicationFailure.nonRetryable(
        `${operation}: gave up waiting for the lock of cluster "${cluster}" after ${Math.round(opts.waitTimeoutMs / 1000)}s; nothing was changed`,
        'ClusterBusy',
      );
    }
  }
  if (answer?.status === 'refused') throw clusterBusy(cluster, operation, answer.holder);
  return { release: () => releaseLock(cluster, workflowId) };
}

async function releaseLock(cluster: string, workflowId: string): Promise<void> {
  await CancellationScope.nonCancellable(async () => {
    try {
      await getExternalWorkflowHandle(lockWorkflowId(cluster, workflowInfo().taskQueue)).signal(lockReleaseSignal, {
        workflowId,
      });
    } catch {
      // The lock workflow is gone: nothing to release. It re-checks holders' liveness anyway.
    }
  });
}

/** Runs `body` while holding the cluster's lock. */
export async function withClusterLock<T>(
  cluster: string,
  operation: string,
  opts: { wait: boolean; waitTimeoutMs: number; progress: ProgressReporter },
  body: () => Promise<T>,
): Promise<T> {
  const lock = await acquireClusterLock(cluster, operation, opts);
  try {
    return await body();
  } finally {
    await lock.release();
  }
}
