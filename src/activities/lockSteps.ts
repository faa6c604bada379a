// The per-cluster lock's two server calls: deliver a request to the cluster's lock workflow
// (starting it if needed), and ask whether a holder is still running.
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import {
  lockRequestSignal,
  lockWorkflowId,
  progressQuery,
  MUTATING_WORKFLOW_TYPES,
  type LockHolder,
  type LockRequest,
} from '../workflows/definitions';
import { clusterNameProblem } from '../common/names';

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

    /**
     * For a lock workflow that starts with no state (the first ever, or one started again after
     * it was terminated): the running mutating workflows of this cluster on this task queue, from
     * the PgCluster search attribute. One of them may hold the cluster already.
     */
    async findRunningMutators({ cluster }: { cluster: string }): Promise<LockHolder[]> {
      const problem = clusterNameProblem(cluster);
      if (problem) throw ApplicationFailure.nonRetryable(problem, 'InvalidInput');
      const ctx = Context.current();
      const types = MUTATING_WORKFLOW_TYPES.map((t) => `'${t}'`).join(', ');
      const found: LockHolder[] = [];
      for await (const wf of ctx.client.workflow.list({
        query: `PgCluster = '${cluster}' AND ExecutionStatus = 'Running' AND TaskQueue = '${ctx.info.taskQueue}' AND WorkflowType IN (${types})`,
      })) {
        // Only one that got past its lock step holds the cluster; one that cannot answer counts too.
        const progress = await ctx.client.workflow
          .getHandle(wf.workflowId, wf.runId)
          .query(progressQuery)
          .catch(() => undefined);
        if (progress && !progress.done.includes('lock')) continue;
        found.push({
          workflowId: wf.workflowId,
          runId: wf.runId,
          operation: wf.type,
          wait: false,
          since: wf.startTime.toISOString(),
        });
      }
      return found.sort((a, b) => (a.since < b.since ? -1 : 1));
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
