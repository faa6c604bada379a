// The server's own event times of one workflow, printed as a timeline: where its time went
// (workflow tasks, activities, local activities, signals). Shared by the benchmarks.
import type { Client } from '@temporalio/client';

export async function printTimeline(client: Client, workflowId: string, indent = ''): Promise<void> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const events = history.events ?? [];
  const t0 = Number(events[0]?.eventTime?.seconds ?? 0) * 1000 + Math.round((events[0]?.eventTime?.nanos ?? 0) / 1e6);
  const at = (e: (typeof events)[number]) =>
    Number(e.eventTime?.seconds ?? 0) * 1000 + Math.round((e.eventTime?.nanos ?? 0) / 1e6) - t0;
  const names = new Map<string, string>();
  const lines: string[] = [];
  for (const e of events) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) names.set(String(e.eventId), scheduled.activityType?.name ?? '?');
    const started = e.activityTaskStartedEventAttributes;
    const completed = e.activityTaskCompletedEventAttributes;
    if (scheduled) lines.push(`${String(at(e)).padStart(5)} ms  schedule ${names.get(String(e.eventId))}`);
    if (started) lines.push(`${String(at(e)).padStart(5)} ms  start    ${names.get(String(started.scheduledEventId))}`);
    if (completed)
      lines.push(`${String(at(e)).padStart(5)} ms  complete ${names.get(String(completed.scheduledEventId))}`);
    if (e.workflowTaskScheduledEventAttributes) lines.push(`${String(at(e)).padStart(5)} ms  workflow task scheduled`);
    if (e.workflowTaskStartedEventAttributes) lines.push(`${String(at(e)).padStart(5)} ms  workflow task started`);
    if (e.workflowTaskCompletedEventAttributes) lines.push(`${String(at(e)).padStart(5)} ms  workflow task completed`);
    const marker = e.markerRecordedEventAttributes;
    if (marker) lines.push(`${String(at(e)).padStart(5)} ms  local    ${localActivityName(marker.details)}`);
    if (e.workflowExecutionSignaledEventAttributes)
      lines.push(`${String(at(e)).padStart(5)} ms  signal   ${e.workflowExecutionSignaledEventAttributes.signalName}`);
    if (e.workflowExecutionCompletedEventAttributes) lines.push(`${String(at(e)).padStart(5)} ms  workflow completed`);
  }
  console.log(`\n${indent}timeline of ${workflowId} (server event times):\n${lines.map((l) => indent + l).join('\n')}`);
}

/** The activity type a local activity's marker records (its `data` payload is JSON). */
function localActivityName(details: unknown): string {
  const payload = (details as Record<string, { payloads?: Array<{ data?: Uint8Array }> }> | null)?.data?.payloads?.[0];
  try {
    const parsed = JSON.parse(Buffer.from(payload?.data ?? []).toString('utf8')) as Record<string, unknown>;
    return String(parsed.activityType ?? parsed.activity_type ?? 'local activity');
  } catch {
    return 'local activity';
  }
}
