import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { WorkflowFailedError } from '@temporalio/client';
import { testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { waitForStep } from './harness/progress';
import { failureOf } from './harness/failures';
import { backupFixture, type BackupFixture, type StorageUnderTest } from './harness/backupFixture';
import { refusesConnections } from '../src/drivers/postgres/session';
import { endpointOf } from '../src/dev/localPostgres';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';
import type { ListBackupsResult } from '../src/workflows/backupCatalog';

/** The message of the refusal at the top of the failure (the harness's failureOf). */
async function refusal(fx: BackupFixture, type: string, input: Record<string, unknown>): Promise<string> {
  return (await failureOf(fx.run(type, input))).message;
}

const backup = (fx: BackupFixture, extra: Record<string, unknown> = {}) =>
  fx.run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: fx.name, ...extra });
const restore = (fx: BackupFixture, extra: Record<string, unknown>) =>
  fx.run<RollbackRestoreResult>('rollbackRestoreWorkflow', { cluster: fx.name, confirm: fx.name, ...extra });

function storageSuite(storage: StorageUnderTest, opts: { waldir: boolean; tablespace: boolean }) {
  describe(`backup and rollback restore on ${storage} storage${opts.waldir ? ', separate WAL volume' : ''}${opts.tablespace ? ', tablespace' : ''}`, () => {
    let fx: BackupFixture;
    before(async function () {
      this.timeout(120_000);
      fx = await backupFixture(`br-${storage}`, { storage, ...opts });
    });
    after(async () => fx?.teardown());

    it('takes an online backup and restores exactly the rows as they were, after more writes', async function () {
      this.timeout(180_000);
      const before = await fx.checksum();
      const taken = await backup(fx);
      assert.equal(taken.took, 'online');
      assert.equal(taken.backup.mode, 'online');
      assert.match(taken.backup.labelfile ?? '', /START WAL LOCATION/);
      assert.ok((taken.backupModeMs ?? -1) >= 0, 'time in backup mode is reported');
      const roles = taken.backup.snapshots.map((s) => s.role);
      if (storage !== 'rbd') {
        assert.equal(roles.includes('wal'), opts.waldir);
        assert.equal(roles.includes('tablespace'), opts.tablespace);
      }
      if (opts.tablespace) assert.match(taken.backup.spcmapfile ?? '', /ts1/);
      await fx.sql('DELETE FROM orders WHERE id % 3 = 0');
      if (opts.tablespace) await fx.sql("UPDATE notes SET body = body || ' changed'");
      assert.notEqual(await fx.checksum(), before);

      const restored = await restore(fx, { backup: taken.backup.id });
      assert.equal(restored.restored.id, taken.backup.id);
      assert.ok(restored.safetySnapshot, 'a safety snapshot is taken first');
      assert.equal(restored.verified.inRecovery, false);
      assert.ok(restored.verified.timeline > taken.backup.timeline, 'recovery ends on a new timeline');
      assert.deepEqual(restored.verified.settingsRemoved.sort(), [
        'recovery_target',
        'recovery_target_action',
        'recovery_target_timeline',
        'restore_command',
      ]);
      assert.equal(await fx.checksum(), before);
    });

    it('replays archived WAL forward from the snapshot to a recovery target: exactly the rows up to it', async function () {
      this.timeout(180_000);
      const taken = await backup(fx, { label: 'before the batch' });
      await fx.commit(["INSERT INTO orders SELECT g, 'late', 1 FROM generate_series(100001, 100050) g"]);
      const good = await fx.checksum();
      const bad = await fx.commit(['DELETE FROM orders WHERE id < 500']);
      await fx.archiveNow();
      const restored = await restore(fx, { backup: taken.backup.id, recoveryTarget: { xid: bad.xid } });
      assert.equal(restored.recovery?.state, 'promoted');
      assert.match(
        restored.verified.lastRecoveryLog ?? '',
        /recovery stopping before commit of transaction|archive recovery complete/,
      );
      assert.equal(await fx.checksum(), good);
    });

    it('undoes a mistaken restore from its safety snapshot', async function () {
      this.timeout(240_000);
      const first = await backup(fx);
      await fx.sql("INSERT INTO orders VALUES (900001, 'precious', 42)");
      const current = await fx.checksum();
      const mistaken = await restore(fx, { backup: first.backup.id });
      assert.notEqual(await fx.checksum(), current, 'the mistaken restore went back in time');
      assert.match(mistaken.undo ?? '', /safetySnapshot/);
      const undone = await restore(fx, { backup: mistaken.safetySnapshot!.id, safetySnapshot: false });
      assert.equal(undone.restored.kind, 'pre-restore');
      assert.equal(await fx.checksum(), current);
    });

    it('takes an offline backup: stop, snapshot, start again', async function () {
      this.timeout(180_000);
      const before = await fx.checksum();
      const taken = await backup(fx, { mode: 'offline' });
      assert.equal(taken.took, 'offline');
      assert.ok(taken.restarted && taken.restarted.readyReplicas === 1);
      assert.equal(taken.backup.cleanShutdown, true);
      await fx.sql('DELETE FROM orders WHERE id > 10');
      await restore(fx, { backup: taken.backup.id, safetySnapshot: false });
      assert.equal(await fx.checksum(), before);
      const listed = await fx.run<ListBackupsResult>('listBackupsWorkflow', { cluster: fx.name });
      assert.deepEqual(listed.strays, [], 'no snapshot is left without its record');
      assert.ok(listed.backups.some((b) => b.id === taken.backup.id));
    });
  });
}

storageSuite('copy', { waldir: true, tablespace: true });
storageSuite('btrfs', { waldir: true, tablespace: true });
storageSuite('rbd', { waldir: true, tablespace: false });

describe('backup refusals, retention and stopped clusters (copy storage)', () => {
  let fx: BackupFixture;
  before(async function () {
    this.timeout(120_000);
    fx = await backupFixture('br-rules', { storage: 'copy' });
  });
  after(async () => fx?.teardown());

  it('gives a stopped cluster an offline snapshot and leaves it stopped', async function () {
    this.timeout(120_000);
    await fx.run('plannedStopWorkflow', { cluster: fx.name });
    const taken = await backup(fx);
    assert.equal(taken.took, 'offline-of-stopped-cluster');
    assert.match(taken.note ?? '', /left stopped/);
    assert.equal(await refusesConnections(endpointOf(fx.cluster)), true, 'the backup did not start the cluster');
    await fx.run('plannedStartWorkflow', { cluster: fx.name });
  });

  it('keeps the newest backups and the one just taken when pruning; deletes one on request', async function () {
    this.timeout(180_000);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await backup(fx)).backup.id);
    const pruned = await backup(fx, { keep: { count: 2 } });
    const listed = await fx.run<ListBackupsResult>('listBackupsWorkflow', { cluster: fx.name });
    const regular = listed.backups.filter((b) => b.kind === 'backup').map((b) => b.id);
    assert.deepEqual(regular, [pruned.backup.id, ids[2]]);
    assert.ok(pruned.pruned!.deleted.includes(ids[0]!) && pruned.pruned!.deleted.includes(ids[1]!));

    const refused = await refusal(fx, 'deleteBackupWorkflow', { cluster: fx.name, backup: ids[2], confirm: 'shop2' });
    assert.match(refused, /confirm must repeat the cluster name/);
    const deleted = await fx.run<{ deleted: { id: string } }>('deleteBackupWorkflow', {
      cluster: fx.name,
      backup: ids[2],
      confirm: fx.name,
    });
    assert.equal(deleted.deleted.id, ids[2]);
    const after = await fx.run<ListBackupsResult>('listBackupsWorkflow', { cluster: fx.name });
    assert.deepEqual(
      after.backups.filter((b) => b.kind === 'backup').map((b) => b.id),
      [pruned.backup.id],
    );
    assert.deepEqual(after.strays, []);
    assert.match(
      await refusal(fx, 'deleteBackupWorkflow', { cluster: fx.name, backup: ids[2], confirm: fx.name }),
      /there is no backup/,
    );
  });

  it('refuses a backup while a restore holds the cluster, and queues one that waits for the lock', async function () {
    this.timeout(180_000);
    const { client } = await testEnv();
    const latest = (await backup(fx)).backup;
    // The in-process worker reads the pause at call time: the rollback waits 6 s, holding the lock.
    process.env.PGOPS_TEST_PAUSE_AT = 'begin:rollback:6000';
    try {
      await withWorker(fx.taskQueue, fx.catalogPath, async () => {
        const restoring = await client.workflow.start('rollbackRestoreWorkflow', {
          taskQueue: fx.taskQueue,
          workflowId: `busy-restore-${Date.now()}`,
          args: [{ cluster: fx.name, backup: latest.id, confirm: fx.name, safetySnapshot: false }],
        });
        await waitForStep(restoring, 'rollback');
        const refused = await client.workflow
          .execute('snapshotBackupWorkflow', {
            taskQueue: fx.taskQueue,
            workflowId: `busy-backup-${Date.now()}`,
            args: [{ cluster: fx.name }],
          })
          .then(
            () => assert.fail('the backup ran during the restore'),
            (err: unknown) => err as WorkflowFailedError,
          );
        assert.equal((refused.cause as { type?: string }).type, 'ClusterBusy');
        assert.match(refused.cause?.message ?? '', /rollbackRestoreWorkflow/);
        const queued = client.workflow.execute('snapshotBackupWorkflow', {
          taskQueue: fx.taskQueue,
          workflowId: `queued-backup-${Date.now()}`,
          args: [{ cluster: fx.name, waitForLock: '2m' }],
        }) as Promise<SnapshotBackupResult>;
        const restored = (await restoring.result()) as RollbackRestoreResult;
        const taken = await queued;
        assert.equal(taken.took, 'online', 'the queued backup ran after the restore, on the running cluster');
        assert.ok(Date.parse(taken.backup.startedAt) > Date.parse(restored.restored.stoppedAt));
      });
    } finally {
      delete process.env.PGOPS_TEST_PAUSE_AT;
    }
  });

  it('refuses bad restore input before touching anything', async function () {
    this.timeout(120_000);
    const before = await fx.checksum();
    const latest = (await backup(fx)).backup;
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ cluster: fx.name, backup: latest.id }, /confirm must repeat the cluster name/],
      [{ cluster: fx.name, backup: latest.id, confirm: 'other' }, /confirm must repeat the cluster name/],
      [{ cluster: fx.name, backup: 'nope', confirm: fx.name }, /backup must be "latest" or a backup id/],
      [
        { cluster: fx.name, backup: '20200101T000000Z-00000000', confirm: fx.name },
        /there is no backup "20200101T000000Z-00000000"/,
      ],
      [
        { cluster: fx.name, backup: latest.id, confirm: fx.name, recoveryTarget: { lsn: '0/1' } },
        /before the end of backup/,
      ],
      [
        { cluster: fx.name, backup: latest.id, confirm: fx.name, recoveryTarget: { time: '2001-01-01T00:00:00Z' } },
        /before backup .* ended/,
      ],
      [
        {
          cluster: fx.name,
          backup: latest.id,
          confirm: fx.name,
          recoveryTarget: { xid: '5', time: '2030-01-01T00:00:00Z' },
        },
        /exactly one/,
      ],
      [{ cluster: fx.name, backup: latest.id, confirm: fx.name, afterRecovery: 'explode' }, /afterRecovery must be/],
      [
        { cluster: fx.name, backup: latest.id, confirm: fx.name, recoveryTargetTimeline: 'newest' },
        /recoveryTargetTimeline must be "current" \(the backup's timeline\), "latest" or a timeline number/,
      ],
      [
        { cluster: fx.name, backup: latest.id, confirm: fx.name, restoreMethod: 'swap' },
        /restoreMethod must be "auto", "clone-swap", "rollback" or left out/,
      ],
      [
        { cluster: fx.name, backup: latest.id, confirm: fx.name, restoreMethod: 'clone-swap' },
        /storage kind "local" restores by its own method .*: restoreMethod "clone-swap" is for storage kind "rbd" with runner "local"\. Nothing was changed/,
      ],
      [
        { cluster: fx.name, backup: latest.id, confirm: fx.name, flatten: 'later' },
        /flatten must be "background", "never"/,
      ],
    ];
    for (const [input, pattern] of cases) assert.match(await refusal(fx, 'rollbackRestoreWorkflow', input), pattern);
    assert.match(await refusal(fx, 'snapshotBackupWorkflow', { cluster: fx.name, mode: 'hot' }), /mode must be/);
    assert.match(await refusal(fx, 'snapshotBackupWorkflow', { cluster: fx.name, keep: { count: 0 } }), /keep.count/);
    assert.equal(await refusesConnections(endpointOf(fx.cluster)), false, 'still running');
    assert.equal(await fx.checksum(), before);
  });

  it('refuses an online backup when the server does not archive, though the catalog names a walArchive', async function () {
    this.timeout(180_000);
    const restartWith = async (statement: string) => {
      await fx.sql(statement);
      await fx.run('plannedStopWorkflow', { cluster: fx.name });
      await fx.run('plannedStartWorkflow', { cluster: fx.name });
    };
    await restartWith("ALTER SYSTEM SET archive_mode = 'off'");
    try {
      const listed = await fx.run<ListBackupsResult>('listBackupsWorkflow', { cluster: fx.name });
      assert.match(await refusal(fx, 'snapshotBackupWorkflow', { cluster: fx.name }), /archive_mode is off/);
      const after = await fx.run<ListBackupsResult>('listBackupsWorkflow', { cluster: fx.name });
      assert.equal(after.backups.length, listed.backups.length, 'no backup was taken');
      assert.equal(await refusesConnections(endpointOf(fx.cluster)), false, 'still running');
    } finally {
      await restartWith('ALTER SYSTEM RESET archive_mode');
    }
  });

  it("refuses to restore another cluster's backup, or one of another database system", async function () {
    this.timeout(180_000);
    const other = await backupFixture('br-other', { storage: 'copy', name: 'other' });
    try {
      // Both clusters share one snapshot directory: the record says whose backup it is.
      const otherEntry = {
        target: {
          kind: 'local',
          pgdata: other.cluster.pgdata,
          port: other.cluster.port,
          osUser: other.cluster.osUser,
          logFile: other.cluster.logFile,
        },
        storage: fx.storage,
        walArchive: other.archiveDir,
      };
      fx.writeCatalog({ other: otherEntry });
      const mine = (await backup(fx)).backup;
      const text = await refusal(fx, 'rollbackRestoreWorkflow', {
        cluster: 'other',
        backup: mine.id,
        confirm: 'other',
      });
      assert.match(text, /is a backup of cluster "shop", not of "other"/);
      // The same name pointing at another database system: refused by system identifier.
      fx.writeCatalog();
      const original = fx.catalogPath;
      other.writeCatalog();
      writeFileSync(original, stringify({ clusters: { shop: otherEntry } }));
      const text2 = await refusal(fx, 'rollbackRestoreWorkflow', { cluster: 'shop', backup: mine.id, confirm: 'shop' });
      assert.match(text2, /was taken of database system \d+, but cluster "shop" is system \d+/);
      assert.equal(await refusesConnections(endpointOf(other.cluster)), false);
    } finally {
      fx.writeCatalog();
      await other.teardown();
    }
  });
});
