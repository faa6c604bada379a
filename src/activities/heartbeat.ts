// Progress from a long activity: heartbeats every couple of seconds for as long as the step runs
// (so a crashed worker is noticed within the heartbeat timeout and a cancel is delivered, even
// while a blocking command such as `pg_ctl start -w` runs), and, at most every few seconds, a
// signal to the workflow so its `progress` query and UI details show the numbers.
import { Context } from '@temporalio/activity';
import { activityProgressSignal } from '../workflows/definitions';

export interface ActivityProgress {
  report(detail: string, numbers?: Record<string, number | string>): void;
  signal: AbortSignal;
}

export async function withHeartbeats<T>(
  body: (progress: ActivityProgress) => Promise<T>,
  opts: { heartbeatMs?: number; signalMs?: number } = {},
): Promise<T> {
  const ctx = Context.current();
  let details: { detail: string; numbers?: Record<string, number | string> } = { detail: 'started' };
  let lastSignal = 0;
  const ticker = setInterval(() => ctx.heartbeat(details), opts.heartbeatMs ?? 2000);
  ctx.heartbeat(details);
  const progress: ActivityProgress = {
    signal: ctx.cancellationSignal,
    report(detail, numbers) {
      details = { detail, numbers };
      ctx.heartbeat(details);
      const now = Date.now();
      if (now - lastSignal < (opts.signalMs ?? 3000)) return;
      lastSignal = now;
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
