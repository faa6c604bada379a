// The fleet-wide backup semaphore (src/contract/backupSlots.ts): at most `capacity` backups of one task
// queue's fleet hold a slot at once; the others wait in order. Requests are updates sent with
// update-with-start and answered at once; a queued backup is told its turn by signal. A holder that
// ended without releasing (terminated, timed out) is found by asking the server, and its slot freed.
// Idle (no holder, nobody waiting) it ends after a minute; the next request starts it again.
import {
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  setHandler,
  workflowInfo,
  allHandlersFinished,
} from '@temporalio/workflow';
import {
  backupSlotAcquireUpdate,
  backupSlotGrantedSignal,
  backupSlotReleaseSignal,
  backupSlotsStateQuery,
  type BackupSlotAnswer,
  type BackupSlotRequest,
  type BackupSlotsState,
} from '../contract/backupSlots';
import { DEFAULT_IDLE_END_MS } from '../contract/definitions';
import { quickStep } from './activityProxies';
import { HOLDER_CHECK_OTHERWISE, HOLDER_CHECK_WHILE_WAITED_FOR } from './clusterLockWorkflow';

// Holders are checked for having ended as often as the cluster lock checks its holder.

export interface BackupSlotsInput {
  state?: BackupSlotsState;
  idleEndMs?: number;
}

type InboxItem =
  | { kind: 'acquire'; request: BackupSlotRequest; reply: (answer: BackupSlotAnswer) => void }
  | { kind: 'release'; workflowId: string };

export async function backupSlotsWorkflow(input: BackupSlotsInput): Promise<void> {
  const state: BackupSlotsState = input.state ?? { capacity: 1, holders: [], queue: [] };
  const inbox: InboxItem[] = [];
  setHandler(
    backupSlotAcquireUpdate,
    (request) => new Promise((reply) => inbox.push({ kind: 'acquire', request, reply })),
  );
  setHandler(backupSlotReleaseSignal, ({ workflowId }) => void inbox.push({ kind: 'release', workflowId }));
  setHandler(backupSlotsStateQuery, () => state);

  const holds = (workflowId: string) => state.holders.some((h) => h.workflowId === workflowId);
  const take = (request: BackupSlotRequest) => state.holders.push({ ...request, since: new Date().toISOString() });
  const grantQueued = async () => {
    while (state.holders.length < state.capacity && state.queue.length > 0) {
      const next = state.queue.shift()!;
      take(next);
      try {
        await getExternalWorkflowHandle(next.workflowId, next.runId).signal(backupSlotGrantedSignal);
      } catch {
        state.holders = state.holders.filter((h) => h.workflowId !== next.workflowId); // it has ended
      }
    }
  };
  const dropEndedHolders = async () => {
    for (const holder of [...state.holders]) {
      if (!(await quickStep.isWorkflowRunning({ workflowId: holder.workflowId, runId: holder.runId })))
        state.holders = state.holders.filter((h) => h.workflowId !== holder.workflowId);
    }
    await grantQueued();
  };

  const hasWork = () => inbox.length > 0 || workflowInfo().continueAsNewSuggested;
  for (;;) {
    if (state.holders.length > 0 || state.queue.length > 0) {
      const interval = state.queue.length > 0 ? HOLDER_CHECK_WHILE_WAITED_FOR : HOLDER_CHECK_OTHERWISE;
      if (!(await condition(hasWork, interval))) await dropEndedHolders();
    } else if (!(await condition(hasWork, input.idleEndMs ?? DEFAULT_IDLE_END_MS))) {
      return; // idle: the next request starts it again
    }
    while (inbox.length > 0) {
      const item = inbox.shift()!;
      if (item.kind === 'release') {
        state.holders = state.holders.filter((h) => h.workflowId !== item.workflowId);
        state.queue = state.queue.filter((q) => q.workflowId !== item.workflowId);
        continue;
      }
      const request = item.request;
      state.capacity = Math.max(1, request.capacity);
      if (holds(request.workflowId)) {
        item.reply({ status: 'granted' }); // a repeated request (the local activity retried)
      } else if (state.holders.length < state.capacity && state.queue.length === 0) {
        take(request);
        item.reply({ status: 'granted' });
      } else {
        if (!state.queue.some((q) => q.workflowId === request.workflowId)) state.queue.push(request);
        const position = state.queue.findIndex((q) => q.workflowId === request.workflowId) + 1;
        item.reply({ status: 'queued', position, running: state.holders.length, capacity: state.capacity });
      }
    }
    await grantQueued(); // slots freed by releases, or a larger capacity
    if (workflowInfo().continueAsNewSuggested && inbox.length === 0) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof backupSlotsWorkflow>({ state, idleEndMs: input.idleEndMs });
    }
  }
}
