// A delayed replica's PITR after its primary was restored in place (README "History"). The replica
// held back by its delay is still before the restore's fork and can reach two branches: the
// primary's new timeline, which it follows, and the old timeline's WAL after the fork (the history
// the restore rolled back), where transaction ids are handed out a second time. A target is looked
// for on the replica's own path first; one that lies only on the rolled-back branch is refused
// unless the replica is to be promoted, since it could never return to its delay from there.
import assert from 'node:assert/strict';
import { testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { failureOf } from './harness/failures';
import { restoredPrimaryFixture, type RestoredPrimaryFixture } from './harness/restoredPrimaryFixture';
import { commitStatements } from './harness/sampleData';
import { replayStatus } from '../src/drivers/postgres/replica/replayControl';
import { withSession } from '../src/drivers/postgres/session';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';
import type { DelayedReplicaPitrResult } from '../src/workflows/delayedReplicaPitr';

type Commit = { xid: string; commitTime: string };

/**
 * Delayed replica before a backup, then five commits after it (the branch a restore rolls back),
 * then the primary restored to the backup: the replica is told to follow the new timeline but,
 * held by its delay, stays before the fork.
 */
async function primaryRestoredUnderDelayedReplica(label: string) {
  const fx = await restoredPrimaryFixture(label);
  const { run } = fx;
  await fx.sql(fx.set.replicaEndpoint, "ALTER SYSTEM SET recovery_min_apply_delay = '1h'");
  await fx.sql(fx.set.replicaEndpoint, 'SELECT pg_reload_conf()');
  await fx.note('held-by-the-delay');
  const backup = (await run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: 'orders' })).backup.id;
  const rolledBack: Commit[] = [];
  for (let i = 1; i <= 5; i++)
    rolledBack.push(
      await commitStatements(fx.set.primaryEndpoint, [`INSERT INTO notes (body) VALUES ('rolled-back-${i}')`]),
    );
  await fx.archiveNow();
  const restored = await run<RollbackRestoreResult>('rollbackRestoreWorkflow', {
    cluster: 'orders',
    backup,
    confirm: 'orders',
  });
  const replicas = restored.replicas as { timeline: number; replicas: { position: string; action: string }[] };
  assert.equal(replicas.replicas[0]?.position, 'before-fork', JSON.stringify(restored.replicas));
  assert.equal(replicas.replicas[0]?.action, 'followed');
  return { fx, run, rolledBack, newTimeline: replicas.timeline };
}

const pitr = (target: Record<string, string>, extra: Record<string, unknown> = {}) => ({
  cluster: 'orders-delayed',
  target,
  inclusive: true,
  ...extra,
});

describe('a delayed replica PITR across the timelines of a primary restored in place', function () {
  this.timeout(300_000);
  let setup: Awaited<ReturnType<typeof primaryRestoredUnderDelayedReplica>>;
  let fx: RestoredPrimaryFixture;

  before(async () => {
    setup = await primaryRestoredUnderDelayedReplica('pitr-tl');
    fx = setup.fx;
  });
  after(async () => fx?.set.stop());

  it('refuses a target that lies only on the rolled-back branch, leaving the replica paused and its settings as they were', async () => {
    const lost = setup.rolledBack[2]!;
    const { client } = await testEnv();
    const failure = await withWorker(fx.taskQueue, fx.catalogPath, () =>
      failureOf(
        client.workflow.execute('delayedReplicaPitrWorkflow', {
          taskQueue: fx.taskQueue,
          workflowId: `pitr-tl-refused-${Date.now()}`,
          args: [pitr({ time: lost.commitTime }, { then: 'pause', maxPause: '1s' })],
        }),
      ),
    );
    assert.equal(failure.type, 'PreconditionFailed', failure.message);
    if (process.env.SHOW_MESSAGES) console.log('REFUSAL', failure.message);
    assert.match(failure.message, /lies on timeline 1 at [0-9A-F]+\/[0-9A-F]+, a branch of the history/);
    assert.match(failure.message, new RegExp(`follows timeline ${setup.newTimeline}`));
    assert.match(failure.message, /then "promote"/);
    const status = await replayStatus(fx.set.replicaEndpoint);
    assert.notEqual(status.pauseState, 'not paused', 'left paused');
    assert.equal(status.settings.recovery_target_time.value, '', 'no target written');
    const timeline = await fx.sql<{ t: string }>(fx.set.replicaEndpoint, 'SHOW recovery_target_timeline');
    assert.equal(Object.values(timeline[0]!)[0], String(setup.newTimeline));
  });

  it('stops at a transaction id handed out on both branches on the branch the replica follows, says so, and returns to the delay', async () => {
    // The restored primary hands out the rolled-back branch's xids again: commit one of them anew.
    const wanted = BigInt(setup.rolledBack[2]!.xid);
    let again: Commit | undefined;
    while (!again) {
      const commit = await withSession(fx.set.primaryEndpoint, async (c) => {
        await c.query('BEGIN');
        const xid = BigInt((await c.query<{ x: string }>('SELECT pg_current_xact_id()::text AS x')).rows[0]!.x);
        assert.ok(xid <= wanted, `the new timeline began at or before xid ${wanted} (now ${xid})`);
        if (xid === wanted) await c.query("INSERT INTO notes (body) VALUES ('on-the-new-timeline')");
        await c.query('COMMIT');
        return xid === wanted;
      });
      if (commit) again = { xid: String(wanted), commitTime: '' };
    }
    await fx.archiveNow();
    const result = await setup.run<DelayedReplicaPitrResult>(
      'delayedReplicaPitrWorkflow',
      pitr({ xid: again.xid }, { then: 'pause', maxPause: '1s' }),
    );
    if (process.env.SHOW_MESSAGES) console.log('NOTE', result.checked.note);
    assert.match(result.checked.note ?? '', /also lies on another branch .*timeline 1.*follows timeline/);
    assert.equal(result.checked.timeline, undefined, 'nothing written beside the target');
    assert.equal(result.finalState, 'delayed replica again');
    assert.equal(await fx.replicaHas('on-the-new-timeline'), true);
    assert.equal(await fx.replicaHas('rolled-back-1'), false, 'the rolled-back branch was never replayed');
    const status = await replayStatus(fx.set.replicaEndpoint);
    assert.equal(status.settings.recovery_min_apply_delay.value, '3600000', 'delayed again');
  });
});

describe('a delayed replica promoted on the branch its primary rolled back', function () {
  this.timeout(300_000);
  let setup: Awaited<ReturnType<typeof primaryRestoredUnderDelayedReplica>>;

  before(async () => {
    setup = await primaryRestoredUnderDelayedReplica('pitr-tl-promote');
  });
  after(async () => setup?.fx.set.stop());

  it('writes the branch timeline beside the target, replays the rolled-back rows up to it and promotes there', async () => {
    const { fx } = setup;
    const lost = setup.rolledBack[2]!;
    const result = await setup.run<DelayedReplicaPitrResult>(
      'delayedReplicaPitrWorkflow',
      pitr({ time: lost.commitTime }, { then: 'promote' }),
    );
    assert.equal(result.checked.timeline, 1);
    assert.match(result.checked.note ?? '', /a branch this replica does not follow/);
    assert.equal(result.finalState, 'promoted');
    const rows = await fx.sql<{ body: string }>(
      fx.set.replicaEndpoint,
      "SELECT body FROM notes WHERE body LIKE 'rolled-back-%' ORDER BY id",
    );
    assert.deepEqual(
      rows.map((r) => r.body),
      ['rolled-back-1', 'rolled-back-2', 'rolled-back-3'],
    );
  });
});
