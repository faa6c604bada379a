// The per-cluster lock's server calls, run as local activities: deliver a request to the
// cluster's lock workflow (starting it if needed) and return its answer, release, confirm a
// holder, and for the lock workflow itself, which running workflows hold the cluster.
import { Context, log } from '@temporalio/activity';
import {
  QueryNotRegisteredError,
  WithStartWorkflowOperation,
  WorkflowNotFoundError,
  type WorkflowExecutionInfo,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import {
  DEFAULT_IDLE_END_MS,
  type ClusterSnapshotState,
  holdsClusterLockQuery,
  lockAcquireUpdate,
  lockConfirmUpdate,
  lockReleaseSignal,
  lockStateQuery,
  lockWorkflowId,
  type LockAnswer,
  type LockConfirmation,
  type LockHolder,
  type LockRequest,
} from '../contract/definitions';
import { MUTATING_WORKFLOW_TYPES } from '../contract/operations/registry';
import { clusterNameProblem } from '../common/names';
import { asStep } from './failures';
import type { ClusterRegistry } from './clusterRegistry';
import { describeInCatalog, resolveInCatalog } from './clusterLookup';

/** How long an idle lock lives on before it ends: PGOPS_LOCK_IDLE_END_SECONDS, default a minute. */
function idleEndMsFromEnv(): number | undefined {
  const seconds = Number(process.env.PGOPS_LOCK_IDLE_END_SECONDS);
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : undefined;
}

/**
 * When this worker process last heard from each lock workflow (an answer to a request, a release
 * delivered). Heard from within half its idle time, it runs: a request goes to it at once, without
 * first looking for it and for running mutators (two look-ups, one round trip). Should it have
 * ended meanwhile (terminated), the lock the request starts asks the running workflows itself.
 */
const lastHeardFrom = new Map<string, number>();

function heardFromLately(lockId: string): boolean {
  const at = lastHeardFrom.get(lockId);
  return at !== undefined && Date.now() - at < (idleEndMsFromEnv() ?? DEFAULT_IDLE_END_MS) / 2;
}

/** How long a running workflow is given to say whether it holds the cluster, when a lock starts. */
const HOLDER_ANSWER_MS = 2000;

/**
 * Update-with-start on the cluster's lock workflow: one round trip, whether it runs or not.
 * `runningMutators`: who holds the cluster, found by the requester because no lock runs (only
 * ever an empty list: nobody); a lock started with it need not ask again.
 */
function updateLock<Ret>(
  cluster: string,
  update: typeof lockAcquireUpdate | typeof lockConfirmUpdate,
  request: LockRequest,
  runningMutators?: LockHolder[],
): Promise<Ret> {
  const ctx = Context.current();
  const taskQueue = ctx.info.taskQueue;
  return ctx.client.workflow.executeUpdateWithStart(update as never, {
    args: [request],
    startWorkflowOperation: new WithStartWorkflowOperation('clusterLockWorkflow', {
      workflowId: lockWorkflowId(cluster, taskQueue),
      taskQueue,
      // A lock started by an acquire request does not ask its requester whether it holds the
      // cluster: the requester is inside this local activity, so its workflow task stays open and
      // the query would wait until the SDK heartbeats that task (8 s). It cannot hold the cluster
      // anyway (it holds only once this request returns), and a repeated request is granted again.
      args: [
        {
          cluster,
          idleEndMs: idleEndMsFromEnv(),
          ...(update === lockAcquireUpdate && { startedFor: request }),
          ...(runningMutators && { runningMutators }),
        },
      ],
      workflowIdConflictPolicy: 'USE_EXISTING',
    }),
  }) as Promise<Ret>;
}

/**
 * Asks the lock whether the workflow this activity runs for still holds the cluster. A query
 * first: it writes nothing to any history, and when it names this workflow the answer is sure
 * (a lock started again after that run ended asks the running workflows, and this one says it
 * holds the cluster). Anything else goes to the lock as an update, which can start it again,
 * replace a dead holder, and give a lost holder its lock back if nobody else has it.
 */
export async function confirmLockHolder(cluster: string, request: LockRequest): Promise<LockConfirmation> {
  const ctx = Context.current();
  const state = await ctx.client.workflow
    .getHandle(lockWorkflowId(cluster, ctx.info.taskQueue))
    .query(lockStateQuery)
    .catch(() => undefined);
  if (state?.holder?.workflowId === request.workflowId && state.holder.runId === request.runId) return { held: true };
  return updateLock<LockConfirmation>(cluster, lockConfirmUpdate, request);
}

/**
 * For a lock workflow that starts with no state (the first, one started again after it
 * ended idle, or one that replaces a terminated lock workflow): the running mutating
 * workflows of this cluster on this task queue (PgCluster search attribute) that say they
 * hold the cluster. One that cannot answer counts as a holder: it may be holding it.
 */
async function findRunningMutators(cluster: string, skip: string[]): Promise<LockHolder[]> {
  const ctx = Context.current();
  const found: LockHolder[] = [];
  for (const wf of await listRunningMutators(cluster, skip)) {
    // A workflow inside a local activity (a lock request, a short step) answers only when
    // its workflow task ends: it is not kept waiting for that. Not answering in time, like
    // any other failure to answer, counts as holding the cluster.
    const holds = await ctx.client.connection
      .withDeadline(Date.now() + HOLDER_ANSWER_MS, () =>
        ctx.client.workflow.getHandle(wf.workflowId, wf.runId).query(holdsClusterLockQuery),
      )
      // Not registered: the workflow has not reached its lock step yet.
      .catch((err: unknown) => !(err instanceof QueryNotRegisteredError));
    if (!holds) continue;
    found.push({
      workflowId: wf.workflowId,
      runId: wf.runId,
      operation: wf.type,
      wait: false,
      since: wf.startTime.toISOString(),
    });
  }
  return found.sort((a, b) => (a.since < b.since ? -1 : 1));
}

/** The running mutating workflows of this cluster on this task queue (visibility, no query). */
async function listRunningMutators(cluster: string, skip: string[]): Promise<WorkflowExecutionInfo[]> {
  const problem = clusterNameProblem(cluster);
  if (problem) throw ApplicationFailure.nonRetryable(problem, 'InvalidInput');
  const ctx = Context.current();
  const types = MUTATING_WORKFLOW_TYPES.map((t) => `'${t}'`).join(', ');
  const listed: WorkflowExecutionInfo[] = [];
  for await (const wf of ctx.client.workflow.list({
    query: `PgCluster = '${cluster}' AND ExecutionStatus = 'Running' AND TaskQueue = '${ctx.info.taskQueue}' AND WorkflowType IN (${types})`,
  })) {
    if (!skip.includes(wf.workflowId)) listed.push(wf);
  }
  return listed;
}

/** Whether the cluster's lock workflow runs now (false also when it never ran). */
export async function lockRuns(cluster: string): Promise<boolean> {
  const ctx = Context.current();
  try {
    const lock = ctx.client.workflow.getHandle(lockWorkflowId(cluster, ctx.info.taskQueue));
    return (await lock.describe()).status.name === 'RUNNING';
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

export function createLockSteps(registry: ClusterRegistry) {
  return {
    /**
     * Granted, queued or refused, answered in the same round trip. Safe to repeat: a repeated
     * request by the holder is granted again, one by a queued workflow keeps its place. A lock
     * workflow that ends (idle) just as the request arrives fails it; the retry starts a new one.
     * When no lock runs and no other mutating workflow of the cluster runs either (the usual
     * case: an incident after a quiet night), the requester says so to the lock it starts, which
     * then need not ask (an activity and two workflow tasks). If another request started the lock
     * meanwhile, that lock is used and this is ignored; if others run, the lock asks them itself.
     * `resolveFirst`: look the cluster up in the catalog first, as resolveCluster does (a cluster
     * missing from it fails before any lock is asked for), in the same local activity.
     * `describeIfGranted`: once granted, describe the cluster as describeCluster does (`described`),
     * in the same local activity: the first step of a planned stop, one local activity less.
     */
    async requestClusterLock({
      cluster,
      request,
      resolveFirst,
      describeIfGranted,
    }: {
      cluster: string;
      request: LockRequest;
      resolveFirst?: boolean;
      describeIfGranted?: boolean;
    }): Promise<LockAnswer & { described?: ClusterSnapshotState }> {
      if (resolveFirst) await resolveInCatalog(registry, cluster);
      const lockId = lockWorkflowId(cluster, Context.current().info.taskQueue);
      let runningMutators: LockHolder[] | undefined;
      if (!heardFromLately(lockId)) {
        // Both look-ups at once: the list is wasted when the lock runs, but it saves a round trip
        // in the usual case, when it does not.
        const [lockIsRunning, others] = await Promise.all([
          lockRuns(cluster),
          listRunningMutators(cluster, [request.workflowId]),
        ]);
        if (!lockIsRunning && others.length === 0) runningMutators = [];
      }
      const answer = await updateLock<LockAnswer>(cluster, lockAcquireUpdate, request, runningMutators);
      lastHeardFrom.set(lockId, Date.now());
      if (answer.status !== 'granted' || !describeIfGranted) return answer;
      try {
        return { ...answer, described: await describeInCatalog(registry, cluster) };
      } catch (err) {
        // The lock is held now: a failing describe is the workflow's own step again, inside the
        // lock's scope (which releases it), not a failed request that would leave it held.
        log.warn('describe after the lock grant failed; the workflow describes again', { cluster, error: String(err) });
        return answer;
      }
    },

    async releaseClusterLock({ cluster, workflowId }: { cluster: string; workflowId: string }): Promise<void> {
      return asStep(cluster, 'release', async () => {
        const ctx = Context.current();
        try {
          const lockId = lockWorkflowId(cluster, ctx.info.taskQueue);
          await ctx.client.workflow.getHandle(lockId).signal(lockReleaseSignal, { workflowId });
          lastHeardFrom.set(lockId, Date.now());
        } catch (err) {
          // The lock workflow has ended (idle, or terminated): there is nothing to release.
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        }
      });
    },

    /**
     * For a lock workflow that starts with no state (the first, one started again after it
     * ended idle, or one that replaces a terminated lock workflow) and no list from its requester.
     */
    async findRunningMutators({ cluster, skip = [] }: { cluster: string; skip?: string[] }): Promise<LockHolder[]> {
      return findRunningMutators(cluster, skip);
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
