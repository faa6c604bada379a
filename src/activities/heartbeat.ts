// Progress from a long activity: heartbeats every couple of seconds for as long as the step runs
// (so a crashed worker is noticed within the heartbeat timeout and a cancel is delivered, even
// while a blocking command such as `pg_ctl start -w` runs), carrying the live numbers (the UI's
// pending-activity view and the client read them there); and, more and more rarely as the step
// goes on, a signal to the workflow so its `progress` query and UI details show them too.
//
// Each signal adds about four events to the workflow's history, and Temporal terminates a
// workflow at 51,200. A report every few seconds for a 24 h replay would pass that limit; the
// cadence below keeps a whole day of reports near 650 signals (see progressSignalInterval).
import { Context } from '@temporalio/activity';
import { activityProgressSignal } from '../workflows/definitions';

export interface ActivityProgress {
  report(detail: string, numbers?: Record<string, number | string>): void;
  signal: AbortSignal;
}

/**
 * How long to wait between two progress signals, for a step that has run `ageMs`: every 3 s in
 * its first minute (short steps show live numbers), then a twentieth of its age, at most 150 s.
 */
export function progressSignalInterval(ageMs: number): number {
  return Math.min(150_000, Math.max(3000, ageMs / 20));
}

export interface HeartbeatOptions {
  heartbeatMs?: number;
  /** For tests: the clock the signal cadence runs on. */
  now?: () => number;
}

export async function withHeartbeats<T>(
  body: (progress: ActivityProgress) => Promise<T>,
  opts: HeartbeatOptions = {},
): Promise<T> {
  const ctx = Context.current();
  const now = opts.now ?? Date.now;
  const startedAt = now();
  let details: { detail: string; numbers?: Record<string, number | string> } = { detail: 'started' };
  let lastSignal: number | undefined;
  const ticker = setInterval(() => ctx.heartbeat(details), opts.heartbeatMs ?? 2000);
  ctx.heartbeat(details);
  const progress: ActivityProgress = {
    signal: ctx.cancellationSignal,
    report(detail, numbers) {
      details = { detail, numbers };
      ctx.heartbeat(details);
      const at = now();
      if (lastSignal !== undefined && at - lastSignal < progressSignalInterval(at - startedAt)) return;
      lastSignal = at;
      const execution = ctx.info.workflowExecution;
      if (!execution) return; // a standalone activity has no workflow to tell
      ctx.client.workflow
        .getHandle(execution.workflowId, execution.runId)
        .signal(activityProgressSignal, details)
        .catch(() => undefined);
    },
  };
  try {
    return await body(progress);
  } finally {
    clearInterval(ticker);
  }
}
