// Cancel runs: a workflow cancelled while a given step runs (held there by a PGOPS_TEST_PAUSE_AT
// pause, so the cancel lands inside the activity), on an in-process worker that is shut down
// before the outcome is read, so no cancelled activity is still running when the test looks.
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { testEnv } from './testEnv';
import { waitForStep } from './progress';
import { withWorker } from './workers';

export interface CancelRun {
  /** The progress step during which the cancel is sent. */
  step: string;
  /** A pause point inside that step's activity (`begin:<step>` for every step). */
  pause?: string;
  /**
   * How long the step is held there (default 4 s). A cancel reaches a running activity with the
   * answer to a heartbeat, and the worker sends one at most every 8 s: a step whose outcome
   * depends on seeing the cancel is held 10 s.
   */
  pauseMs?: number;
  /** What the test does after the start and before waiting for the step (send `resume`). */
  drive?: (handle: WorkflowHandle) => Promise<void>;
}

/** 'completed', 'canceled', or the failure's message. */
export type Outcome = string;

export async function cancelDuring(
  fx: { taskQueue: string; catalogPath: string },
  type: string,
  input: Record<string, unknown>,
  run: CancelRun,
): Promise<{ outcome: Outcome; handle: WorkflowHandle }> {
  const { client } = await testEnv();
  if (run.pause) process.env.PGOPS_TEST_PAUSE_AT = `${run.pause}:${run.pauseMs ?? 4000}`;
  const marker = run.pause ? pauseMarker(run.pause) : undefined;
  const paused = marker?.seen ?? Promise.resolve();
  try {
    return await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const handle = await client.workflow.start(type, {
        taskQueue: fx.taskQueue,
        workflowId: `${type}-cancel-${run.step}-${Date.now()}`,
        args: [input],
      });
      if (run.drive) await run.drive(handle);
      if (run.pause) {
        // The pause's own marker, not the progress query: a query is not answered while the
        // workflow task runs a local activity (describe, verify), so the step would never show.
        await paused;
        await new Promise((r) => setTimeout(r, 1000)); // inside the activity, held by the pause
      } else await waitForStep(handle, run.step, 120_000, 50);
      await handle.cancel();
      const outcome = await handle.result().then(
        () => 'completed',
        (err: unknown) =>
          err instanceof WorkflowFailedError && err.cause?.name === 'CancelledFailure'
            ? 'canceled'
            : `failed: ${(err as Error).message}: ${(err as WorkflowFailedError).cause?.message}`,
      );
      return { outcome, handle };
    });
  } finally {
    marker?.stop();
    delete process.env.PGOPS_TEST_PAUSE_AT;
  }
}

/** Resolves when this process (the in-process worker) prints the pause's marker, within 2 minutes. */
export function pauseMarker(point: string): { seen: Promise<void>; stop: () => void } {
  const line = JSON.stringify({ pausedAt: point });
  const write = process.stdout.write;
  let stop = () => undefined as void;
  const seen = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the worker never paused at ${point}`)), 120_000);
    stop = () => {
      clearTimeout(timer);
      process.stdout.write = write;
    };
    process.stdout.write = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]) {
      if (String(chunk).includes(line)) {
        stop();
        resolve();
      }
      return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof process.stdout.write;
  });
  seen.catch(() => undefined); // read by the caller; never an unhandled rejection
  return { seen, stop };
}
