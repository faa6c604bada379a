// The replicas of a primary restored in place (README "History"). Before this, a replica that had
// replayed past the restore's fork point logged "new timeline N forked off current database
// system timeline M before current recovery point" for ever, kept the rolled-back rows and never
// received another row, and nothing in the restore's result said so; one before the fork kept
// reading its own timeline's old WAL from the archive, past the fork.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { testEnv, scratchDir } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { createDelayedReplicaSet, type ReplicaSet } from '../src/dev/delayedReplicaSet';
import { localTargetOf } from '../src/dev/localPostgres';
import { withSession, type PgEndpoint } from '../src/drivers/postgres/session';
import { pollUntil } from '../src/drivers/waiting';
import { archiveEndLsn } from '../src/drivers/postgres/walInspect';
import { compareLsn } from '../src/common/lsn';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';

describe('the replicas of a primary restored in place', () => {
  let set: ReplicaSet;
  let catalogPath: string;
  const taskQueue = `pg-ops-restore-replicas-${Math.random().toString(36).slice(2, 8)}`;
  let seq = 0;

  const sql = <T = Record<string, unknown>>(endpoint: PgEndpoint, text: string) =>
    withSession(endpoint, async (c) => (await c.query(text)).rows as T[]);
  const run = async <T>(type: string, input: Record<string, unknown>): Promise<T> => {
    const { client } = await testEnv();
    return withWorker(taskQueue, catalogPath, () =>
      client.workflow.execute(type, { taskQueue, workflowId: `${type}-rr-${Date.now()}-${seq++}`, args: [input] }),
    ) as Promise<T>;
  };
  const backup = async () =>
    (await run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: 'orders' })).backup.id;
  const restore = (id: string, extra: Record<string, unknown> = {}) =>
    run<RollbackRestoreResult>('rollbackRestoreWorkflow', {
      cluster: 'orders',
      backup: id,
      confirm: 'orders',
      ...extra,
    });
  const archiveNow = async () => {
    const lsn = (await sql<{ l: string }>(set.primaryEndpoint, 'SELECT pg_switch_wal()::text AS l'))[0]!.l;
    await pollUntil(
      async () => {
        const end = archiveEndLsn(set.archiveDir);
        return end && compareLsn(end, lsn) >= 0 ? { done: undefined } : { waiting: `archive ends at ${end}` };
      },
      { intervalMs: 200, timeoutMs: 60_000, what: `the archive to reach ${lsn}` },
    );
  };
  const replicaHas = async (note: string) =>
    (await sql(set.replicaEndpoint, `SELECT 1 FROM notes WHERE body = '${note}'`).catch(() => [])).length > 0;
  const waitForReplica = (note: string) =>
    pollUntil(async () => ((await replicaHas(note)) ? { done: undefined } : { waiting: `no ${note} yet` }), {
      intervalMs: 300,
      timeoutMs: 120_000,
      what: `the replica to replay "${note}"`,
    });

  before(async function () {
    this.timeout(180_000);
    const dir = await scratchDir('restore-replicas');
    set = await createDelayedReplicaSet({ dir, delay: '0' });
    catalogPath = join(dir, 'pgops.yaml');
    writeFileSync(
      catalogPath,
      stringify({
        clusters: {
          orders: {
            target: localTargetOf(set.primary),
            walArchive: set.archiveDir,
            storage: { kind: 'local', method: 'copy', snapshotDir: join(dir, 'snapshots'), preRestoreRetentionDays: 7 },
          },
          'orders-delayed': { target: localTargetOf(set.replica), replicaOf: 'orders', walArchive: set.archiveDir },
        },
      }),
    );
    await sql(set.primaryEndpoint, 'CREATE TABLE notes (id serial PRIMARY KEY, body text)');
    await sql(set.primaryEndpoint, "INSERT INTO notes (body) VALUES ('start')");
    await archiveNow();
    await waitForReplica('start');
    // A setting of the replica's own, which a rebuild must keep.
    await sql(set.replicaEndpoint, "ALTER SYSTEM SET work_mem = '7MB'");
  });
  after(async () => set?.stop());

  it('rebuilds a replica that replayed past the fork, keeping its own settings, and it replicates again', async function () {
    this.timeout(300_000);
    const id = await backup();
    await sql(set.primaryEndpoint, "INSERT INTO notes (body) VALUES ('bad')");
    await archiveNow();
    await waitForReplica('bad');
    const restored = await restore(id);
    const replicas = restored.replicas as Exclude<RollbackRestoreResult['replicas'], { warning: string } | undefined>;
    assert.ok(replicas && 'replicas' in replicas, JSON.stringify(restored.replicas));
    assert.equal(replicas.replicas.length, 1);
    assert.equal(replicas.replicas[0]!.replica, 'orders-delayed');
    assert.equal(replicas.replicas[0]!.position, 'past-fork', replicas.replicas[0]!.note);
    assert.equal(replicas.replicas[0]!.action, 'rebuilt');
    assert.equal(restored.warnings, undefined);
    assert.equal(await replicaHas('bad'), false, 'the rolled-back row is gone from the replica');
    await sql(set.primaryEndpoint, "INSERT INTO notes (body) VALUES ('after-rebuild')");
    await archiveNow();
    await waitForReplica('after-rebuild');
    assert.equal(
      (await sql<{ w: string }>(set.replicaEndpoint, "SELECT current_setting('work_mem') AS w"))[0]!.w,
      '7MB',
    );
    assert.equal((await sql<{ r: boolean }>(set.replicaEndpoint, 'SELECT pg_is_in_recovery() AS r'))[0]!.r, true);
  });

  it('tells a replica that has not reached the fork to follow the new timeline, and it does', async function () {
    this.timeout(300_000);
    // Held before the backup, as a delayed replica is: the restore's fork lies after it.
    await sql(set.replicaEndpoint, 'SELECT pg_wal_replay_pause()');
    const id = await backup();
    await sql(set.primaryEndpoint, "INSERT INTO notes (body) VALUES ('bad-2')");
    await archiveNow();
    const restored = await restore(id);
    const replicas = restored.replicas as Exclude<RollbackRestoreResult['replicas'], { warning: string } | undefined>;
    assert.ok(replicas && 'replicas' in replicas, JSON.stringify(restored.replicas));
    assert.equal(replicas.replicas[0]!.position, 'before-fork', replicas.replicas[0]!.note);
    assert.equal(replicas.replicas[0]!.action, 'followed');
    assert.match(replicas.replicas[0]!.note, new RegExp(`recovery_target_timeline = ${replicas.timeline}`));
    await sql(set.primaryEndpoint, "INSERT INTO notes (body) VALUES ('after-follow')");
    await archiveNow();
    await waitForReplica('after-follow');
    assert.equal(await replicaHas('bad-2'), false, 'the replica never replayed the rolled-back branch');
  });

  it('with "replicas": "leave", leaves a diverged replica as it is and warns at the top of the result', async function () {
    this.timeout(300_000);
    const id = await backup();
    await sql(set.primaryEndpoint, "INSERT INTO notes (body) VALUES ('bad-3')");
    await archiveNow();
    await waitForReplica('bad-3');
    const restored = await restore(id, { replicas: 'leave' });
    assert.equal(restored.warnings?.length, 1);
    assert.match(restored.warnings![0]!, /replica "orders-delayed": WARNING: left as it is .*diverged .*rebuild it/);
    assert.equal(await replicaHas('bad-3'), true, 'untouched');
  });
});
