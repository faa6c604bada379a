// Crash runs: a workflow carried through a sequence of worker processes, each SIGKILLed at a
// chosen point, the last one finishing; what the history says of retries; and how long each
// retried step took to begin again on the next worker (the time to recover).
import type { WorkflowHandle } from '@temporalio/client';
import { testEnv } from './testEnv';
import { waitForStep } from './progress';
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
 * Where a worker is SIGKILLed. `pause`: a pause point of src/drivers/testPause.ts (every step has
 * `begin:<step>`, printed as {"pausedAt":"begin:<step>"}); the worker is killed while paused
 * inside the activity. `step`: a `progress` step with no activity running (the hold); the worker
 * is killed once the workflow reports it, and `then` runs once the next worker is up (a signal).
 * Points name steps, not history events, so they hold when a step becomes a local activity.
 */
export type KillPoint =
  { pause: string; marker?: RegExp } | { step: string; then?: (handle: WorkflowHandle) => Promise<void> };

export interface Recovery {
  /** The kill point. */
  point: string;
  /** From the SIGKILL (or the signal, after a kill during a hold) to the next worker beginning a step. */
  ms: number;
}

export function describePoint(point: KillPoint): string {
  return 'pause' in point ? point.pause : `step ${point.step}`;
}

function pauseEnv(point: KillPoint | undefined): Record<string, string> {
  return point && 'pause' in point ? { PGOPS_TEST_PAUSE_AT: `${point.pause}:8000` } : {};
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Runs a workflow through a sequence of workers: worker i is SIGKILLed at kill point i; the last
 * worker has no pause and finishes. Returns, per kill inside an activity, the time from the kill
 * until the next worker began a step again.
 */
export async function runThroughKills<T>(
  fx: { taskQueue: string; catalogPath: string },
  workers: WorkerProcess[],
  type: string,
  input: Record<string, unknown>,
  killPoints: KillPoint[],
  resultTimeoutMs = 240_000,
): Promise<{ result: T; handle: WorkflowHandle; recoveries: Recovery[]; restarted: Set<string> }> {
  const { client } = await testEnv();
  let worker = await workerProcess(fx.taskQueue, fx.catalogPath, pauseEnv(killPoints[0]));
  workers.push(worker);
  const handle = await client.workflow.start(type, {
    taskQueue: fx.taskQueue,
    workflowId: `${type}-crash-${Date.now()}`,
    args: [input],
  });
  const recoveries: Array<Promise<Recovery>> = [];
  const nextAfterKill: Array<{ pause: string; next: WorkerProcess }> = [];
  for (const [i, point] of killPoints.entries()) {
    if ('pause' in point) {
      const marker = point.marker ?? new RegExp(`"pausedAt":"${escapeRegExp(point.pause)}"`);
      await worker.waitForOutput(marker, 120_000);
    } else {
      await waitForStep(handle, point.step, 120_000, 50);
    }
    await worker.kill('SIGKILL');
    const killedAt = Date.now();
    worker = await workerProcess(fx.taskQueue, fx.catalogPath, pauseEnv(killPoints[i + 1]));
    workers.push(worker);
    if ('pause' in point) {
      nextAfterKill.push({ pause: point.pause, next: worker });
      // The workflow waits for the killed step: the first step the next worker begins is its retry.
      const next = worker;
      recoveries.push(
        next
          .waitForOutput(/"step":"begin:/, 120_000)
          .then(() => ({ point: point.pause, ms: Date.now() - killedAt }))
          .catch(() => ({ point: point.pause, ms: Number.NaN })),
      );
    } else if (point.then) {
      // After a kill while no step ran (the hold), what the signal costs: the workflow task it
      // makes first waits on the dead worker's sticky queue.
      const next = worker;
      const signalledAt = Date.now();
      await point.then(handle);
      recoveries.push(
        next
          .waitForOutput(/"step":"begin:/, 120_000)
          .then(() => ({ point: `${point.step} (from the signal)`, ms: Date.now() - signalledAt }))
          .catch(() => ({ point: point.step, ms: Number.NaN })),
      );
    }
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
  // A step killed at its `begin:<step>` pause that the next worker began again. The history shows
  // this for ordinary activities (attemptsByActivity); a local activity leaves only its final marker.
  const restarted = new Set(
    nextAfterKill.filter(({ pause, next }) => next.output().includes(`"step":"${pause}"`)).map(({ pause }) => pause),
  );
  return { result, handle, recoveries: await Promise.all(recoveries), restarted };
}

/** One line per kill for the test's output: the README's recovery figures come from these. */
export function logRecoveries(label: string, recoveries: Recovery[]): void {
  const figures = recoveries.map((r) => `${r.point} ${(r.ms / 1000).toFixed(1)} s`).join(', ');
  console.log(`      time to recover (${label}): ${figures}`);
}
