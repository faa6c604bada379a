// The return to delay on a quiet primary: once the PITR's replica is back on its delay it replays
// everything the archive holds at once (the bad transaction is older than the delay), and nothing
// new ever comes. Its lag is then as old as the primary's last commit, and its replay does not move:
// only its startup process, waiting for the next WAL, shows that it is where it should be.
import assert from 'node:assert/strict';
import { testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { pitrFixture, type PitrFixture } from './harness/pitrFixture';
import type { DelayedReplicaPitrResult } from '../src/workflows/delayedReplicaPitr';
import type { DelayedReplicaPitrInput } from '../src/workflows/pitrInput';

/** A 1 s delay: the lag that passed for "near the delay" was at most 1.5 s + 30 s. */
const DELAY = '1s';
const LAG_ALLOWED_BEFORE_MS = 31_500;

describe('delayed-replica PITR on a quiet primary (real servers, 1 s delay)', function () {
  this.timeout(240_000);
  let fx: PitrFixture;

  before(async () => {
    fx = await pitrFixture('pitrquiet', DELAY);
    // No autovacuum on it: its ANALYZE would commit, and a fresh commit makes the lag small again.
    await fx.commit([
      'CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL) WITH (autovacuum_enabled = false)',
      "INSERT INTO orders SELECT g, 'customer-' || g FROM generate_series(1, 200) g",
    ]);
    await fx.waitForArchive();
    await fx.waitForReplicaToSee('SELECT count(*) = 200 AS ok FROM orders');
  });
  after(async () => fx?.set.stop());

  it('returns to the delay at once when nothing new will come, and says the replica waits for WAL', async () => {
    await fx.pauseReplica();
    const bad = await fx.commit(['DELETE FROM orders WHERE id <= 50']);
    await fx.waitForArchive();
    // The primary's last commit grows older than any lag that passed for "near the delay".
    const deletedAt = Date.parse(bad.commitTime);
    await new Promise((r) => setTimeout(r, Math.max(0, deletedAt + LAG_ALLOWED_BEFORE_MS + 5000 - Date.now())));

    const { client } = await testEnv();
    // An export only: inserting the rows back would write to the primary, and the replica would have news.
    const input: DelayedReplicaPitrInput = {
      cluster: 'orders-delayed',
      target: { xid: bad.xid },
      then: 'export',
      export: { tables: ['orders'] },
    };
    const started = Date.now();
    const result = (await withWorker(fx.taskQueue, fx.catalogPath, () =>
      client.workflow.execute('delayedReplicaPitrWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `pitr-quiet-${Date.now()}`,
        args: [input],
      }),
    )) as DelayedReplicaPitrResult;
    const tookMs = Date.now() - started;
    console.log(
      `      PITR with its return to delay: ${(tookMs / 1000).toFixed(1)} s; ${JSON.stringify(result.returnedToDelay)}`,
    );
    assert.equal(result.exported?.[0]?.rows, 200, 'every row before the DELETE');
    assert.equal(result.finalState, 'delayed replica again');
    const back = result.returnedToDelay!;
    assert.equal(back.pauseState, 'not paused');
    assert.equal(back.delay, '1000ms');
    assert.equal(back.waitingFor, 'wal', 'its startup process waits for the next WAL');
    assert.ok(back.lagSeconds !== null && back.lagSeconds * 1000 > LAG_ALLOWED_BEFORE_MS, `lag ${back.lagSeconds} s`);
    // The confirmation waited for no timeout (it was 300 s).
    assert.ok(tookMs < 90_000, `the PITR took ${tookMs} ms`);
    const onReplica = await fx.query<{ n: number }>(fx.set.replicaEndpoint, 'SELECT count(*)::int AS n FROM orders');
    assert.equal(onReplica.n, 150, 'back on its delay, the replica replayed the DELETE like everything else');
  });
});
