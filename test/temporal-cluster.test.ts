// The production shape: a self-hosted Temporal cluster (go.temporal.io/server, four processes, PostgreSQL
// persistence and SQL visibility, 4 history shards) and two project workers as separate processes on one
// task queue. Stop/start, backup, restore with replay, PITR and a schedule run on it; the cluster lock holds
// under both workers; history and frontend SIGKILLed mid-replay, and one worker SIGKILLed mid-backup, are
// ridden out with exact data.
import assert from 'node:assert/strict';
import { WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';
import { selfHostedTemporal, type SelfHostedTemporal } from './harness/selfHostedTemporal';
import { backupFixture, type BackupFixture } from './harness/backupFixture';
import { pitrFixture, type PitrFixture } from './harness/pitrFixture';
import type { WorkerProcess } from './harness/workers';
import { localClusterFixture, type LocalFixture } from './harness/fixtures';
import { waitForStep } from './harness/progress';
import { localTargetOf } from '../src/dev/localPostgres';
import { resumeSignal } from '../src/contract/definitions';
import { BackupSchedules } from '../src/client/backupSchedules';
import { PgOpsClient } from '../src/client/pgOpsClient';
import type { PlannedStopResult } from '../src/workflows/plannedStop';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';
import type { DelayedReplicaPitrResult } from '../src/workflows/delayedReplicaPitr';
import type { ListBackupsResult } from '../src/contract/operations/backupCatalog';

/** The held pause of a step in a worker process (PGOPS_TEST_PAUSE_AT): long enough to kill something during it. */
const PAUSE_MS = 8000;

describe('production shape: a self-hosted Temporal cluster on PostgreSQL with two worker processes', function () {
  this.timeout(300_000);
  let temporal: SelfHostedTemporal;
  let client: Client;
  let fx: BackupFixture;
  let workers: WorkerProcess[] = [];
  let ids = 0;
  const id = (what: string) => `shape-${what}-${Date.now()}-${ids++}`;

  /** Two workers on the fixture's task queue; `pauseAt` holds that step for PAUSE_MS in whichever runs it. */
  const startWorkers = async (pauseAt?: string) => {
    for (const w of workers) await w.kill('SIGTERM');
    const env: Record<string, string> = pauseAt ? { PGOPS_TEST_PAUSE_AT: `${pauseAt}:${PAUSE_MS}` } : {};
    workers = await Promise.all([0, 1].map(() => temporal.worker(fx.taskQueue, fx.catalogPath, env)));
  };
  const run = <T>(type: string, input: Record<string, unknown>): Promise<T> =>
    client.workflow.execute(type, { taskQueue: fx.taskQueue, workflowId: id(type), args: [input] }) as Promise<T>;
  /** The worker whose output shows it paused at `point`. */
  const pausedWorker = async (point: string): Promise<WorkerProcess> => {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const found = workers.find((w) => w.output().includes(`"pausedAt":"${point}"`));
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no worker paused at ${point}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  before(async function () {
    this.timeout(600_000); // the first run on a machine builds the server (about 3.5 min) unless setup did
    temporal = await selfHostedTemporal('shape');
    client = await temporal.client();
    fx = await backupFixture('shape', { storage: 'copy', rows: 5000 });
    await startWorkers();
  });
  after(async () => {
    for (const w of workers) await w.kill('SIGTERM');
    await fx?.teardown();
    await temporal?.stop();
  });

  it('runs a planned stop and start, an online backup and a restore replayed to an xid: exact data', async () => {
    const atStart = await fx.checksum();
    const stop = await run<PlannedStopResult>('plannedStopWorkflow', {
      cluster: fx.name,
      holdUntilResumed: true,
      maxHold: '1s',
    });
    assert.equal(stop.before.running, true);
    assert.equal(stop.hold?.resumedBy, 'maxHold');
    assert.equal(stop.after.running, true);
    assert.equal(await fx.checksum(), atStart);

    const taken = await run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: fx.name });
    await fx.commit(["INSERT INTO orders SELECT g, 'late', 1 FROM generate_series(100001, 100050) g"]);
    const good = await fx.checksum();
    const bad = await fx.commit(['DELETE FROM orders WHERE id < 500']);
    await fx.archiveNow();
    const restored = await run<RollbackRestoreResult>('rollbackRestoreWorkflow', {
      cluster: fx.name,
      backup: taken.backup.id,
      confirm: fx.name,
      recoveryTarget: { xid: bad.xid },
    });
    assert.equal(restored.recovery?.state, 'promoted');
    assert.equal(await fx.checksum(), good);
    // Which of the two processes ran the steps: the queue is shared, as between two pods (not asserted:
    // a workflow's tasks stay with the worker that has it cached).
    const steps = workers.map((w) => (w.output().match(/"step":"begin:/g) ?? []).length);
    console.log(`      steps run by each worker: ${steps.join(' / ')}`);
  });

  it('fires a backup schedule on the self-hosted server (SQL visibility lists it) and lists the backup', async () => {
    const schedules = new BackupSchedules(client, fx.taskQueue);
    const scheduleId = await schedules.create({ cluster: fx.name, cron: '0 3 * * *', jitter: '0' });
    try {
      const before = (await run<ListBackupsResult>('listBackupsWorkflow', { cluster: fx.name })).backups.length;
      await client.schedule.getHandle(scheduleId).trigger();
      const deadline = Date.now() + 120_000;
      let after = before;
      while (after === before) {
        assert.ok(Date.now() < deadline, 'the triggered backup never appeared in the listing');
        await new Promise((r) => setTimeout(r, 1000));
        after = (await run<ListBackupsResult>('listBackupsWorkflow', { cluster: fx.name })).backups.length;
      }
      assert.equal(after, before + 1);
      const listed = await schedules.list();
      assert.ok(listed.some((s) => s.scheduleId === scheduleId && s.recentActions.length === 1));
    } finally {
      await client.schedule.getHandle(scheduleId).delete();
    }
  });

  it('50 racing planned stops under both workers: the queued run one at a time, the rest are refused, none overlaps', async function () {
    this.timeout(600_000);
    const started = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        client.workflow.start('plannedStopWorkflow', {
          taskQueue: fx.taskQueue,
          workflowId: id(`race-${i}`),
          // One in ten queues for the lock; the others are refused while it is held.
          args: [{ cluster: fx.name, holdUntilResumed: true, maxHold: '1s', waitForLock: i % 10 === 0 ? '5m' : false }],
        }),
      ),
    );
    const outcomes = await Promise.allSettled(started.map((h) => h.result() as Promise<PlannedStopResult>));
    const ran = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    const refused = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
    for (const err of refused) {
      assert.ok(err instanceof WorkflowFailedError, String(err));
      assert.match(String(err.cause?.message), /holds cluster|busy|held by/i, String(err.cause?.message));
    }
    assert.ok(ran.length >= 5, `every queued stop ran (${ran.length} ran, ${refused.length} refused)`);
    // A stop that overlapped another would have found the cluster already stopped, or been stopped under.
    for (const r of ran) {
      assert.equal(r.before.running, true, 'each stop found the cluster running: no other held it');
      assert.equal(r.stopped.alreadyStopped, false);
      assert.equal(r.hold?.resumedBy, 'maxHold');
      assert.equal(r.after.running, true);
    }
    console.log(`      ${ran.length} ran one at a time, ${refused.length} refused`);
  });

  it("history SIGKILLed, then the frontend, during a restore's replay: the restore finishes with exact data", async function () {
    this.timeout(600_000);
    await startWorkers('begin:recovery');
    const taken = await run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: fx.name });
    await fx.commit(["INSERT INTO orders SELECT g, 'later', 2 FROM generate_series(200001, 200100) g"]);
    const good = await fx.checksum();
    const bad = await fx.commit(['DELETE FROM orders WHERE id > 200050']);
    await fx.archiveNow();
    const handle = await client.workflow.start('rollbackRestoreWorkflow', {
      taskQueue: fx.taskQueue,
      workflowId: id('restore-kills'),
      args: [{ cluster: fx.name, backup: taken.backup.id, confirm: fx.name, recoveryTarget: { xid: bad.xid } }],
    });
    await pausedWorker('begin:recovery');
    await temporal.cluster.kill('history');
    await temporal.cluster.restart('history');
    await temporal.cluster.kill('frontend');
    await temporal.cluster.restart('frontend');
    for (const w of workers) assert.equal(w.child.exitCode, null, `a worker exited:\n${w.output().slice(-2000)}`);
    const fresh = await temporal.client();
    const result = (await fresh.workflow.getHandle(handle.workflowId).result()) as RollbackRestoreResult;
    assert.equal(result.recovery?.state, 'promoted');
    assert.equal(await fx.checksum(), good);
    client = fresh;
  });

  it('a worker SIGKILLed in backup mode: the other worker finishes the backup, and the cluster leaves backup mode', async function () {
    this.timeout(600_000);
    await startWorkers('in-backup-mode');
    const before = (await run<ListBackupsResult>('listBackupsWorkflow', { cluster: fx.name })).backups.length;
    const handle = await client.workflow.start('snapshotBackupWorkflow', {
      taskQueue: fx.taskQueue,
      workflowId: id('backup-kill'),
      args: [{ cluster: fx.name }],
    });
    const victim = await pausedWorker('in-backup-mode');
    const survivor = workers.find((w) => w !== victim)!;
    await victim.kill('SIGKILL');
    const result = (await handle.result()) as SnapshotBackupResult;
    assert.ok(result.backup.id);
    assert.match(survivor.output(), /"pausedAt":"in-backup-mode"/, 'the surviving worker took the step over');
    const after = await run<ListBackupsResult>('listBackupsWorkflow', { cluster: fx.name });
    assert.equal(after.backups.length, before + 1);
    const inBackup = await fx.sql<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' AND query ILIKE '%pg_backup_start%'",
    );
    assert.equal(inBackup[0]?.n ?? 0, 0, 'no session is left in backup mode');
  });

  describe('delayed-replica PITR', () => {
    let pitr: PitrFixture;
    let pitrWorkers: WorkerProcess[] = [];
    before(async function () {
      this.timeout(180_000);
      pitr = await pitrFixture('shape-pitr', '20s');
      await pitr.commit([
        'CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL)',
        "INSERT INTO orders SELECT g, 'customer-' || (g % 97) FROM generate_series(1, 2000) g",
      ]);
      await pitr.waitForReplicaToSee('SELECT count(*) = 2000 AS ok FROM orders');
      pitrWorkers = await Promise.all([0, 1].map(() => temporal.worker(pitr.taskQueue, pitr.catalogPath)));
    });
    after(async () => {
      for (const w of pitrWorkers) await w.kill('SIGTERM');
      await pitr?.set.stop();
    });

    it('replays the delayed replica to just before the bad transaction and exports the lost rows', async () => {
      const bad = await pitr.commit(['DELETE FROM orders WHERE id % 2 = 0']);
      await pitr.pauseReplica();
      await pitr.waitForArchive();
      const pgops = new PgOpsClient(client, pitr.taskQueue);
      const result = (await client.workflow.execute('delayedReplicaPitrWorkflow', {
        taskQueue: pitr.taskQueue,
        workflowId: id('pitr'),
        args: [{ cluster: 'orders-delayed', target: { xid: bad.xid }, then: 'export', export: { tables: ['orders'] } }],
      })) as DelayedReplicaPitrResult;
      assert.equal(result.finalState, 'delayed replica again');
      assert.equal(result.exported?.[0]?.rows, 2000, 'exactly the pre-incident rows');
      // SQL visibility is written a moment after each transition and may still list the PITR as
      // running; runningOn confirms every run it lists with the server, so it is gone at once.
      assert.deepEqual(await pgops.runningOn('orders-delayed'), []);
    });
  });

  describe('an upgrade by Worker Versioning: two builds of a worker fleet', () => {
    let up: BackupFixture;
    let held: LocalFixture;
    const fleet: WorkerProcess[] = [];
    const deploymentName = `pgops-shape-${Math.random().toString(36).slice(2, 8)}`;
    const build = (buildId: string, extra: Record<string, string> = {}) =>
      Promise.all(
        [0, 1].map(async () => {
          const w = await temporal.worker(up.taskQueue, up.catalogPath, {
            PGOPS_WORKER_DEPLOYMENT: deploymentName,
            PGOPS_BUILD_ID: buildId,
            ...extra,
          });
          fleet.push(w);
          return w;
        }),
      );
    const currentBuild = async () =>
      (await client.workflowService.describeWorkerDeployment({ namespace: temporal.cluster.namespace, deploymentName }))
        .workerDeploymentInfo?.routingConfig?.currentDeploymentVersion?.buildId;
    const pinnedTo = async (workflowId: string) => {
      const info = (await client.workflow.getHandle(workflowId).describe()).raw.workflowExecutionInfo?.versioningInfo;
      return { buildId: info?.deploymentVersion?.buildId, behavior: info?.behavior };
    };
    before(async function () {
      this.timeout(180_000);
      up = await backupFixture('shape-upgrade', { storage: 'copy', rows: 3000 });
      held = await localClusterFixture('shape-held', { rows: 500, name: 'held' });
      up.writeCatalog({ held: { target: localTargetOf(held.cluster), storage: { kind: 'local' } } });
    });
    after(async () => {
      for (const w of fleet) await w.kill('SIGTERM');
      await up?.teardown();
      await held?.teardown();
    });

    it('a held planned stop and a restore in replay finish on build A after build B is made current; new ones start on B', async function () {
      this.timeout(600_000);
      // Build A: the first build of the deployment makes itself current (PGOPS_PROMOTE if-none).
      await build('build-a', { PGOPS_TEST_PAUSE_AT: 'begin:recovery:20000' });
      const deadline = Date.now() + 60_000;
      while ((await currentBuild().catch(() => undefined)) !== 'build-a') {
        assert.ok(Date.now() < deadline, 'build A never became current');
        await new Promise((r) => setTimeout(r, 500));
      }
      const run = <T>(type: string, input: Record<string, unknown>, what: string) =>
        client.workflow.start(type, { taskQueue: up.taskQueue, workflowId: id(what), args: [input] }) as Promise<
          WorkflowHandle<() => Promise<T>>
        >;
      const taken = await (
        await run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: up.name }, 'up-backup')
      ).result();
      await up.commit(["INSERT INTO orders SELECT g, 'later', 3 FROM generate_series(300001, 300040) g"]);
      const good = await up.checksum();
      const bad = await up.commit(['DELETE FROM orders WHERE id > 300020']);
      await up.archiveNow();
      const heldRows = await held.checksum();

      const stop = await run<PlannedStopResult>(
        'plannedStopWorkflow',
        { cluster: 'held', holdUntilResumed: true, maxHold: '10m' },
        'up-stop',
      );
      await waitForStep(stop, 'hold', 120_000);
      const restore = await run<RollbackRestoreResult>(
        'rollbackRestoreWorkflow',
        { cluster: up.name, backup: taken.backup.id, confirm: up.name, recoveryTarget: { xid: bad.xid } },
        'up-restore',
      );
      await new Promise<void>((resolveWait, reject) => {
        const timer = setInterval(() => {
          if (fleet.some((w) => w.output().includes('"pausedAt":"begin:recovery"'))) {
            clearInterval(timer);
            resolveWait();
          } else if (Date.now() > deadline + 120_000) {
            clearInterval(timer);
            reject(new Error('the restore never reached its replay'));
          }
        }, 100);
      });

      // Build B rolls out and makes itself current while both operations are in flight.
      await build('build-b', { PGOPS_PROMOTE: 'always' });
      while ((await currentBuild()) !== 'build-b') await new Promise((r) => setTimeout(r, 250));
      assert.equal((await restore.describe()).status.name, 'RUNNING', 'the restore was still replaying at the upgrade');
      await stop.signal(resumeSignal, { by: 'upgrade test' });
      const stopped = await stop.result();
      const restored = await restore.result();
      assert.equal(stopped.after.running, true);
      assert.equal(await held.checksum(), heldRows);
      assert.equal(restored.recovery?.state, 'promoted');
      assert.equal(await up.checksum(), good);
      for (const wf of [stop, restore]) {
        const pin = await pinnedTo(wf.workflowId);
        assert.equal(pin.buildId, 'build-a', `${wf.workflowId} finished on the build that started it`);
        assert.equal(pin.behavior, proto.api.enums.v1.VersioningBehavior.VERSIONING_BEHAVIOR_PINNED);
      }
      const next = await run<PlannedStopResult>(
        'plannedStopWorkflow',
        { cluster: 'held', holdUntilResumed: true, maxHold: '1s' },
        'up-next',
      );
      assert.equal((await next.result()).after.running, true);
      assert.equal((await pinnedTo(next.workflowId)).buildId, 'build-b', 'a new operation starts on the current build');
    });
  });
});
