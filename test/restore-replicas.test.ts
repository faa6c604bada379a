// The replicas of a primary restored in place (README "History"). Before this, a replica that had
// replayed past the restore's fork point logged "new timeline N forked off current database
// system timeline M before current recovery point" for ever, kept the rolled-back rows and never
// received another row, and nothing in the restore's result said so; one before the fork kept
// reading its own timeline's old WAL from the archive, past the fork.
import assert from 'node:assert/strict';
import { restoredPrimaryFixture, type RestoredPrimaryFixture } from './harness/restoredPrimaryFixture';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';

type ReplicasDone = Exclude<RollbackRestoreResult['replicas'], { warning: string } | undefined>;

describe('the replicas of a primary restored in place', () => {
  let fx: RestoredPrimaryFixture;
  const run = <T>(type: string, input: Record<string, unknown>) => fx.run<T>(type, input);
  const backup = async () =>
    (await run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: 'orders' })).backup.id;
  const restore = (id: string, extra: Record<string, unknown> = {}) =>
    run<RollbackRestoreResult>('rollbackRestoreWorkflow', {
      cluster: 'orders',
      backup: id,
      confirm: 'orders',
      ...extra,
    });
  const replicasOf = (restored: RollbackRestoreResult): ReplicasDone => {
    const replicas = restored.replicas as ReplicasDone;
    assert.ok(replicas && 'replicas' in replicas, JSON.stringify(restored.replicas));
    return replicas;
  };

  before(async function () {
    this.timeout(180_000);
    fx = await restoredPrimaryFixture('restore-replicas');
  });
  after(async () => fx?.set.stop());

  it('rebuilds a replica that replayed past the fork, keeping its own settings, and it replicates again', async function () {
    this.timeout(300_000);
    const id = await backup();
    await fx.note('bad');
    await fx.waitForReplica('bad');
    const restored = await restore(id);
    const replicas = replicasOf(restored);
    assert.equal(replicas.replicas.length, 1);
    assert.equal(replicas.replicas[0]!.replica, 'orders-delayed');
    assert.equal(replicas.replicas[0]!.position, 'past-fork', replicas.replicas[0]!.note);
    assert.equal(replicas.replicas[0]!.action, 'rebuilt');
    assert.equal(restored.warnings, undefined);
    assert.equal(await fx.replicaHas('bad'), false, 'the rolled-back row is gone from the replica');
    await fx.note('after-rebuild');
    await fx.waitForReplica('after-rebuild');
    const workMem = await fx.sql<{ w: string }>(fx.set.replicaEndpoint, "SELECT current_setting('work_mem') AS w");
    assert.equal(workMem[0]!.w, '7MB');
    const recovery = await fx.sql<{ r: boolean }>(fx.set.replicaEndpoint, 'SELECT pg_is_in_recovery() AS r');
    assert.equal(recovery[0]!.r, true);
  });

  it('tells a replica that has not reached the fork to follow the new timeline, and it does', async function () {
    this.timeout(300_000);
    // Held before the backup, as a delayed replica is: the restore's fork lies after it.
    await fx.sql(fx.set.replicaEndpoint, 'SELECT pg_wal_replay_pause()');
    const id = await backup();
    await fx.note('bad-2');
    const replicas = replicasOf(await restore(id));
    assert.equal(replicas.replicas[0]!.position, 'before-fork', replicas.replicas[0]!.note);
    assert.equal(replicas.replicas[0]!.action, 'followed');
    assert.match(replicas.replicas[0]!.note, new RegExp(`recovery_target_timeline = ${replicas.timeline}`));
    await fx.note('after-follow');
    await fx.waitForReplica('after-follow');
    assert.equal(await fx.replicaHas('bad-2'), false, 'the replica never replayed the rolled-back branch');
  });

  it('with "replicas": "leave", leaves a diverged replica as it is and warns at the top of the result', async function () {
    this.timeout(300_000);
    const id = await backup();
    await fx.note('bad-3');
    await fx.waitForReplica('bad-3');
    const restored = await restore(id, { replicas: 'leave' });
    assert.equal(restored.warnings?.length, 1);
    assert.match(restored.warnings![0]!, /replica "orders-delayed": WARNING: left as it is .*diverged .*rebuild it/);
    assert.equal(await fx.replicaHas('bad-3'), true, 'untouched');
  });

  it('rebuilds a replica that followed an earlier timeline by number without that number, and it replicates again', async function () {
    this.timeout(300_000);
    // The replica still carries recovery_target_timeline = <n> from the "follow" above; a copy of
    // today's primary has a timeline history without <n> on it.
    const before = await fx.sql<{ t: string }>(fx.set.replicaEndpoint, 'SHOW recovery_target_timeline');
    assert.match(Object.values(before[0]!)[0] as string, /^\d+$/);
    const replicas = replicasOf(await restore(await backup()));
    assert.equal(replicas.replicas[0]!.action, 'rebuilt', replicas.replicas[0]!.note);
    await fx.note('after-rebuild-2');
    await fx.waitForReplica('after-rebuild-2');
    const after = await fx.sql<{ t: string }>(fx.set.replicaEndpoint, 'SHOW recovery_target_timeline');
    assert.equal(Object.values(after[0]!)[0], 'latest');
  });
});
