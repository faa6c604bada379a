// Crash runs: a workflow carried through a sequence of worker processes, each SIGKILLed at a
// chosen point (PGOPS_TEST_PAUSE_AT), the last one finishing; and what the history says of retries.
import type { WorkflowHandle } from '@temporalio/client';
import { testEnv } from './testEnv';
import { workerProcess, type WorkerProcess } from './workers';

/** Highest attempt number each activity type reached in the workflow's history. */
export async function attemptsByActivity(handle: WorkflowHandle): Promise<Map<string, number>> {
  const events = (await handle.fetchHistory()).events ?? [];
  const typeOf = new Map<string, string>();
  for (const e of events) {
    const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
    if (name) typeOf.set(String(e.eventId), name);
  }
  const attempts = new Map<string, number>();
  for (const e of events) {
    const started = e.activityTaskStartedEventAttributes;
    if (!started) continue;
    const name = typeOf.get(String(started.scheduledEventId))!;
    attempts.set(name, Math.max(attempts.get(name) ?? 0, started.attempt ?? 1));
  }
  return attempts;
}

/**
 * Runs a workflow through a sequence of workers: worker i pauses at kill point i and is SIGKILLed
 * there; the last worker has no pause and finishes.
 */
export async function runThroughKills<T>(
  fx: { taskQueue: string; catalogPath: string },
  workers: WorkerProcess[],
  type: string,
  input: Record<string, unknown>,
  killPoints: Array<{ pause: string; marker: RegExp }>,
  resultTimeoutMs = 240_000,
): Promise<{ result: T; handle: WorkflowHandle }> {
  const { client } = await testEnv();
  let worker = await workerProcess(fx.taskQueue, fx.catalogPath, {
    PGOPS_TEST_PAUSE_AT: `${killPoints[0]!.pause}:8000`,
  });
  workers.push(worker);
  const handle = await client.workflow.start(type, {
    taskQueue: fx.taskQueue,
    workflowId: `${type}-crash-${Date.now()}`,
    args: [input],
  });
  for (const [i, point] of killPoints.entries()) {
    await worker.waitForOutput(point.marker, 120_000);
    await worker.kill('SIGKILL');
    const next = killPoints[i + 1];
    worker = await workerProcess(
      fx.taskQueue,
      fx.catalogPath,
      next ? { PGOPS_TEST_PAUSE_AT: `${next.pause}:8000` } : {},
    );
    workers.push(worker);
  }
  // A run that does not finish says what the last worker printed (the test's own timeout would not).
  let timer: NodeJS.Timeout | undefined;
  const result = (await Promise.race([
    handle.result(),
    new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${type} did not finish; the last worker printed:\n${worker.output().slice(-6000)}`)),
        resultTimeoutMs,
      );
    }),
  ]).finally(() => clearTimeout(timer))) as T;
  await worker.kill(); // no worker of this run may take the next workflow's steps
  return { result, handle };
}
