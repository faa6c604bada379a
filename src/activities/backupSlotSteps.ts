// The fleet-wide backup cap's server calls, run as local activities by a backup: ask the task queue's
// slots workflow for a slot (update-with-start, answered at once: granted or queued), and give it back.
// The cap is the catalog's `fleet.maxConcurrentBackups`; without it nothing is asked.
import { Context } from '@temporalio/activity';
import { WithStartWorkflowOperation, WorkflowNotFoundError } from '@temporalio/client';
import {
  backupSlotAcquireUpdate,
  backupSlotReleaseSignal,
  backupSlotsWorkflowId,
  type BackupSlotAnswer,
} from '../contract/backupSlots';
import type { ClusterRegistry } from './clusterRegistry';

export function createBackupSlotSteps(registry: ClusterRegistry) {
  return {
    async requestBackupSlot({
      cluster,
      workflowId,
      runId,
    }: {
      cluster: string;
      workflowId: string;
      runId: string;
    }): Promise<BackupSlotAnswer> {
      const capacity = registry.catalogNow().fleet?.maxConcurrentBackups;
      if (!capacity) return { status: 'uncapped' };
      const ctx = Context.current();
      const taskQueue = ctx.info.taskQueue;
      return ctx.client.workflow.executeUpdateWithStart(backupSlotAcquireUpdate, {
        args: [{ workflowId, runId, cluster, capacity }],
        startWorkflowOperation: new WithStartWorkflowOperation('backupSlotsWorkflow', {
          workflowId: backupSlotsWorkflowId(taskQueue),
          taskQueue,
          args: [{}],
          workflowIdConflictPolicy: 'USE_EXISTING',
        }),
      });
    },

    async releaseBackupSlot({ workflowId }: { workflowId: string }): Promise<void> {
      const ctx = Context.current();
      try {
        await ctx.client.workflow
          .getHandle(backupSlotsWorkflowId(ctx.info.taskQueue))
          .signal(backupSlotReleaseSignal, { workflowId });
      } catch (err) {
        // The slots workflow has ended (idle, or terminated): there is nothing to give back.
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
    },
  };
}
