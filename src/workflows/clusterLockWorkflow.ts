// One lock workflow per cluster and task queue (id `pgops-lock/<queue>/<cluster>`) makes mutating workflows on the same
// cluster mutually exclusive. It must live inside Temporal, not in a workflow-id convention: a
// workflow started from the UI gets whatever id the user typed. Requests arrive by signal (sent
// with signal-with-start by an activity); answers go back to the requester by signal. A holder that
// ended without releasing (terminated, timed out) is detected by asking the server and replaced.
import {
  ApplicationFailure,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  setHandler,
  workflowInfo,
  allHandlersFinished,
} from '@temporalio/workflow';
import {
  lockAnswerSignal,
  lockReleaseSignal,
  lockRequestSignal,
  lockStateQuery,
  lockWorkflowId,
  type LockAnswer,
  type LockHolder,
  type LockRequest,
  type LockState,
} from './definitions';
import { quickStep } from './activityProxies';

const HOLDER_CHECK_INTERVAL = '15 seconds';

export interface ClusterLockInput {
  cluster: string;
  state?: LockState;
}

export async function clusterLockWorkflow(input: ClusterLockInput): Promise<void> {
  const state: LockState = input.state ?? { cluster: input.cluster, holder: null, queue: [] };
  const inbox: Array<{ kind: 'request'; request: LockRequest } | { kind: 'release'; workflowId: string }> = [];
  setHandler(lockRequestSignal, (request) => void inbox.push({ kind: 'request', request }));
  setHandler(lockReleaseSignal, ({ workflowId }) => void inbox.push({ kind: 'release', workflowId }));
  setHandler(lockStateQuery, () => state);
  const myId = lockWorkflowId(state.cluster, workflowInfo().taskQueue);

  const answer = async (to: LockRequest, message: LockAnswer): Promise<boolean> => {
    try {
      await getExternalWorkflowHandle(to.workflowId, to.runId).signal(lockAnswerSignal, message);
      return true;
    } catch {
      return false; // the requester has ended: it no longer needs an answer
    }
  };
  const grant = async (request: LockRequest): Promise<boolean> => {
    state.holder = { ...request, since: new Date().toISOString() };
    if (await answer(request, { status: 'granted', lockWorkflowId: myId })) return true;
    state.holder = null;
    return false;
  };
  const holderIsGone = async (holder: LockHolder): Promise<boolean> =>
    !(await quickStep.isWorkflowRunning({ workflowId: holder.workflowId, runId: holder.runId }));
  const grantNextInQueue = async () => {
    while (state.holder === null && state.queue.length > 0) {
      const next = state.queue.shift() as LockRequest;
      await grant(next);
    }
  };

  if (!input.state) {
    // A lock that starts with no state may replace one that was terminated while a workflow held
    // it: a running mutating workflow of this cluster keeps the cluster (or is found dead later).
    const running = await quickStep.findRunningMutators({ cluster: state.cluster });
    const firstRequester = inbox[0]?.kind === 'request' ? inbox[0].request.workflowId : undefined;
    const other = running.find((r) => r.workflowId !== firstRequester);
    if (other) state.holder = other;
  }

  const hasWork = () => inbox.length > 0 || workflowInfo().continueAsNewSuggested;
  for (;;) {
    if (state.holder && state.queue.length > 0) {
      // Someone waits: a holder that ended without releasing (terminated, timed out) must not
      // keep them waiting until another request happens to arrive. Checked every 15 s.
      if (!(await condition(hasWork, HOLDER_CHECK_INTERVAL)) && (await holderIsGone(state.holder))) {
        state.holder = null;
        await grantNextInQueue();
      }
    } else {
      await condition(hasWork);
    }
    while (inbox.length > 0) {
      const item = inbox.shift()!;
      if (item.kind === 'release') {
        if (state.holder?.workflowId === item.workflowId) state.holder = null;
        state.queue = state.queue.filter((q) => q.workflowId !== item.workflowId);
        await grantNextInQueue();
        continue;
      }
      const request = item.request;
      if (state.holder && state.holder.workflowId === request.workflowId) {
        await answer(request, { status: 'granted', lockWorkflowId: myId }); // a repeated request (activity retry)
        continue;
      }
      if (state.holder && (await holderIsGone(state.holder))) {
        state.holder = null;
        await grantNextInQueue();
      }
      if (state.holder === null) {
        await grant(request);
      } else if (request.wait) {
        if (!state.queue.some((q) => q.workflowId === request.workflowId)) state.queue.push(request);
        const position = state.queue.findIndex((q) => q.workflowId === request.workflowId) + 1;
        await answer(request, { status: 'queued', holder: state.holder, position });
      } else {
        await answer(request, { status: 'refused', holder: state.holder });
      }
    }
    if (workflowInfo().continueAsNewSuggested && inbox.length === 0) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof clusterLockWorkflow>({ cluster: state.cluster, state });
    }
  }
}

/** Thrown by a mutating workflow when the cluster is held by another one. */
export function clusterBusy(cluster: string, operation: string, holder: LockHolder): ApplicationFailure {
  return ApplicationFailure.nonRetryable(
    `cluster "${cluster}" is busy: ${holder.operation} (workflow id "${holder.workflowId}") has held it since ${holder.since}. ` +
      `${operation} was not started and nothing was changed. Wait for that workflow to finish, or start this one with "waitForLock": true to queue behind it.`,
    'ClusterBusy',
  );
}
