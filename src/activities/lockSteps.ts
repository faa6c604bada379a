// The per-cluster lock's two server calls: deliver a request to the cluster's lock workflow
// (starting it if needed), and ask whether a holder is still running.
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import { lockRequestSignal, lockWorkflowId, type LockRequest } from '../workflows/definitions';

export function createLockSteps() {
  return {
    async requestClusterLock({ cluster, request }: { cluster: string; request: LockRequest }): Promise<void> {
      const ctx = Context.current();
      // signal-with-start is idempotent for our purpose: a repeated request by the same holder is
      // answered again with the same grant.
      await ctx.client.workflow.signalWithStart('clusterLockWorkflow', {
        workflowId: lockWorkflowId(cluster, ctx.info.taskQueue),
        taskQueue: ctx.info.taskQueue,
        args: [{ cluster }],
        signal: lockRequestSignal,
        signalArgs: [request],
      });
    },

    async isWorkflowRunning({ workflowId, runId }: { workflowId: string; runId: string }): Promise<boolean> {
      try {
        const description = await Context.current().client.workflow.getHandle(workflowId, runId).describe();
        return description.status.name === 'RUNNING';
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return false;
        throw err;
      }
    },
  };
}
