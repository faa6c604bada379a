import assert from 'node:assert/strict';
import { testEnv } from './harness/testEnv';
import { waitForStep } from './harness/progress';
import { workerProcess, type WorkerProcess } from './harness/workers';
import { localClusterFixture, type LocalFixture } from './harness/fixtures';
import { refusesConnections } from '../src/drivers/postgres/session';
import { endpointOf } from '../src/dev/localPostgres';
import { resumeSignal } from '../src/workflows/definitions';
import type { PlannedStopResult } from '../src/workflows/plannedStop';

describe('crash: the worker is SIGKILLed mid-operation and a new worker finishes it', () => {
  let fx: LocalFixture;
  const workers: WorkerProcess[] = [];
  before(async () => {
    // Enough rows that the shutdown checkpoint takes a moment: the kill lands while pg_ctl stop runs.
    fx = await localClusterFixture('crash', { rows: 300_000 });
  });
  after(async () => {
    for (const w of workers) await w.kill();
    await fx?.teardown();
  });

  it('finishes a planned stop with hold after kills during the stop and during the hold, data intact', async function () {
    this.timeout(240_000);
    const { client } = await testEnv();
    const checksum = await fx.checksum();

    const first = await workerProcess(fx.taskQueue, fx.catalogPath);
    workers.push(first);
    const handle = await client.workflow.start('plannedStopWorkflow', {
      taskQueue: fx.taskQueue,
      workflowId: `crash-${Date.now()}`,
      args: [{ cluster: fx.name, holdUntilResumed: true, maxHold: '1h' }],
    });
    await first.waitForOutput(/"step":"stop-begin"/);
    await first.kill('SIGKILL');

    const second = await workerProcess(fx.taskQueue, fx.catalogPath);
    workers.push(second);
    await waitForStep(handle, 'hold');
    assert.equal(await refusesConnections(endpointOf(fx.cluster)), true, 'the database must be down during the hold');
    await second.kill('SIGKILL');

    const third = await workerProcess(fx.taskQueue, fx.catalogPath);
    workers.push(third);
    await handle.signal(resumeSignal, { by: 'crash test' });
    const result = (await handle.result()) as PlannedStopResult;
    assert.equal(result.hold?.resumedBy, 'signal');
    assert.equal(result.after.running, true);

    // The kill really landed inside the stop step: Temporal ran it again on the new worker.
    const history = await handle.fetchHistory();
    const stopActivityIds = new Set(
      (history.events ?? [])
        .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'stopCluster')
        .map((e) => String(e.eventId)),
    );
    const stopAttempts = (history.events ?? [])
      .filter(
        (e) =>
          e.activityTaskStartedEventAttributes &&
          stopActivityIds.has(String(e.activityTaskStartedEventAttributes.scheduledEventId)),
      )
      .map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 1);
    assert.ok(
      Math.max(...stopAttempts) >= 2,
      `stopCluster ran in attempt(s) ${stopAttempts}: the kill did not interrupt it`,
    );

    assert.equal(await refusesConnections(endpointOf(fx.cluster)), false);
    assert.equal(await fx.checksum(), checksum);
    assert.equal(await fx.rowCount(), 300_000);
  });
});
