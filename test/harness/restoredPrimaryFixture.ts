// A primary (copy snapshots, WAL archive) with an archive-fed replica of its own in the catalog
// ("orders" and "orders-delayed"), a `notes` table replayed once, and the replica's own work_mem:
// the fixture of the tests of a primary restored in place and what becomes of its replica.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { scratchDir } from './testEnv';
import { runWorkflow } from './workers';
import { createDelayedReplicaSet, type ReplicaSet } from '../../src/dev/delayedReplicaSet';
import { localTargetOf } from '../../src/dev/localPostgres';
import { withSession, type PgEndpoint } from '../../src/drivers/postgres/session';
import { pollUntil } from '../../src/drivers/waiting';
import { archiveEndLsn } from '../../src/drivers/postgres/archive/walInspect';
import { compareLsn } from '../../src/common/lsn';

export interface RestoredPrimaryFixture {
  set: ReplicaSet;
  catalogPath: string;
  taskQueue: string;
  sql<T = Record<string, unknown>>(endpoint: PgEndpoint, text: string): Promise<T[]>;
  /** Switches the primary's WAL and waits until the archive has it. */
  archiveNow(): Promise<void>;
  /** Inserts a note on the primary and archives it. */
  note(body: string): Promise<void>;
  replicaHas(body: string): Promise<boolean>;
  waitForReplica(body: string): Promise<void>;
  /** Runs a workflow to its end with a worker on the fixture's task queue and catalog. */
  run<T>(type: string, input: Record<string, unknown>): Promise<T>;
}

export async function restoredPrimaryFixture(label: string): Promise<RestoredPrimaryFixture> {
  const dir = await scratchDir(label);
  const set = await createDelayedReplicaSet({ dir, delay: '0' });
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
  const replicaHas = async (body: string) =>
    (await sql(set.replicaEndpoint, `SELECT 1 FROM notes WHERE body = '${body}'`).catch(() => [])).length > 0;
  const waitForReplica = (body: string) =>
    pollUntil(async () => ((await replicaHas(body)) ? { done: undefined } : { waiting: `no ${body} yet` }), {
      intervalMs: 300,
      timeoutMs: 120_000,
      what: `the replica to replay "${body}"`,
    });
  const note = async (body: string) => {
    await sql(set.primaryEndpoint, `INSERT INTO notes (body) VALUES ('${body}')`);
    await archiveNow();
  };
  await sql(set.primaryEndpoint, 'CREATE TABLE notes (id serial PRIMARY KEY, body text)');
  await note('start');
  await waitForReplica('start');
  // A setting of the replica's own, which a rebuild must keep.
  await sql(set.replicaEndpoint, "ALTER SYSTEM SET work_mem = '7MB'");
  const taskQueue = `pg-ops-${label}-${Math.random().toString(36).slice(2, 8)}`;
  return {
    set,
    catalogPath,
    taskQueue,
    run: (type, input) => runWorkflow(taskQueue, catalogPath, label, type, input),
    sql,
    archiveNow,
    note,
    replicaHas,
    waitForReplica,
  };
}
