// Prints a running workflow's progress steps as they change. stop() waits for the query in
// flight: a query still retrying when the client closes fires its gRPC retry timer on a closed
// channel, and Node dies with "Channel has been shut down".
import type { WorkflowHandle } from '@temporalio/client';
import { progressQuery } from '../src/contract/definitions';

export function watchProgress(
  handle: WorkflowHandle,
  say: (line: string) => void,
  intervalMs = 250,
): () => Promise<void> {
  let last = '';
  let inFlight: Promise<void> = Promise.resolve();
  let stopped = false;
  const timer = setInterval(() => {
    if (stopped) return;
    inFlight = handle
      .query(progressQuery)
      .then((p) => {
        if (p.step !== last && !stopped) say(`  progress: ${p.step}: ${p.detail}`);
        last = p.step;
      })
      .catch(() => undefined);
  }, intervalMs);
  return async () => {
    stopped = true;
    clearInterval(timer);
    await inFlight;
  };
}
