// A cancel at the steps of the delayed-replica PITR, and a termination during its replay: before
// the target is set the replica is left paused (the bad transaction is never applied); from then
// on a cancel returns it to its delay. A PITR terminated mid-replay leaves the target in force;
// the next PITR takes the lock from the dead holder and finishes with the original delay.
import assert from 'node:assert/strict';
import { testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { cancelDuring, pauseMarker } from './harness/cancelRuns';
import { pitrFixture, type PitrFixture } from './harness/pitrFixture';
import type { DelayedReplicaPitrResult } from '../src/workflows/delayedReplicaPitr';

describe('cancel and terminate during a delayed-replica PITR', function () {
  this.timeout(600_000);
  let fx: PitrFixture;
  let writing = true;
  let writer: Promise<void> | undefined;
  before(async function () {
    this.timeout(180_000);
    fx = await pitrFixture('cancelpitr', '30s');
    await fx.commit([
      'CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL)',
      "INSERT INTO orders SELECT g, 'customer-' || (g % 97) FROM generate_series(1, 2000) g",
      'CREATE TABLE filler (id bigint, pad text)',
    ]);
    await fx.waitForReplicaToSee('SELECT count(*) = 2000 AS ok FROM orders');
    // A primary that keeps committing, as a production one does (the return to delay is seen so).
    writer = (async () => {
      while (writing) {
        await fx.commit(["INSERT INTO filler VALUES (0, 'tick')"]).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
  });
  after(async () => {
    writing = false;
    await writer;
    await fx?.set.stop();
  });

  const replica = () =>
    fx.query<{ pause: string; delay: string; xid: string }>(
      fx.set.replicaEndpoint,
      "SELECT pg_get_wal_replay_pause_state() AS pause, current_setting('recovery_min_apply_delay') AS delay, current_setting('recovery_target_xid') AS xid",
    );
  let incidents = 0;
  const incident = async () => {
    incidents += 1;
    const bad = await fx.commit([`DELETE FROM orders WHERE id = ${incidents}`]);
    await fx.waitForArchive();
    return { cluster: 'orders-delayed', target: { xid: bad.xid }, then: 'export', export: { tables: ['orders'] } };
  };

  it('a cancel before the target is set leaves the replica paused with its settings unchanged', async () => {
    for (const run of [
      { step: 'pause', pause: 'begin:pause' },
      { step: 'check', pause: 'begin:check-target' },
    ]) {
      const { outcome } = await cancelDuring(fx, 'delayedReplicaPitrWorkflow', await incident(), run);
      assert.equal(outcome, 'canceled', `cancel during ${run.step}`);
      const state = await replica();
      assert.notEqual(state.pause, 'not paused', `left paused after a cancel during ${run.step}`);
      assert.equal(state.delay, '30s');
      assert.equal(state.xid, '');
      await fx.query(fx.set.replicaEndpoint, 'SELECT pg_wal_replay_resume()'); // the DBA's "no target after all"
    }
  });

  it('a cancel once the target is set returns the replica to its delay', async () => {
    for (const run of [
      { step: 'restart', pause: 'begin:restart' },
      { step: 'replay', pause: 'begin:replay' },
      { step: 'export', pause: 'begin:export', pauseMs: 10_000 },
    ]) {
      const { outcome } = await cancelDuring(fx, 'delayedReplicaPitrWorkflow', await incident(), run);
      assert.equal(outcome, 'canceled', `cancel during ${run.step}`);
      const state = await replica();
      assert.equal(state.pause, 'not paused', `replaying again after a cancel during ${run.step}`);
      assert.equal(state.delay, '30s', `the original delay after a cancel during ${run.step}`);
      assert.equal(state.xid, '', `no target left after a cancel during ${run.step}`);
    }
  });

  it('a PITR terminated during replay: the next one takes the lock and returns the replica to its delay', async () => {
    const { client } = await testEnv();
    const input = await incident();
    // Held at the start of the replay step: a replay this short could otherwise end (and the run
    // reach 'done') between two polls of the progress query.
    process.env.PGOPS_TEST_PAUSE_AT = 'begin:replay:3000';
    const marker = pauseMarker('begin:replay');
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const first = await client.workflow.start('delayedReplicaPitrWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `pitr-terminated-${Date.now()}`,
        args: [input],
      });
      try {
        await marker.seen;
      } finally {
        marker.stop();
        delete process.env.PGOPS_TEST_PAUSE_AT;
      }
      await first.terminate('operator gave up on this run');
      assert.equal((await replica()).delay, '0', 'the target stays in force after a termination');
      // The replica replays on to the target and pauses there. A PITR started while it still
      // replays would pause it short of the target itself and refuse (see the README): wait.
      const deadline = Date.now() + 120_000;
      while ((await replica()).pause !== 'paused') {
        assert.ok(Date.now() < deadline, 'the replica never paused at the target');
        await new Promise((r) => setTimeout(r, 500));
      }
      const next = (await client.workflow.execute('delayedReplicaPitrWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `pitr-after-terminate-${Date.now()}`,
        args: [input],
      })) as DelayedReplicaPitrResult;
      assert.equal(next.finalState, 'delayed replica again');
      assert.equal(next.returnedToDelay?.delay, '30000ms', 'the original delay, kept beside the target');
      assert.equal(next.exported?.[0]?.rows, 2000 - incidents + 1, 'the rows before this incident');
    });
    const state = await replica();
    assert.equal(state.delay, '30s');
    assert.equal(state.xid, '');
  });
});
