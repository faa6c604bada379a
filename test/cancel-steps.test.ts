// A cancel at every step of the planned stop, the planned start, the snapshot backup and the
// rollback restore: what state the cluster is left in (the README's table says the same), the
// lock free for what runs next, and the data unchanged. Each cancel lands inside the step's
// activity, held there by a PGOPS_TEST_PAUSE_AT pause.
import assert from 'node:assert/strict';
import { testEnv } from './harness/testEnv';
import { waitForStep } from './harness/progress';
import { withWorker } from './harness/workers';
import { cancelDuring, type CancelRun } from './harness/cancelRuns';
import { backupFixture, type BackupFixture } from './harness/backupFixture';
import { refusesConnections } from '../src/drivers/postgres/session';
import { endpointOf } from '../src/dev/localPostgres';
import { resumeSignal } from '../src/contract/definitions';
import type { PlannedStartResult } from '../src/workflows/plannedStart';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';

describe('cancel at every step: the state the cluster is left in', function () {
  this.timeout(600_000);
  let fx: BackupFixture;
  before(async function () {
    this.timeout(120_000);
    fx = await backupFixture('cancel', { storage: 'copy', rows: 5000 });
  });
  after(async () => fx?.teardown());

  const running = async () => !(await refusesConnections(endpointOf(fx.cluster)));
  const execute = async <T>(type: string, input: Record<string, unknown>): Promise<T> => {
    const { client } = await testEnv();
    return withWorker(fx.taskQueue, fx.catalogPath, async () => {
      return (await client.workflow.execute(type, {
        taskQueue: fx.taskQueue,
        workflowId: `${type}-after-cancel-${Date.now()}`,
        args: [input],
      })) as T;
    });
  };
  const openBackupSessions = async () =>
    Number(
      (
        await fx.sql<{ n: string }>(
          "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'temporal-postgres-ops' AND pid <> pg_backend_pid()",
        )
      )[0]!.n,
    );

  it('planned stop: running again after a cancel at every step, the lock free', async () => {
    const checksum = await fx.checksum();
    const toHold = async (handle: Parameters<NonNullable<CancelRun['drive']>>[0]) => {
      await waitForStep(handle, 'hold', 120_000, 50);
      await handle.signal(resumeSignal, { by: 'cancel test' });
    };
    const runs: Array<CancelRun & { expected: string }> = [
      { step: 'describe', pause: 'begin:describe', expected: 'canceled' },
      // The stop sees the cancel before its shutdown begins, and does not begin it.
      { step: 'stop', pause: 'begin:stop', pauseMs: 10_000, expected: 'canceled' },
      // The check runs at the end of the stop step: the cancel is taken when that step ends, and the
      // cluster is started again.
      { step: 'verify', pause: 'begin:verify-quiescent', expected: 'canceled' },
      { step: 'hold', expected: 'completed' }, // resumedBy "cancel": the cluster was started again
      { step: 'start', pause: 'begin:start', drive: toHold, expected: 'completed' }, // the way back is not cancellable
    ];
    for (const run of runs) {
      const { outcome } = await cancelDuring(
        fx,
        'plannedStopWorkflow',
        { cluster: fx.name, holdUntilResumed: true },
        run,
      );
      assert.equal(outcome, run.expected, `cancel during ${run.step}`);
      assert.equal(await running(), true, `running after a cancel during ${run.step}`);
    }
    const start = await execute<PlannedStartResult>('plannedStartWorkflow', { cluster: fx.name });
    assert.equal(start.alreadyRunning, true, 'the lock was free and the cluster up');
    assert.equal(await fx.checksum(), checksum);
  });

  it('planned start: a cancel during the start step; the next start brings the cluster up', async () => {
    const checksum = await fx.checksum();
    await execute('plannedStopWorkflow', { cluster: fx.name });
    const { outcome } = await cancelDuring(
      fx,
      'plannedStartWorkflow',
      { cluster: fx.name },
      // Held 10 s: the cancel reaches the step before it launches the server.
      { step: 'start', pause: 'begin:start', pauseMs: 10_000 },
    );
    assert.equal(outcome, 'canceled');
    assert.equal(await running(), false, 'a start cancelled before it began leaves the cluster stopped');
    const start = await execute<PlannedStartResult>('plannedStartWorkflow', { cluster: fx.name });
    assert.equal(start.readyReplicas, 1);
    assert.equal(await fx.checksum(), checksum);
  });

  it('snapshot backup: running, no backup session open, after a cancel at every step', async () => {
    const checksum = await fx.checksum();
    const runs: Array<CancelRun & { mode: string; expected: string }> = [
      { mode: 'online', step: 'plan', pause: 'begin:plan-backup', expected: 'canceled' },
      { mode: 'online', step: 'backup', pause: 'in-backup-mode', pauseMs: 10_000, expected: 'canceled' },
      { mode: 'offline', step: 'stop', pause: 'begin:stop', pauseMs: 10_000, expected: 'canceled' },
      { mode: 'offline', step: 'snapshot', pause: 'begin:offline-snapshot', pauseMs: 10_000, expected: 'canceled' },
      { mode: 'offline', step: 'start', pause: 'begin:start', expected: 'completed' }, // the start is not cancellable
    ];
    for (const run of runs) {
      const { outcome } = await cancelDuring(fx, 'snapshotBackupWorkflow', { cluster: fx.name, mode: run.mode }, run);
      assert.equal(outcome, run.expected, `cancel during ${run.mode} ${run.step}`);
      assert.equal(await running(), true, `running after a cancel during ${run.mode} ${run.step}`);
      assert.equal(await openBackupSessions(), 0, `no backup session left after ${run.mode} ${run.step}`);
    }
    const backup = await execute<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: fx.name });
    assert.equal(backup.took, 'online', 'the lock was free');
    assert.equal(await fx.checksum(), checksum);
  });

  it('rollback restore: as it was before the rollback; stopped from it on, and the restore run again gives the backup', async () => {
    const backup = await execute<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: fx.name });
    const atBackup = await fx.checksum();
    await fx.sql('INSERT INTO orders VALUES (990001, $1, 1)', ['written after the backup']);
    const current = await fx.checksum();
    const input = { cluster: fx.name, backup: backup.backup.id, confirm: fx.name };

    for (const run of [
      { step: 'check', pause: 'begin:check-restore' },
      { step: 'stop', pause: 'begin:stop' },
      { step: 'safety-snapshot', pause: 'begin:safety-snapshot' },
    ]) {
      const { outcome } = await cancelDuring(fx, 'rollbackRestoreWorkflow', input, run);
      assert.equal(outcome, 'canceled', `cancel during ${run.step}`);
      assert.equal(await running(), true, `running again after a cancel during ${run.step}`);
      assert.equal(await fx.checksum(), current, `nothing restored after a cancel during ${run.step}`);
    }

    for (const run of [
      { step: 'rollback', pause: 'rollback-swap' },
      { step: 'recovery-files', pause: 'begin:recovery-files' },
      { step: 'start', pause: 'begin:start' },
    ]) {
      const { outcome } = await cancelDuring(fx, 'rollbackRestoreWorkflow', input, run);
      assert.equal(outcome, 'canceled', `cancel during ${run.step}`);
      // Left stopped (or starting): the restore run again finishes the job.
      const again = await execute<RollbackRestoreResult>('rollbackRestoreWorkflow', {
        ...input,
        safetySnapshot: false,
      });
      assert.equal(again.verified.inRecovery, false);
      assert.equal(await fx.checksum(), atBackup, `the backup's data after a cancel during ${run.step} and a rerun`);
    }
  });
  it('a restore terminated mid-rollback: the next restore takes the lock from the dead holder and gives exactly the backup', async () => {
    const { client } = await testEnv();
    const backup = await execute<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: fx.name });
    const atBackup = await fx.checksum();
    await fx.sql('INSERT INTO orders VALUES (990002, $1, 1)', ['written after the backup']);
    const input = { cluster: fx.name, backup: backup.backup.id, confirm: fx.name };
    process.env.PGOPS_TEST_PAUSE_AT = 'rollback-swap:10000';
    try {
      await withWorker(fx.taskQueue, fx.catalogPath, async () => {
        const first = await client.workflow.start('rollbackRestoreWorkflow', {
          taskQueue: fx.taskQueue,
          workflowId: `restore-terminated-${Date.now()}`,
          args: [input],
        });
        await waitForStep(first, 'rollback', 120_000, 50);
        await new Promise((r) => setTimeout(r, 1000));
        await first.terminate('operator gave up on this restore');
      });
    } finally {
      delete process.env.PGOPS_TEST_PAUSE_AT;
    }
    assert.equal(await running(), false, 'a terminated restore leaves the cluster stopped');
    const again = await execute<RollbackRestoreResult>('rollbackRestoreWorkflow', { ...input, safetySnapshot: false });
    assert.equal(again.stopped.wasRunning, false);
    assert.equal(await fx.checksum(), atBackup);
  });
});
