// The Temporal server is SIGKILLed and started again on the same port and database file while a
// workflow runs: during a planned stop's stop step and during its hold, during a PITR's replay,
// during a restore's rollback. The worker rides the outage out; each workflow finishes with the
// cluster in the right state and its data unchanged.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { waitForStep } from './harness/progress';
import { workerProcess, type WorkerProcess } from './harness/workers';
import { restartableServer, type RestartableServer } from './harness/restartableServer';
import { localClusterFixture, type LocalFixture } from './harness/fixtures';
import { pitrFixture, type PitrFixture } from './harness/pitrFixture';
import { backupFixture, type BackupFixture } from './harness/backupFixture';
import { refusesConnections } from '../src/drivers/postgres/session';
import { endpointOf } from '../src/dev/localPostgres';
import { resumeSignal } from '../src/contract/definitions';
import type { PlannedStopResult } from '../src/workflows/plannedStop';
import type { DelayedReplicaPitrResult } from '../src/workflows/delayedReplicaPitr';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';

describe('the Temporal server is SIGKILLed and restarted on the same database file mid-operation', function () {
  this.timeout(300_000);
  let server: RestartableServer;
  const workers: WorkerProcess[] = [];
  before(async function () {
    this.timeout(120_000);
    server = await restartableServer('restart');
  });
  after(async () => {
    for (const w of workers) await w.kill();
    await server?.stop();
  });

  const worker = async (fx: { taskQueue: string; catalogPath: string }, pauseAt?: string) => {
    const w = await workerProcess(fx.taskQueue, fx.catalogPath, {
      TEMPORAL_ADDRESS: server.address,
      ...(pauseAt ? { PGOPS_TEST_PAUSE_AT: `${pauseAt}:8000` } : {}),
    });
    workers.push(w);
    return w;
  };

  /** SIGKILL, start again, and a handle on a fresh connection; the worker must still be alive. */
  const crashServer = async (
    handle: WorkflowHandle,
    w: WorkerProcess,
  ): Promise<{ client: Client; handle: WorkflowHandle }> => {
    await server.kill();
    await server.restart();
    assert.equal(w.child.exitCode, null, `the worker exited with the server:\n${w.output().slice(-3000)}`);
    const client = await server.client();
    return { client, handle: client.workflow.getHandle(handle.workflowId) };
  };

  describe('planned stop', () => {
    let fx: LocalFixture;
    before(async () => {
      fx = await localClusterFixture('restart-stop', { rows: 20_000 });
    });
    after(async () => fx?.teardown());

    it('finishes a held planned stop after server crashes during the stop step and during the hold', async () => {
      const checksum = await fx.checksum();
      const w = await worker(fx, 'begin:stop');
      const client = await server.client();
      let handle: WorkflowHandle = await client.workflow.start('plannedStopWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `restart-stop-${Date.now()}`,
        args: [{ cluster: fx.name, holdUntilResumed: true, maxHold: '1h' }],
      });
      await w.waitForOutput(/"pausedAt":"begin:stop"/);
      ({ handle } = await crashServer(handle, w));
      await waitForStep(handle, 'hold', 120_000);
      assert.equal(await refusesConnections(endpointOf(fx.cluster)), true, 'down during the hold');

      ({ handle } = await crashServer(handle, w));
      await handle.signal(resumeSignal, { by: 'restart test' });
      const result = (await handle.result()) as PlannedStopResult;
      assert.equal(result.hold?.resumedBy, 'signal');
      assert.equal(result.after.running, true);
      assert.equal(await refusesConnections(endpointOf(fx.cluster)), false);
      assert.equal(await fx.checksum(), checksum);
    });
  });

  describe('delayed-replica PITR', () => {
    let fx: PitrFixture;
    before(async function () {
      this.timeout(180_000);
      fx = await pitrFixture('restart-pitr', '30s');
      await fx.commit([
        'CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL)',
        "INSERT INTO orders SELECT g, 'customer-' || (g % 97) FROM generate_series(1, 2000) g",
        'CREATE TABLE filler (id bigint, pad text)',
      ]);
      await fx.waitForReplicaToSee('SELECT count(*) = 2000 AS ok FROM orders');
    });
    after(async () => fx?.set.stop());

    it('finishes the export and the return to delay after a server crash during replay', async () => {
      const readyCount = () =>
        (readFileSync(fx.set.replica.logFile, 'utf8').match(/ready to accept read-only connections/g) ?? []).length;
      for (let i = 0; i < 10; i++)
        await fx.commit([`INSERT INTO filler SELECT g, repeat('x', 500) FROM generate_series(1, 10000) g`]);
      const bad = await fx.commit(['DELETE FROM orders WHERE id % 2 = 0']);
      await fx.waitForArchive();
      const readyBefore = readyCount();
      // The monitor is held at its start while PostgreSQL replays: the server dies mid-replay.
      const w = await worker(fx, 'begin:replay');
      const client = await server.client();
      let handle: WorkflowHandle = await client.workflow.start('delayedReplicaPitrWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `restart-pitr-${Date.now()}`,
        args: [{ cluster: 'orders-delayed', target: { xid: bad.xid }, then: 'export', export: { tables: ['orders'] } }],
      });
      await w.waitForOutput(/"pausedAt":"begin:replay"/, 120_000);
      ({ handle } = await crashServer(handle, w));
      const result = (await handle.result()) as DelayedReplicaPitrResult;
      assert.equal(result.finalState, 'delayed replica again');
      assert.equal(result.exported?.[0]?.rows, 2000, 'exactly the pre-incident rows');
      assert.equal(readyCount(), readyBefore + 2, 'one restart to the target, one back to delay');
    });
  });

  describe('rollback restore', () => {
    let fx: BackupFixture;
    before(async function () {
      this.timeout(120_000);
      fx = await backupFixture('restart-copy', { storage: 'copy', rows: 5000 });
    });
    after(async () => fx?.teardown());

    it('finishes a restore after a server crash during the rollback, with exactly the backup', async () => {
      const w = await worker(fx, 'rollback-swap');
      let client = await server.client();
      const atBackup = await fx.checksum();
      const backup = (await client.workflow.execute('snapshotBackupWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `restart-backup-${Date.now()}`,
        args: [{ cluster: fx.name }],
      })) as SnapshotBackupResult;
      await fx.sql('INSERT INTO orders VALUES (990001, $1, 1)', ['written after the backup']);
      let handle: WorkflowHandle = await client.workflow.start('rollbackRestoreWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `restart-restore-${Date.now()}`,
        args: [{ cluster: fx.name, backup: backup.backup.id, confirm: fx.name }],
      });
      await w.waitForOutput(/"pausedAt":"rollback-swap"/, 120_000);
      ({ client, handle } = await crashServer(handle, w));
      const result = (await handle.result()) as RollbackRestoreResult;
      assert.equal(result.verified.inRecovery, false);
      assert.equal(await fx.checksum(), atBackup);
    });
  });
});
