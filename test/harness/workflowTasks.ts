// Workflow task durations from a workflow's history (WorkflowTaskStarted → WorkflowTaskCompleted).
// A task stays open while its local activities run; the SDK heartbeats one that passes 80 % of its
// 10 s timeout, so a task that took about 8 s was waiting on something it should not.
import type { WorkflowHandle } from '@temporalio/client';
import { tsToMs } from '@temporalio/common/lib/time';

/** The longest workflow task of the run, in ms, and the event id that completed it. */
export async function longestWorkflowTask(handle: WorkflowHandle): Promise<{ ms: number; completedEventId: number }> {
  const events = (await handle.fetchHistory()).events ?? [];
  const startedAt = new Map<string, number>();
  let longest = { ms: 0, completedEventId: 0 };
  for (const e of events) {
    const time = tsToMs(e.eventTime);
    if (e.workflowTaskStartedEventAttributes) startedAt.set(String(e.eventId), time);
    const completed = e.workflowTaskCompletedEventAttributes;
    if (!completed) continue;
    const ms = time - (startedAt.get(String(completed.startedEventId)) ?? time);
    if (ms > longest.ms) longest = { ms, completedEventId: Number(e.eventId) };
  }
  return longest;
}
