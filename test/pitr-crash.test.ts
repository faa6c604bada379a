// Crash: the worker running delayedReplicaPitrWorkflow is SIGKILLed three times — while the replica
// is paused before its restart, while replay is being monitored, and while it returns to delay —
// and a new worker each time finishes the job correctly. Monitoring resumed after a kill must not
// restart recovery.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { testEnv } from './harness/testEnv';
import { waitForStep } from './harness/progress';
import { workerProcess, type WorkerProcess } from './harness/workers';
import { pitrFixture, type PitrFixture } from './harness/pitrFixture';
import type { DelayedReplicaPitrResult } from '../src/workflows/delayedReplicaPitr';

describe('crash: SIGKILL of the worker during a delayed-replica PITR', function () {
  this.timeout(420_000);
  let fx: PitrFixture;
  const workers: WorkerProcess[] = [];
  before(async () => {
    fx = await pitrFixture('pitrcrash', '30s');
    await fx.commit([
      'CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL)',
      "INSERT INTO orders SELECT g, 'customer-' || (g % 97) FROM generate_series(1, 2000) g",
      'CREATE TABLE filler (id bigint, pad text)',
    ]);
    await fx.waitForReplicaToSee('SELECT count(*) = 2000 AS ok FROM orders');
  });
  after(async () => {
    for (const w of workers) await w.kill();
    await fx?.set.stop();
  });

  const readyCount = () =>
    (readFileSync(fx.set.replica.logFile, 'utf8').match(/ready to accept read-only connections/g) ?? []).length;

  it('finishes the export and the return to delay after kills before the restart, during replay and during the return', async () => {
    const { client } = await testEnv();
    // Many commits of WAL before the incident: the replica waits at the first of them (the delay),
    // so after the restart it has real work to replay while the monitor runs.
    for (let i = 0; i < 20; i++)
      await fx.commit([`INSERT INTO filler SELECT g, repeat('x', 500) FROM generate_series(1, 10000) g`]);
    const bad = await fx.commit(['DELETE FROM orders WHERE id % 2 = 0']);
    await fx.waitForArchive();

    const spawnWorker = async () => {
      const w = await workerProcess(fx.taskQueue, fx.catalogPath);
      workers.push(w);
      return w;
    };

    let worker = await spawnWorker();
    const handle = await client.workflow.start('delayedReplicaPitrWorkflow', {
      taskQueue: fx.taskQueue,
      workflowId: `pitr-crash-${Date.now()}`,
      args: [{ cluster: 'orders-delayed', target: { xid: bad.xid }, then: 'export', export: { tables: ['orders'] } }],
    });
    const firstKillStep = await waitForStep(handle, ['lock', 'check', 'set-target'], 120_000, 20);
    const readyBeforeRestart = readyCount();
    await worker.kill('SIGKILL');
    console.log(`      kill 1 at step ${firstKillStep} (replica paused, not yet restarted)`);

    worker = await spawnWorker();
    await waitForStep(handle, ['replay'], 120_000, 20);
    await worker.kill('SIGKILL');
    const readyAtReplayKill = readyCount();
    assert.equal(readyAtReplayKill, readyBeforeRestart + 1, 'exactly one restart to apply the target');
    console.log('      kill 2 during replay monitoring');

    worker = await spawnWorker();
    await waitForStep(handle, ['at-target', 'export', 'return-to-delay'], 180_000, 20);
    assert.equal(readyCount(), readyAtReplayKill, 'the retried monitor resumed watching; it did not restart recovery');
    await waitForStep(handle, ['return-to-delay'], 180_000, 20);
    await worker.kill('SIGKILL');
    console.log('      kill 3 during the return to delay');

    worker = await spawnWorker();
    const result = (await handle.result()) as DelayedReplicaPitrResult;
    assert.equal(result.finalState, 'delayed replica again');
    assert.equal(result.returnedToDelay?.pauseState, 'not paused');
    assert.equal(result.returnedToDelay?.delay, '30000ms');
    assert.equal(result.exported?.[0]?.rows, 2000, 'exactly the pre-incident rows');

    const history = await handle.fetchHistory();
    const scheduled = new Map(
      (history.events ?? [])
        .filter((e) => e.activityTaskScheduledEventAttributes)
        .map((e) => [String(e.eventId), e.activityTaskScheduledEventAttributes!.activityType?.name]),
    );
    const attempts = (name: string) =>
      Math.max(
        0,
        ...(history.events ?? [])
          .filter(
            (e) =>
              e.activityTaskStartedEventAttributes &&
              scheduled.get(String(e.activityTaskStartedEventAttributes.scheduledEventId)) === name,
          )
          .map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 1),
      );
    assert.ok(
      attempts('waitForReplayTarget') >= 2,
      `waitForReplayTarget ran ${attempts('waitForReplayTarget')} time(s): the kill did not interrupt monitoring`,
    );
  });
});
