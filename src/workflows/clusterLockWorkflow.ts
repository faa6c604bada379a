// One lock workflow per cluster and task queue (id `pgops-lock/<queue>/<cluster>`) makes mutating workflows on the same
// cluster mutually exclusive. It must live inside Temporal, not in a workflow-id convention: a
// workflow started from the UI gets whatever id the user typed.
//
// Requests arrive as updates sent with update-with-start (by a local activity of the requester),
// and are answered in the same round trip: granted, queued or refused. Only a queued requester
// is told later, by signal, that its turn came. A holder that ended without releasing
// (terminated, timed out) is detected by asking the server and replaced.
//
// An idle lock (no holder, nobody waiting) ends after a minute (PGOPS_LOCK_IDLE_END_SECONDS); the next request starts it
// again. A lock that starts with no state (the first, one started again after it ended idle, or
// one that replaces a terminated lock workflow) first asks the cluster's running mutating
// workflows whether one of them holds the cluster (`holdsClusterLock`), so ending or
// terminating a lock never frees a cluster that a running workflow holds. Every mutating step
// also asks this workflow (`confirmLockHolder`) before it acts: see src/activities/lockGuard.ts.
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
  DEFAULT_IDLE_END_MS,
  lockAcquireUpdate,
  lockAnswerSignal,
  lockConfirmUpdate,
  lockReleaseSignal,
  lockStateQuery,
  lockWorkflowId,
  type LockAnswer,
  type LockConfirmation,
  type LockHolder,
  type LockRequest,
  type LockState,
} from '../contract/definitions';
import { quickStep } from './activityProxies';

/** How often a holder's liveness is checked while someone waits behind it. */
// Its own calls to the server (is a holder still running, who holds the cluster) are ordinary
// activities, not local ones: a local activity keeps the lock's workflow task open, and updates
// that arrive meanwhile (30 queued requests at once) broke that task in the SDK ("history is out
// of order", then a nondeterminism error), which failed every request. They run only when two
// workflows compete, and when a lock starts.
export const HOLDER_CHECK_WHILE_WAITED_FOR = '15 seconds';
/** And while nobody waits: a dead holder must not keep an idle lock from ending. */
export const HOLDER_CHECK_OTHERWISE = '5 minutes';

export interface ClusterLockInput {
  cluster: string;
  state?: LockState;
  /** How long an idle lock waits for a request before it ends (PGOPS_LOCK_IDLE_END_SECONDS on the worker). */
  idleEndMs?: number;
  /** The acquire request that started this lock (update-with-start): not asked whether it holds the cluster. */
  startedFor?: LockRequest;
  /** Who holds the cluster, as its requester found when no lock ran: the lock need not ask again. */
  runningMutators?: LockHolder[];
}

type InboxItem =
  | { kind: 'acquire'; request: LockRequest; reply: (answer: LockAnswer) => void }
  | { kind: 'confirm'; request: LockRequest; reply: (answer: LockConfirmation) => void }
  | { kind: 'release'; workflowId: string };

export async function clusterLockWorkflow(input: ClusterLockInput): Promise<void> {
  const state: LockState = input.state ?? { cluster: input.cluster, holder: null, queue: [] };
  const inbox: InboxItem[] = [];
  setHandler(lockAcquireUpdate, (request) => new Promise((reply) => inbox.push({ kind: 'acquire', request, reply })));
  setHandler(lockConfirmUpdate, (request) => new Promise((reply) => inbox.push({ kind: 'confirm', request, reply })));
  setHandler(lockReleaseSignal, ({ workflowId }) => void inbox.push({ kind: 'release', workflowId }));
  setHandler(lockStateQuery, () => state);
  const myId = lockWorkflowId(state.cluster, workflowInfo().taskQueue);

  const holderFrom = (request: LockRequest): LockHolder => ({ ...request, since: new Date().toISOString() });
  /** A queued requester learns of its turn by signal; false if it has ended meanwhile. */
  const grantQueued = async (request: LockRequest): Promise<boolean> => {
    state.holder = holderFrom(request);
    try {
      await getExternalWorkflowHandle(request.workflowId, request.runId).signal(lockAnswerSignal, {
        status: 'granted',
        lockWorkflowId: myId,
      });
      return true;
    } catch {
      state.holder = null; // the requester has ended: it no longer needs the lock
      return false;
    }
  };
  const holderIsGone = async (holder: LockHolder): Promise<boolean> =>
    !(await quickStep.isWorkflowRunning({ workflowId: holder.workflowId, runId: holder.runId }));
  const grantNextInQueue = async () => {
    while (state.holder === null && state.queue.length > 0) await grantQueued(state.queue.shift()!);
  };
  const dropHolderIfGone = async () => {
    if (state.holder && (await holderIsGone(state.holder))) {
      state.holder = null;
      await grantNextInQueue();
    }
  };

  if (!input.state) {
    const skip = input.startedFor ? [input.startedFor.workflowId] : [];
    const running = input.runningMutators ?? (await quickStep.findRunningMutators({ cluster: state.cluster, skip }));
    if (running[0]) state.holder = running[0];
  }

  const hasWork = () => inbox.length > 0 || workflowInfo().continueAsNewSuggested;
  for (;;) {
    if (state.holder) {
      // A holder that ended without releasing (terminated, timed out) must not keep waiters
      // waiting until another request happens to arrive, nor an idle lock from ending.
      const interval = state.queue.length > 0 ? HOLDER_CHECK_WHILE_WAITED_FOR : HOLDER_CHECK_OTHERWISE;
      if (!(await condition(hasWork, interval))) await dropHolderIfGone();
    } else if (!(await condition(hasWork, input.idleEndMs ?? DEFAULT_IDLE_END_MS))) {
      // Idle: nobody holds the cluster and nobody waits. A request that arrives from now on
      // starts the lock again, which asks the running workflows before it grants anything.
      return;
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
      if (state.holder?.workflowId !== request.workflowId) await dropHolderIfGone();
      if (item.kind === 'confirm') {
        // A holder the lock lost (reset to before its grant) takes it back if nobody else has it.
        if (state.holder === null && state.queue.length === 0) state.holder = holderFrom(request);
        item.reply(
          state.holder?.workflowId === request.workflowId ? { held: true } : { held: false, holder: state.holder },
        );
        continue;
      }
      if (state.holder === null || state.holder.workflowId === request.workflowId) {
        // A repeated request (the local activity retried) by the holder is granted again.
        state.holder ??= holderFrom(request);
        item.reply({ status: 'granted', lockWorkflowId: myId, since: state.holder.since });
      } else if (request.wait) {
        if (!state.queue.some((q) => q.workflowId === request.workflowId)) state.queue.push(request);
        const position = state.queue.findIndex((q) => q.workflowId === request.workflowId) + 1;
        item.reply({ status: 'queued', holder: state.holder, position });
      } else {
        item.reply({ status: 'refused', holder: state.holder });
      }
    }
    if (workflowInfo().continueAsNewSuggested && inbox.length === 0) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof clusterLockWorkflow>({ cluster: state.cluster, state, idleEndMs: input.idleEndMs });
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
