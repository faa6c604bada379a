import assert from 'node:assert/strict';
import { testEnv } from './harness/testEnv';
import { workerProcess, type WorkerProcess } from './harness/workers';
import { attemptsByActivity, logRecoveries, runThroughKills, type KillPoint } from './harness/crashRuns';
import { backupFixture, type BackupFixture, type StorageUnderTest } from './harness/backupFixture';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';
import type { ListBackupsResult } from '../src/workflows/backupCatalog';

function crashSuite(storage: StorageUnderTest, rollbackPauses: string[]) {
  describe(`crash: the worker is SIGKILLed inside every backup and restore step (${storage})`, () => {
    let fx: BackupFixture;
    const workers: WorkerProcess[] = [];
    before(async function () {
      this.timeout(120_000);
      fx = await backupFixture(`crash-${storage}`, { storage, rows: 20_000 });
    });
    after(async () => {
      for (const w of workers) await w.kill();
      await fx?.teardown();
    });

    let backupId: string;
    let atBackup: string;

    it('finishes an online backup killed in backup mode, with the file system frozen, and after the snapshot', async function () {
      this.timeout(300_000);
      atBackup = await fx.checksum();
      const points = [
        { pause: 'in-backup-mode', marker: /"step":"in-backup-mode"/ },
        ...(storage === 'rbd' ? [{ pause: 'frozen', marker: /"step":"in-backup-mode"/ }] : []),
        { pause: 'after-snapshot', marker: /"step":"snapshot-taken"/ },
      ];
      const { result, handle, recoveries } = await runThroughKills<SnapshotBackupResult>(
        fx,
        workers,
        'snapshotBackupWorkflow',
        { cluster: fx.name },
        points,
      );
      logRecoveries('online backup', recoveries);
      backupId = result.backup.id;
      assert.equal(result.took, 'online');
      assert.equal((await attemptsByActivity(handle)).get('takeOnlineBackup'), points.length + 1);
      // PostgreSQL aborted each dead attempt's backup with its session: none is left open.
      const sessions = await fx.sql<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'temporal-postgres-ops' AND pid <> pg_backend_pid()",
      );
      assert.equal(Number(sessions[0]!.n), 0, 'no backup session is left open');
      const { client } = await testEnv();
      const worker = await workerProcess(fx.taskQueue, fx.catalogPath);
      workers.push(worker);
      const listed = (await client.workflow.execute('listBackupsWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `list-${Date.now()}`,
        args: [{ cluster: fx.name }],
      })) as ListBackupsResult;
      await worker.kill();
      assert.deepEqual(listed.strays, [], 'no half-made snapshot is left');
      assert.deepEqual(
        listed.backups.map((b) => b.id),
        [backupId],
      );
      await fx.sql('INSERT INTO orders VALUES (990001, $1, 1)', ['written after the backup']);
    });

    if (storage === 'copy')
      it('finishes an offline backup with retention killed at every step, and the cluster runs again', async function () {
        this.timeout(300_000);
        const atOffline = await fx.checksum();
        const points: KillPoint[] = [
          { pause: 'begin:plan-backup' },
          { pause: 'begin:stop' },
          { pause: 'begin:verify-quiescent' },
          { pause: 'begin:offline-snapshot' },
          { pause: 'begin:start' },
          { pause: 'begin:prune' },
        ];
        const { result, handle, recoveries, restarted } = await runThroughKills<SnapshotBackupResult>(
          fx,
          workers,
          'snapshotBackupWorkflow',
          { cluster: fx.name, mode: 'offline', keep: { count: 5 } },
          points,
        );
        logRecoveries('offline backup', recoveries);
        assert.equal(result.took, 'offline');
        assert.deepEqual(result.pruned?.deleted, []);
        const attempts = await attemptsByActivity(handle);
        for (const activity of [
          'planSnapshotBackup',
          'stopCluster',
          'takeOfflineSnapshot',
          'startCluster',
          'pruneBackups',
        ])
          assert.ok(
            (attempts.get(activity) ?? 0) >= 2,
            `${activity} was retried after the kill (${attempts.get(activity)})`,
          );
        // A local activity: the next worker began it again.
        assert.ok(restarted.has('begin:verify-quiescent'), 'verifyQuiescent began again after the kill');
        assert.equal(await fx.checksum(), atOffline, 'the cluster runs again with the same data');
      });

    it('finishes a restore killed at every step, and the data is exactly the backup', async function () {
      this.timeout(600_000);
      // Every step of the restore on copy; on rbd the steps that differ from copy's.
      const points: KillPoint[] = [
        ...(storage === 'copy' ? [{ pause: 'begin:check-restore' }, { pause: 'begin:describe' }] : []),
        { pause: 'begin:stop' },
        ...(storage === 'copy' ? [{ pause: 'begin:verify-quiescent' }] : []),
        { pause: 'begin:safety-snapshot' },
        ...rollbackPauses.map((pause) => ({ pause })),
        ...(storage === 'copy' ? [{ pause: 'begin:recovery-files' }] : []),
        { pause: 'begin:start' },
        { pause: 'begin:recovery' },
        ...(storage === 'copy' ? [{ pause: 'begin:verify' }, { pause: 'begin:release' }] : []),
      ];
      const { result, handle, recoveries, restarted } = await runThroughKills<RollbackRestoreResult>(
        fx,
        workers,
        'rollbackRestoreWorkflow',
        { cluster: fx.name, backup: backupId, confirm: fx.name },
        points,
      );
      logRecoveries('restore', recoveries);
      const attempts = await attemptsByActivity(handle);
      const retried = ['stopCluster', 'takeOfflineSnapshot', 'rollbackVolumes', 'startCluster', 'watchRecovery'];
      if (storage === 'copy')
        retried.push('checkRestore', 'writeRecoveryFiles', 'finishRestore', 'releaseReplacedVolumes');
      for (const activity of retried)
        assert.ok(
          (attempts.get(activity) ?? 0) >= 2,
          `${activity} was retried after the kill (${attempts.get(activity)})`,
        );
      // Local activities: the next worker began them again.
      if (storage === 'copy')
        for (const step of ['begin:describe', 'begin:verify-quiescent'])
          assert.ok(restarted.has(step), `${step} began again after the kill`);
      assert.equal(result.verified.inRecovery, false);
      if (storage === 'rbd') assert.equal(result.rollback.method, 'clone-swap', result.rollback.methodNote);
      assert.equal(await fx.checksum(), atBackup);
    });
  });
}

// rbd restores by clone-swap: killed with the images detached, between the rename and the clone, and
// between the clone and the attach.
crashSuite('rbd', ['rollback-detached', 'swap-renamed', 'swap-cloned']);
crashSuite('copy', ['rollback-swap']);
