// After a clone-swap restore (rbd), the clones that took the images' names still read what they
// have not rewritten from the images set aside: first writes pay a copy-up, and the data is held
// twice. This workflow flattens them in the background, once the restore has finished and
// released the cluster's lock: one per cluster and task queue (id pgops-flatten/<queue>/<cluster>).
// A later restore of the cluster cancels it first (a flatten holds the image open); the restore
// after which it runs starts it again. It survives worker crashes: `rbd flatten` goes on from the
// objects already copied.
import {
  ActivityCancellationType,
  ParentClosePolicy,
  WorkflowIdReusePolicy,
  getExternalWorkflowHandle,
  isCancellation,
  sleep,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { withSummaries } from './activitySummaries';
import { proxyActivities } from '@temporalio/workflow';
import type { PgOpsActivities } from '../activities';
import { NON_RETRYABLE } from './activityProxies';

const flattenStep = withSummaries(
  proxyActivities<PgOpsActivities>({
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    startToCloseTimeout: '24 hours',
    heartbeatTimeout: '10 seconds',
    retry: {
      initialInterval: '5s',
      backoffCoefficient: 2,
      maximumInterval: '5 minutes',
      maximumAttempts: 50,
      nonRetryableErrorTypes: NON_RETRYABLE,
    },
  }),
);

export interface FlattenVolumesInput {
  cluster: string;
  /** pool/image of each clone to flatten. */
  images: string[];
  /** The restore that made the clones. */
  restoreId: string;
}

export async function flattenVolumesWorkflow(input: FlattenVolumesInput): Promise<{ said: string[] }> {
  return flattenStep.flattenVolumes({ cluster: input.cluster, images: input.images });
}

export function flattenWorkflowId(cluster: string): string {
  return `pgops-flatten/${workflowInfo().taskQueue}/${cluster}`;
}

/** Cancels the cluster's background flatten, if one runs: a restore must not find its image held open. */
export async function cancelBackgroundFlatten(cluster: string): Promise<void> {
  try {
    await getExternalWorkflowHandle(flattenWorkflowId(cluster)).cancel();
  } catch (err) {
    // None runs (never started, or finished): nothing to cancel.
    if (isCancellation(err)) throw err;
  }
}

/**
 * Starts the background flatten of the clones a restore left, and returns its workflow id; a flatten
 * still closing after the cancel is waited for a little. Never fails the restore: a warning instead.
 */
export async function startBackgroundFlatten(
  cluster: string,
  images: string[],
  restoreId: string,
): Promise<{ workflowId: string; images: string[] } | { warning: string; images: string[] }> {
  const workflowId = flattenWorkflowId(cluster);
  let last: unknown;
  for (let attempt = 0; attempt < 12; attempt++) {
    try {
      await startChild(flattenVolumesWorkflow, {
        workflowId,
        args: [{ cluster, images, restoreId }],
        parentClosePolicy: ParentClosePolicy.ABANDON,
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      });
      return { workflowId, images };
    } catch (err) {
      if (isCancellation(err)) throw err;
      last = err;
      await sleep('5 seconds');
    }
  }
  return {
    images,
    warning: `the background flatten of ${images.join(', ')} was not started (${last instanceof Error ? last.message : String(last)}): the restored images read from the images set aside until flattened; start ${workflowId} again or run rbd flatten`,
  };
}
