// The requesting side of the fleet-wide backup cap (src/contract/backupSlots.ts): a backup takes a
// slot before its cluster's lock, waits for one when the fleet runs its cap of backups, and gives it
// back whatever happens (a non-cancellable release). Without a cap in the catalog nothing is asked.
import { CancellationScope, condition, setHandler, workflowInfo } from '@temporalio/workflow';
import { backupSlotGrantedSignal } from '../contract/backupSlots';
import { lockStep } from './activityProxies';
import type { ProgressReporter } from './progress';

export async function withBackupSlot<T>(
  cluster: string,
  progress: ProgressReporter,
  body: () => Promise<T>,
): Promise<T> {
  let granted = false;
  setHandler(backupSlotGrantedSignal, () => {
    granted = true;
  });
  const { workflowId, runId } = workflowInfo();
  const answer = await lockStep.requestBackupSlot({ cluster, workflowId, runId });
  if (answer.status === 'uncapped') return body();
  try {
    if (answer.status === 'queued') {
      progress.step(
        'queue',
        `waiting for a backup slot: ${answer.running} of ${answer.capacity} backups run in this fleet; position ${answer.position}`,
      );
      await condition(() => granted);
    }
    return await body();
  } finally {
    await CancellationScope.nonCancellable(() => lockStep.releaseBackupSlot({ workflowId }));
  }
}
