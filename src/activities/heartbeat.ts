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
import { activityProgressSignal } from '../contract/definitions';

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

/** Activities whose own withHeartbeats carries their details: keepAlive must not blank them. */
const reportingItself = new WeakSet<Context>();

/**
 * Every activity heartbeats while it runs, even a quick one that reports nothing: quick steps
 * have a heartbeat timeout too, so a worker SIGKILLed inside one is noticed within that timeout
 * instead of the step's whole start-to-close timeout (10 s instead of 60 s). A step that reports
 * progress heartbeats through withHeartbeats instead, with its details. Local activities cannot
 * heartbeat (a lost one is noticed by the workflow task timeout).
 */
export function keepAlive<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args: A) => {
    const ctx = Context.current();
    if (ctx.info.isLocal) return fn(...args);
    const ticker = setInterval(() => {
      if (!reportingItself.has(ctx)) ctx.heartbeat();
    }, 2000);
    try {
      return await fn(...args);
    } finally {
      clearInterval(ticker);
    }
  };
}

/**
 * A step that ends within this long sends no progress signal at all: each one costs the workflow
 * a workflow task (and a few events), and the next step's report follows at once anyway. Its
 * reports still go out in heartbeats; a step that fails in that time sends its last report.
 */
export const FIRST_SIGNAL_AFTER_MS = 1000;

export async function withHeartbeats<T>(
  body: (progress: ActivityProgress) => Promise<T>,
  opts: HeartbeatOptions = {},
): Promise<T> {
  const ctx = Context.current();
  reportingItself.add(ctx);
  const now = opts.now ?? Date.now;
  const startedAt = now();
  let details: { detail: string; numbers?: Record<string, number | string> } = { detail: 'started' };
  let lastSignal: number | undefined;
  let deferred: NodeJS.Timeout | undefined;
  const ticker = setInterval(() => ctx.heartbeat(details), opts.heartbeatMs ?? 2000);
  ctx.heartbeat(details);
  const sendSignal = () => {
    clearTimeout(deferred);
    deferred = undefined;
    lastSignal = now();
    const execution = ctx.info.workflowExecution;
    if (!execution) return; // a standalone activity has no workflow to tell
    ctx.client.workflow
      .getHandle(execution.workflowId, execution.runId)
      .signal(activityProgressSignal, details)
      .catch(() => undefined);
  };
  const progress: ActivityProgress = {
    signal: ctx.cancellationSignal,
    report(detail, numbers) {
      details = { detail, numbers };
      ctx.heartbeat(details);
      const at = now();
      const age = at - startedAt;
      if (lastSignal === undefined && age < FIRST_SIGNAL_AFTER_MS) {
        deferred ??= setTimeout(sendSignal, FIRST_SIGNAL_AFTER_MS - age);
        return;
      }
      if (lastSignal !== undefined && at - lastSignal < progressSignalInterval(age)) return;
      sendSignal();
    },
  };
  try {
    return await body(progress);
  } catch (err) {
    if (deferred) sendSignal(); // why a short step failed, in the workflow's progress and the UI
    throw err;
  } finally {
    clearTimeout(deferred);
    clearInterval(ticker);
  }
}
