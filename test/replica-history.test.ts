// Replicas after a restore, a promote, a stop (issue 19), on a real primary, WAL archive and
// delayed replica: a replica that replayed past the fork of its primary's in-place restore is
// refused a PITR (and one before the fork is not); a promotion names the old primary's replicas
// that now follow nobody, and rows are not inserted into a primary whose history lacks the
// replica's position; a planned stop and start of the primary leaves its replica replaying again
// with no gap.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { ApplicationFailure } from '@temporalio/common';
import { stringify } from 'yaml';
import { testEnv, scratchDir } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { failureOf } from './harness/failures';
import { pitrFixture, type PitrFixture } from './harness/pitrFixture';
import { createDelayedReplicaSet, type ReplicaSet } from '../src/dev/delayedReplicaSet';
import { localTargetOf, PG_BIN_DIR, startLocalCluster, stopLocalClusterIfRunning } from '../src/dev/localPostgres';
import { runCommand } from '../src/drivers/exec';
import { waitForSql } from '../src/drivers/postgres/session';
import { withSession, type PgEndpoint } from '../src/drivers/postgres/session';
import { pollUntil } from '../src/drivers/waiting';
import { archiveEndLsn } from '../src/drivers/postgres/archive/walInspect';
import { compareLsn } from '../src/common/lsn';
import { commitStatements } from './harness/sampleData';
import { ClusterRegistry } from '../src/activities/clusterRegistry';
import { loadCatalog } from '../src/config/catalog';
import { createPitrSteps } from '../src/activities/pitrSteps';
import type { TableExport } from '../src/contract/operations/pitrSteps';
import { compareWithPrimary, refuseDivergedReplica } from '../src/activities/replicaHistoryChecks';
import { onPrimaryHistory, serverPosition } from '../src/drivers/postgres/replica/replicaHistory';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';
import type { DelayedReplicaPitrResult } from '../src/workflows/delayedReplicaPitr';
import type { PlannedStartResult } from '../src/workflows/plannedStart';

const one = <T>(endpoint: PgEndpoint, sql: string, params: unknown[] = []) =>
  withSession(endpoint, async (c) => (await c.query(sql, params)).rows[0] as T);

let seq = 0;
async function execute<T>(taskQueue: string, catalogPath: string, type: string, input: unknown): Promise<T> {
  const { client } = await testEnv();
  return withWorker(taskQueue, catalogPath, () =>
    client.workflow.execute(type, { taskQueue, workflowId: `${type}-rh-${Date.now()}-${seq++}`, args: [input] }),
  ) as Promise<T>;
}

async function waitFor(endpoint: PgEndpoint, sql: string, what: string): Promise<void> {
  await pollUntil(
    async () => {
      const row = await one<{ ok: boolean }>(endpoint, sql).catch(() => undefined);
      return row?.ok ? { done: undefined } : { waiting: 'not yet' };
    },
    { intervalMs: 300, timeoutMs: 180_000, what },
  );
}

async function archiveNow(set: ReplicaSet): Promise<void> {
  const lsn = (await one<{ l: string }>(set.primaryEndpoint, 'SELECT pg_switch_wal()::text AS l')).l;
  await pollUntil(
    async () => {
      const end = archiveEndLsn(set.archiveDir);
      return end && compareLsn(end, lsn) >= 0 ? { done: undefined } : { waiting: `archive ends at ${end}` };
    },
    { intervalMs: 200, timeoutMs: 60_000, what: `the archive to reach ${lsn}` },
  );
}

/** The rebuild a refusal advises: pg_basebackup from the primary, the replica's own configuration kept. */
async function rebuildReplica(set: ReplicaSet): Promise<void> {
  const { replica } = set;
  await stopLocalClusterIfRunning(replica);
  const kept = ['postgresql.conf', 'postgresql.auto.conf', 'pg_hba.conf', 'pg_ident.conf', 'pgops-recovery.conf'];
  const keepDir = join(replica.dir, 'kept-configuration');
  mkdirSync(keepDir, { recursive: true });
  for (const name of kept) copyFileSync(join(replica.pgdata, name), join(keepDir, name));
  rmSync(replica.pgdata, { recursive: true, force: true });
  const backup = await runCommand(
    join(PG_BIN_DIR, 'pg_basebackup'),
    [
      '-h',
      set.primary.socketDir,
      '-p',
      String(set.primary.port),
      '-U',
      'postgres',
      '-D',
      replica.pgdata,
      '-X',
      'stream',
      '-c',
      'fast',
    ],
    { asUser: replica.osUser, timeoutMs: 300_000 },
  );
  assert.equal(backup.code, 0, backup.stderr);
  for (const name of kept) copyFileSync(join(keepDir, name), join(replica.pgdata, name));
  writeFileSync(join(replica.pgdata, 'standby.signal'), '');
  if (process.getuid?.() === 0) await runCommand('chown', ['-R', `${replica.osUser}:`, replica.pgdata]);
  await startLocalCluster(replica);
  await waitForSql(set.replicaEndpoint, { timeoutMs: 120_000 });
}

describe('timelines: onPrimaryHistory', () => {
  const primary = {
    timeline: 3,
    history: [
      { timeline: 1, switchpoint: '0/5000000', reason: 'x' },
      { timeline: 2, switchpoint: '0/7000000', reason: 'no recovery target specified' },
    ],
  };
  it('keeps a replica at or before the fork point on the primary history', () => {
    assert.equal(onPrimaryHistory(primary, { timeline: 2, lsn: '0/7000000' }).onHistory, true);
    assert.equal(onPrimaryHistory(primary, { timeline: 1, lsn: '0/4FFFFFF' }).onHistory, true);
    assert.equal(onPrimaryHistory(primary, { timeline: 3, lsn: '1/0' }).onHistory, true);
  });
  it('finds a replica past the fork point, or on a timeline off the path, diverged', () => {
    const past = onPrimaryHistory(primary, { timeline: 2, lsn: '0/7000001' });
    assert.equal(past.onHistory, false);
    assert.equal(!past.onHistory && past.forkLsn, '0/7000000');
    assert.equal(!past.onHistory && past.forkedTo, 3);
    assert.equal(onPrimaryHistory(primary, { timeline: 4, lsn: '0/1' }).onHistory, false);
    assert.equal(onPrimaryHistory({ timeline: 1, history: [] }, { timeline: 2, lsn: '0/1' }).onHistory, false);
  });
});

describe('a delayed replica and its primary restored in place (real servers)', function () {
  this.timeout(600_000);
  let set: ReplicaSet;
  let catalogPath: string;
  let taskQueue: string;
  let registry: ClusterRegistry;
  let backup: SnapshotBackupResult['backup'];
  let restored: RollbackRestoreResult;

  before(async () => {
    const dir = await scratchDir('replica-history');
    set = await createDelayedReplicaSet({ dir, delay: '1s' });
    catalogPath = join(dir, 'pgops.yaml');
    taskQueue = `pg-ops-rh-${Math.random().toString(36).slice(2, 8)}`;
    writeFileSync(
      catalogPath,
      stringify({
        clusters: {
          orders: {
            target: localTargetOf(set.primary),
            walArchive: set.archiveDir,
            storage: { kind: 'local', method: 'copy' },
          },
          'orders-delayed': {
            target: localTargetOf(set.replica),
            replicaOf: 'orders',
            walArchive: set.archiveDir,
            exportDir: join(dir, 'exports'),
          },
        },
      }),
    );
    registry = new ClusterRegistry(() => loadCatalog(catalogPath));
    await commitStatements(set.primaryEndpoint, [
      'CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL)',
      "INSERT INTO orders SELECT g, 'customer-' || g FROM generate_series(1, 100) g",
    ]);
    await waitFor(set.replicaEndpoint, 'SELECT count(*) = 100 AS ok FROM orders', 'the replica to replay the rows');
    // The replica stops before the backup: after the restore it is before the fork.
    await one(set.replicaEndpoint, 'SELECT pg_wal_replay_pause()');
    backup = (
      await execute<SnapshotBackupResult>(taskQueue, catalogPath, 'snapshotBackupWorkflow', { cluster: 'orders' })
    ).backup;
    await commitStatements(set.primaryEndpoint, [
      "INSERT INTO orders SELECT g, 'after-backup-' || g FROM generate_series(1001, 1010) g",
    ]);
    await archiveNow(set);
    // Left as it is ("replicas": "leave"): by default the restore would restart it on the new
    // timeline. These tests are about what a PITR does with a replica the restore left behind.
    restored = await execute<RollbackRestoreResult>(taskQueue, catalogPath, 'rollbackRestoreWorkflow', {
      cluster: 'orders',
      backup: backup.id,
      confirm: 'orders',
      replicas: 'leave',
    });
    assert.match(restored.warnings?.join() ?? '', /replica "orders-delayed": WARNING: left as it is/);
    assert.equal(restored.verified.timeline, 2);
  });
  after(async () => set?.stop());

  it('does not refuse a replica paused at or before the fork point of its primary restore', async () => {
    const check = await compareWithPrimary(registry, 'orders-delayed');
    assert.equal(check?.primaryTimeline, 2);
    assert.equal(check?.replicaTimeline, 1);
    assert.equal(check?.verdict.onHistory, true, JSON.stringify(check));
    await refuseDivergedReplica(registry, 'orders-delayed', 'check-target');
    assert.equal((await serverPosition(set.replicaEndpoint)).timelineFrom, 'IDENTIFY_SYSTEM');
  });

  it('refuses a PITR on a replica that replayed past the fork of its primary restore, naming the restore and the rebuild, changing nothing', async () => {
    // Resumed, the replica replays timeline 1's archived WAL past the fork (the rows the restore
    // took away) and then logs "forked off current database system timeline 1 before current
    // recovery point" for ever.
    await one(set.replicaEndpoint, 'SELECT pg_wal_replay_resume()');
    await waitFor(
      set.replicaEndpoint,
      "SELECT count(*) = 10 AS ok FROM orders WHERE customer LIKE 'after-backup-%'",
      'the replica to replay timeline 1 past the fork',
    );
    const bad = await commitStatements(set.primaryEndpoint, ['DELETE FROM orders WHERE id <= 10']);
    await archiveNow(set);
    const check = await compareWithPrimary(registry, 'orders-delayed');
    assert.equal(check?.verdict.onHistory, false, JSON.stringify(check));

    const refused = await failureOf(
      execute<DelayedReplicaPitrResult>(taskQueue, catalogPath, 'delayedReplicaPitrWorkflow', {
        cluster: 'orders-delayed',
        target: { xid: bad.xid },
        then: 'pause',
        replayStallTimeout: '30s',
      }),
    );
    if (process.env.SHOW_MESSAGES) console.log('REFUSAL', refused.message);
    assert.equal(refused.type, 'PreconditionFailed');
    assert.match(refused.message, /diverged from its primary orders/);
    assert.match(refused.message, new RegExp(`restore of orders to backup ${backup.id}`));
    assert.match(refused.message, new RegExp(`safety snapshot ${restored.safetySnapshot!.id}`));
    assert.match(refused.message, /pg_basebackup/);
    // Nothing changed: no target written, the delay as it was, the replica still holding its rows.
    const settings = await one<{ xid: string; delay: string; n: number }>(
      set.replicaEndpoint,
      "SELECT current_setting('recovery_target_xid') AS xid, current_setting('recovery_min_apply_delay') AS delay, (SELECT count(*)::int FROM orders) AS n",
    );
    assert.deepEqual(settings, { xid: '', delay: '1s', n: 110 });
  });

  it('accepts the replica once rebuilt from its primary as the refusal says', async () => {
    await rebuildReplica(set);
    const rebuilt = await compareWithPrimary(registry, 'orders-delayed');
    assert.equal(rebuilt?.replicaTimeline, 2);
    assert.equal(rebuilt?.verdict.onHistory, true, JSON.stringify(rebuilt));
    await refuseDivergedReplica(registry, 'orders-delayed', 'check-target');
    await waitFor(
      set.replicaEndpoint,
      'SELECT count(*) = 90 AS ok FROM orders',
      'the rebuilt replica to have the restored rows',
    );
    assert.equal(existsSync(join(set.replica.pgdata, 'standby.signal')), true);
  });
});

describe('a promoted delayed replica and a planned stop of its primary (real servers)', function () {
  this.timeout(600_000);
  let fx: PitrFixture;
  let steps: ReturnType<typeof createPitrSteps>;
  let result: DelayedReplicaPitrResult;
  const count = (endpoint: PgEndpoint) => one<{ n: number }>(endpoint, 'SELECT count(*)::int AS n FROM orders');

  before(async () => {
    fx = await pitrFixture('replica-promote', '2s');
    // A second replica of orders in the catalog (it need not run for the catalog to be read).
    const catalog = loadCatalog(fx.catalogPath) as unknown as { clusters: Record<string, unknown> };
    writeFileSync(
      fx.catalogPath,
      stringify({
        clusters: {
          ...(JSON.parse(JSON.stringify(catalog.clusters)) as Record<string, unknown>),
          'orders-reports': {
            target: { kind: 'local', pgdata: join(fx.set.replica.dir, 'reports-data'), port: fx.set.replica.port + 1 },
            replicaOf: 'orders',
          },
        },
      }),
    );
    steps = createPitrSteps(new ClusterRegistry(() => loadCatalog(fx.catalogPath)));
    await fx.commit([
      'CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL)',
      "INSERT INTO orders SELECT g, 'customer-' || g FROM generate_series(1, 100) g",
    ]);
    await fx.waitForReplicaToSee('SELECT count(*) = 100 AS ok FROM orders');
  });
  after(async () => fx?.set.stop());

  it('after a planned stop and start of the primary, its replica restores again with no gap, and the start says so', async () => {
    await fx.commit(["INSERT INTO orders SELECT g, 'before-stop' FROM generate_series(101, 150) g"]);
    await execute(fx.taskQueue, fx.catalogPath, 'plannedStopWorkflow', { cluster: 'orders', reason: 'issue 19' });
    const started = await execute<PlannedStartResult>(fx.taskQueue, fx.catalogPath, 'plannedStartWorkflow', {
      cluster: 'orders',
    });
    const follower = started.followers?.find((f) => f.cluster === 'orders-delayed');
    assert.ok(follower, JSON.stringify(started));
    assert.equal(follower.reachable, true);
    assert.equal(follower.onPrimaryHistory, true);
    assert.equal(follower.source, 'archive');
    assert.equal(started.followers?.find((f) => f.cluster === 'orders-reports')?.reachable, false);
    await fx.commit(["INSERT INTO orders SELECT g, 'after-start' FROM generate_series(151, 200) g"]);
    await fx.waitForArchive();
    await fx.waitForReplicaToSee(
      'SELECT count(*) = 200 AND min(id) = 1 AND max(id) = 200 AND count(DISTINCT id) = 200 AS ok FROM orders',
    );
  });

  it('a promotion names the replicas of the old primary that now follow nobody', async () => {
    await fx.pauseReplica();
    const bad = await fx.commit(['DELETE FROM orders WHERE id <= 20']);
    await fx.waitForArchive();
    result = await execute<DelayedReplicaPitrResult>(fx.taskQueue, fx.catalogPath, 'delayedReplicaPitrWorkflow', {
      cluster: 'orders-delayed',
      target: { xid: bad.xid },
      then: 'promote',
    });
    assert.equal(result.finalState, 'promoted');
    assert.equal(result.promoted?.formerPrimary, 'orders');
    assert.deepEqual(
      result.promoted?.replicasFollowingNobody?.map((r) => r.cluster),
      ['orders-reports'],
    );
    assert.match(result.promoted!.replicasFollowingNobody![0]!.note, /follows nobody/);
    assert.match(result.promoted!.note!, /still names orders as the primary of orders-delayed/);
  });

  it('refuses to insert rows from the promoted replica into the old primary, not on its timeline', async () => {
    assert.ok(result, 'the promotion ran');
    const env = () => new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    const exported = (await env().run(steps.exportLostRows, {
      cluster: 'orders-delayed',
      tables: ['orders'],
    })) as TableExport[];
    const before = await count(fx.set.primaryEndpoint);
    const err = await env()
      .run(steps.insertMissingRowsIntoPrimary, { cluster: 'orders-delayed', exports: exported })
      .then(
        (r) => assert.fail(`inserted: ${JSON.stringify(r)}`),
        (e: unknown) => e,
      );
    assert.ok(err instanceof ApplicationFailure, String(err));
    assert.equal(err.type, 'PreconditionFailed');
    assert.match(err.message, /not on the history of orders/);
    assert.deepEqual(await count(fx.set.primaryEndpoint), before, 'nothing was inserted');
  });
});
