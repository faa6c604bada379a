// Crash tests need a worker to be SIGKILLed at an exact point inside a step (in backup mode,
// between the snapshot and pg_backup_stop...). PGOPS_TEST_PAUSE_AT="point:ms,point:ms" makes the
// step wait there; it is never set in production, where this returns at once.
import { delay } from './waiting';

export async function pauseForTests(point: string, signal?: AbortSignal): Promise<void> {
  const spec = process.env.PGOPS_TEST_PAUSE_AT;
  if (!spec) return;
  for (const item of spec.split(',')) {
    // Points may contain ':' themselves (begin:rollback): the pause is after the last one.
    const colon = item.lastIndexOf(':');
    if (colon > 0 && item.slice(0, colon) === point) {
      // What a crash test waits for before it kills the worker.
      process.stdout.write(`${JSON.stringify({ pausedAt: point })}\n`);
      await delay(Number(item.slice(colon + 1)), signal);
    }
  }
}
