// The worker SIGKILLed while a replica is being rebuilt after an in-place restore of its primary:
// once its configuration is saved (PGDATA not yet emptied), and once the copy from the primary is
// done (its configuration not yet put back). The next worker finishes the rebuild: the replica
// runs with its own settings, without the rolled-back row, and replays new rows.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { scratchDir } from './harness/testEnv';
import { runThroughKills } from './harness/crashRuns';
import { withWorker, type WorkerProcess } from './harness/workers';
import { testEnv } from './harness/testEnv';
import { createDelayedReplicaSet, type ReplicaSet } from '../src/dev/delayedReplicaSet';
import { localTargetOf } from '../src/dev/localPostgres';
import { withSession, type PgEndpoint } from '../src/drivers/postgres/session';
import { pollUntil } from '../src/drivers/waiting';
import { archiveEndLsn } from '../src/drivers/postgres/walInspect';
import { compareLsn } from '../src/common/lsn';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';

describe('a worker killed while a replica is rebuilt after a restore', () => {
  let set: ReplicaSet;
  let fx: { taskQueue: string; catalogPath: string };
  const workers: WorkerProcess[] = [];
  const sql = <T = Record<string, unknown>>(endpoint: PgEndpoint, text: string) =>
    withSession(endpoint, async (c) => (await c.query(text)).rows as T[]);
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
    const dir = await scratchDir('restore-replicas-crash');
    set = await createDelayedReplicaSet({ dir, delay: '0' });
    const catalogPath = join(dir, 'pgops.yaml');
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
    fx = { taskQueue: `pg-ops-rr-crash-${Math.random().toString(36).slice(2, 8)}`, catalogPath };
    await sql(set.primaryEndpoint, 'CREATE TABLE notes (id serial PRIMARY KEY, body text)');
    await sql(set.primaryEndpoint, "INSERT INTO notes (body) VALUES ('start')");
    await archiveNow();
    await waitForReplica('start');
    await sql(set.replicaEndpoint, "ALTER SYSTEM SET work_mem = '7MB'");
  });
  after(async () => {
    for (const w of workers) await w.kill();
    await set?.stop();
  });

  it('finishes the rebuild on the next worker, after a kill once the configuration is saved and once the copy is done', async function () {
    this.timeout(420_000);
    const { client } = await testEnv();
    const taken = await withWorker(fx.taskQueue, fx.catalogPath, () =>
      client.workflow.execute('snapshotBackupWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `rr-crash-backup-${Date.now()}`,
        args: [{ cluster: 'orders' }],
      }),
    );
    const backupId = (taken as SnapshotBackupResult).backup.id;
    await sql(set.primaryEndpoint, "INSERT INTO notes (body) VALUES ('bad')");
    await archiveNow();
    await waitForReplica('bad');
    const { result } = await runThroughKills<RollbackRestoreResult>(
      fx,
      workers,
      'rollbackRestoreWorkflow',
      { cluster: 'orders', backup: backupId, confirm: 'orders' },
      [{ pause: 'rebuild-replica-saved' }, { pause: 'rebuild-replica-cloned' }],
    );
    const replicas = result.replicas as Exclude<RollbackRestoreResult['replicas'], { warning: string } | undefined>;
    assert.ok(replicas && 'replicas' in replicas, JSON.stringify(result.replicas));
    assert.equal(replicas.replicas[0]!.action, 'rebuilt', replicas.replicas[0]!.note);
    assert.match(replicas.replicas[0]!.note, /interrupted by a crash was finished/);
    assert.equal(existsSync(`${set.replica.pgdata}.pgops-rebuild`), false, 'the saved configuration is cleaned up');
    assert.equal(await replicaHas('bad'), false);
    await sql(set.primaryEndpoint, "INSERT INTO notes (body) VALUES ('after')");
    await archiveNow();
    await waitForReplica('after');
    const workMem = await sql<{ w: string }>(set.replicaEndpoint, "SELECT current_setting('work_mem') AS w");
    assert.equal(workMem[0]!.w, '7MB', 'the replica kept its own settings');
  });
});
