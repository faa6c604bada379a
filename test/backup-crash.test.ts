import assert from 'node:assert/strict';
import type { WorkflowHandle } from '@temporalio/client';
import { testEnv } from './harness/testEnv';
import { workerProcess, type WorkerProcess } from './harness/workers';
import { backupFixture, type BackupFixture, type StorageUnderTest } from './harness/backupFixture';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';
import type { ListBackupsResult } from '../src/workflows/backupCatalog';

/** Highest attempt number each activity type reached in the workflow's history. */
async function attemptsByActivity(handle: WorkflowHandle): Promise<Map<string, number>> {
  const events = (await handle.fetchHistory()).events ?? [];
  const typeOf = new Map<string, string>();
  for (const e of events) {
    const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
    if (name) typeOf.set(String(e.eventId), name);
  }
  const attempts = new Map<string, number>();
  for (const e of events) {
    const started = e.activityTaskStartedEventAttributes;
    if (!started) continue;
    const name = typeOf.get(String(started.scheduledEventId))!;
    attempts.set(name, Math.max(attempts.get(name) ?? 0, started.attempt ?? 1));
  }
  return attempts;
}

/**
 * Runs a workflow through a sequence of workers: worker i pauses at kill point i and is SIGKILLed
 * there; the last worker has no pause and finishes.
 */
async function runThroughKills<T>(
  fx: BackupFixture,
  workers: WorkerProcess[],
  type: string,
  input: Record<string, unknown>,
  killPoints: Array<{ pause: string; marker: RegExp }>,
): Promise<{ result: T; handle: WorkflowHandle }> {
  const { client } = await testEnv();
  let worker = await workerProcess(fx.taskQueue, fx.catalogPath, {
    PGOPS_TEST_PAUSE_AT: `${killPoints[0]!.pause}:8000`,
  });
  workers.push(worker);
  const handle = await client.workflow.start(type, {
    taskQueue: fx.taskQueue,
    workflowId: `${type}-crash-${Date.now()}`,
    args: [input],
  });
  for (const [i, point] of killPoints.entries()) {
    await worker.waitForOutput(point.marker, 120_000);
    await worker.kill('SIGKILL');
    const next = killPoints[i + 1];
    worker = await workerProcess(
      fx.taskQueue,
      fx.catalogPath,
      next ? { PGOPS_TEST_PAUSE_AT: `${next.pause}:8000` } : {},
    );
    workers.push(worker);
  }
  const result = (await handle.result()) as T;
  await worker.kill(); // no worker of this run may take the next workflow's steps
  return { result, handle };
}

function crashSuite(storage: StorageUnderTest, rollbackPause: string) {
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
      const { result, handle } = await runThroughKills<SnapshotBackupResult>(
        fx,
        workers,
        'snapshotBackupWorkflow',
        { cluster: fx.name },
        points,
      );
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

    it('finishes a restore killed at every step, and the data is exactly the backup', async function () {
      this.timeout(600_000);
      const points = [
        { pause: 'begin:stop', marker: /"step":"begin:stop"/ },
        { pause: 'begin:safety-snapshot', marker: /"step":"begin:safety-snapshot"/ },
        { pause: rollbackPause, marker: /"step":"rollback-begin"/ },
        { pause: 'begin:start', marker: /"step":"begin:start"/ },
        { pause: 'begin:recovery', marker: /"step":"begin:recovery"/ },
      ];
      const { result, handle } = await runThroughKills<RollbackRestoreResult>(
        fx,
        workers,
        'rollbackRestoreWorkflow',
        { cluster: fx.name, backup: backupId, confirm: fx.name },
        points,
      );
      const attempts = await attemptsByActivity(handle);
      for (const activity of ['stopCluster', 'takeOfflineSnapshot', 'rollbackVolumes', 'startCluster', 'watchRecovery'])
        assert.ok(
          (attempts.get(activity) ?? 0) >= 2,
          `${activity} was retried after the kill (${attempts.get(activity)})`,
        );
      assert.equal(result.verified.inRecovery, false);
      assert.equal(await fx.checksum(), atBackup);
    });
  });
}

crashSuite('rbd', 'rollback-detached');
crashSuite('copy', 'rollback-swap');
