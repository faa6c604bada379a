// Crash: the worker running delayedReplicaPitrWorkflow is SIGKILLed inside every one of its steps
// (pause, inspect, check, set the target, restart, replay monitoring, export, clear the target,
// the return's restart, the delay check), one workflow carried through eleven workers. Each
// retried step finishes the job; no retry restarts the replica or its recovery again.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { type WorkerProcess } from './harness/workers';
import { attemptsByActivity, logRecoveries, runThroughKills, type KillPoint } from './harness/crashRuns';
import { pitrFixture, type PitrFixture } from './harness/pitrFixture';
import type { DelayedReplicaPitrResult } from '../src/workflows/delayedReplicaPitr';

describe('crash: SIGKILL of the worker during a delayed-replica PITR', function () {
  this.timeout(420_000);
  let fx: PitrFixture;
  const workers: WorkerProcess[] = [];
  before(async () => {
    fx = await pitrFixture('pitrcrash', '60s'); // room for the kills before the pause lands
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

  it('finishes the export and the return to delay after a kill inside every step', async function () {
    // Many commits of WAL before the incident: the replica waits at the first of them (the delay),
    // so after the restart it has real work to replay while the monitor runs.
    for (let i = 0; i < 20; i++)
      await fx.commit([`INSERT INTO filler SELECT g, repeat('x', 500) FROM generate_series(1, 10000) g`]);
    const bad = await fx.commit(['DELETE FROM orders WHERE id % 2 = 0']);
    await fx.waitForArchive();
    const readyBefore = readyCount();

    // begin:restart twice: the worker after the first kill there pauses at begin:replay, so the
    // second begin:restart point is the return to delay's restart.
    const points: KillPoint[] = [
      { pause: 'begin:pause' },
      // The check runs beside the lock request, before the inspection under the lock.
      { pause: 'begin:check-target' },
      { pause: 'begin:inspect' },
      { pause: 'begin:apply-target' },
      { pause: 'begin:restart' },
      { pause: 'begin:replay' },
      { pause: 'begin:export' },
      { pause: 'begin:clear-target' },
      { pause: 'begin:restart' },
      { pause: 'begin:confirm-delay' },
    ];
    // The primary keeps committing, as a production one does: the return to delay is confirmed by
    // replay advancing again (an idle primary's replica has nothing to replay after the kills).
    let writing = true;
    const writer = (async () => {
      while (writing) {
        await fx.commit(["INSERT INTO filler VALUES (0, 'tick')"]).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    const { result, handle, recoveries, restarted } = await runThroughKills<DelayedReplicaPitrResult>(
      fx,
      workers,
      'delayedReplicaPitrWorkflow',
      { cluster: 'orders-delayed', target: { xid: bad.xid }, then: 'export', export: { tables: ['orders'] } },
      points,
      360_000,
    ).finally(async () => {
      writing = false;
      await writer;
    });
    logRecoveries('delayed-replica PITR', recoveries);
    assert.equal(result.finalState, 'delayed replica again');
    assert.equal(result.returnedToDelay?.pauseState, 'not paused');
    assert.equal(result.returnedToDelay?.delay, '60000ms');
    assert.equal(result.exported?.[0]?.rows, 2000, 'exactly the pre-incident rows');
    // One restart to apply the target and one to return to delay: a retried step never restarted
    // the replica again, and the retried monitor resumed watching instead of restarting recovery.
    assert.equal(readyCount(), readyBefore + 2, 'exactly two restarts of the replica');

    const attempts = await attemptsByActivity(handle);
    // The pause, the inspection and the check (beside the lock request) are local activities:
    // the next worker began them again.
    assert.ok(restarted.has('begin:pause'), 'pauseReplicaReplay began again after the kill');
    assert.ok(restarted.has('begin:inspect'), 'inspectReplica began again after the kill');
    assert.ok(restarted.has('begin:check-target'), 'checkPitrTarget began again after the kill');
    for (const activity of [
      'applyPitrTarget',
      'restartAndWaitForReplayTarget',
      'restartReplicaIfPending', // the return to delay's restart
      'exportLostRows',
      'clearPitrTarget',
      'confirmDelayedReplay',
    ])
      assert.ok(
        (attempts.get(activity) ?? 0) >= 2,
        `${activity} was retried after the kill (${attempts.get(activity)})`,
      );
  });
});
