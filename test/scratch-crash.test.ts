import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { backupFixture, type BackupFixture } from './harness/backupFixture';
import { runThroughKills, logRecoveries } from './harness/crashRuns';
import { cancelDuring } from './harness/cancelRuns';
import { failureOf } from './harness/failures';
import type { WorkerProcess } from './harness/workers';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RecoverRowsResult } from '../src/contract/operations/scratchRestores';

function scratchLeft(fx: BackupFixture): string[] {
  const dir = `${fx.cluster.pgdata}.pgops-scratch`;
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** Rows with ids in the deleted range: 0 before the insert, 200 after it, never anything between. */
async function restored(fx: BackupFixture): Promise<number> {
  const rows = await fx.sql<{ n: string }>('SELECT count(*) AS n FROM orders WHERE id BETWEEN 201 AND 400');
  return Number(rows[0]!.n);
}

describe('scratch restores survive a worker SIGKILLed at each step, and a cancel at each step (copy storage)', () => {
  let fx: BackupFixture;
  const workers: WorkerProcess[] = [];
  let badXid: string;
  before(async function () {
    this.timeout(180_000);
    fx = await backupFixture('scr-crash', { storage: 'copy' });
    await fx.run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: fx.name });
    badXid = (await fx.commit(['DELETE FROM orders WHERE id BETWEEN 201 AND 400'])).xid;
    await fx.commit(["INSERT INTO orders VALUES (900001, 'after the incident', 1)"]);
    await fx.archiveNow();
  });
  afterEach(async () => {
    for (const w of workers.splice(0)) await w.kill('SIGKILL');
  });
  after(async () => fx?.teardown());

  it('killed after the clone, during the replay, during the export and inside the insert: the rows come back once, no scratch left', async function () {
    this.timeout(600_000);
    const { result, recoveries } = await runThroughKills<RecoverRowsResult>(
      fx,
      workers,
      'recoverRowsWorkflow',
      { cluster: fx.name, target: { xid: badXid }, tables: ['orders'], insertMissing: true },
      [
        { pause: 'scratch-cloned' },
        { pause: 'begin:scratch-recovery' },
        { pause: 'begin:export' },
        { pause: 'insert-loaded' },
      ],
      480_000,
    );
    logRecoveries('recoverRows', recoveries);
    assert.deepEqual(
      result.inserted?.map((i) => i.inserted),
      [200],
    );
    assert.equal(await restored(fx), 200, 'every deleted row back, once');
    const later = await fx.sql<{ n: string }>("SELECT count(*) AS n FROM orders WHERE customer = 'after the incident'");
    assert.equal(Number(later[0]!.n), 1, 'the write after the incident is kept');
    assert.equal(result.scratch.removed, true);
    assert.deepEqual(scratchLeft(fx), [], 'the scratch instance the killed workers made is removed');
    // Put the incident back for the cancel runs.
    await fx.sql('DELETE FROM orders WHERE id BETWEEN 201 AND 400');
  });

  it('a drill that outlives its maxDuration gives up with that reason, its scratch removed', async function () {
    this.timeout(240_000);
    process.env.PGOPS_TEST_PAUSE_AT = 'begin:scratch-recovery:90000';
    try {
      const failed = await failureOf(
        fx.run('verifyBackupWorkflow', { cluster: fx.name, maxDuration: '1m', checks: { archive: false } }),
      );
      assert.equal(failed.type, 'TimedOut');
      assert.match(failed.message, /gave up after its time limit \(maxDuration 1m\); its scratch instance was removed/);
    } finally {
      delete process.env.PGOPS_TEST_PAUSE_AT;
    }
    assert.deepEqual(scratchLeft(fx), []);
  });

  for (const step of ['clone', 'scratch-recovery', 'export', 'insert-into-primary']) {
    it(`cancelled during ${step}: no scratch left, the rows inserted whole or not at all`, async function () {
      this.timeout(240_000);
      const before = await restored(fx);
      const { outcome } = await cancelDuring(
        fx,
        'recoverRowsWorkflow',
        { cluster: fx.name, target: { xid: badXid }, tables: ['orders'], insertMissing: true },
        { step, pause: `begin:${step}`, pauseMs: 10_000 },
      );
      assert.ok(outcome === 'canceled' || outcome === 'completed', `ends cancelled (or done): ${outcome}`);
      const after = await restored(fx);
      assert.ok(after === before || after === 200, `the insert is whole or absent: ${after} rows`);
      if (step !== 'insert-into-primary') assert.equal(after, before, 'nothing written before the insert step');
      assert.deepEqual(scratchLeft(fx), [], 'the scratch instance is removed');
      if (after === 200) await fx.sql('DELETE FROM orders WHERE id BETWEEN 201 AND 400');
    });
  }
});
