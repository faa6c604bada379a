// The worker SIGKILLed while a replica is being rebuilt after an in-place restore of its primary:
// once its configuration is saved (PGDATA not yet emptied), and once the copy from the primary is
// done (its configuration not yet put back). The next worker finishes the rebuild: the replica
// runs with its own settings, without the rolled-back row, and replays new rows.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { runThroughKills } from './harness/crashRuns';
import type { WorkerProcess } from './harness/workers';
import { restoredPrimaryFixture, type RestoredPrimaryFixture } from './harness/restoredPrimaryFixture';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';

describe('a worker killed while a replica is rebuilt after a restore', () => {
  let fx: RestoredPrimaryFixture;
  const workers: WorkerProcess[] = [];

  before(async function () {
    this.timeout(180_000);
    fx = await restoredPrimaryFixture('restore-replicas-crash');
  });
  after(async () => {
    for (const w of workers) await w.kill();
    await fx?.set.stop();
  });

  it('finishes the rebuild on the next worker, after a kill once the configuration is saved and once the copy is done', async function () {
    this.timeout(420_000);
    const backupId = (await fx.run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: 'orders' })).backup.id;
    await fx.note('bad');
    await fx.waitForReplica('bad');
    const { result } = await runThroughKills<RollbackRestoreResult>(
      fx,
      workers,
      'rollbackRestoreWorkflow',
      { cluster: 'orders', backup: backupId, confirm: 'orders' },
      [{ pause: 'rebuild-replica-saved' }, { pause: 'rebuild-replica-cloned' }],
    );
    const replicas = result.replicas as Exclude<RollbackRestoreResult['replicas'], { warning: string } | undefined>;
    assert.ok(replicas && 'replicas' in replicas, JSON.stringify(result.replicas));
    assert.equal(replicas.replicas[0]!.action, 'rebuilt', replicas.replicas[0]!.note);
    assert.match(replicas.replicas[0]!.note, /interrupted by a crash was finished/);
    assert.equal(existsSync(`${fx.set.replica.pgdata}.pgops-rebuild`), false, 'the saved configuration is cleaned up');
    assert.equal(await fx.replicaHas('bad'), false);
    await fx.note('after');
    await fx.waitForReplica('after');
    const workMem = await fx.sql<{ w: string }>(fx.set.replicaEndpoint, "SELECT current_setting('work_mem') AS w");
    assert.equal(workMem[0]!.w, '7MB', 'the replica kept its own settings');
  });
});
