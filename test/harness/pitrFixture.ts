// A real primary + WAL archive + delayed replica, and a catalog naming them "orders" and
// "orders-delayed": the fixture of the PITR workflow tests and the demo's second act.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createDelayedReplicaSet, type ReplicaSet } from '../../src/dev/delayedReplicaSet';
import { withSession, type PgEndpoint } from '../../src/drivers/postgres/session';
import { pollUntil } from '../../src/drivers/waiting';
import { archiveEndLsn } from '../../src/drivers/postgres/archive/walInspect';
import { compareLsn } from '../../src/common/lsn';
import { localTargetOf } from '../../src/dev/localPostgres';
import type { DelayedReplicaPitrInput } from '../../src/workflows/pitrInput';
import type { DelayedReplicaPitrResult } from '../../src/workflows/delayedReplicaPitr';
import { scratchDir, testEnv } from './testEnv';
import { commitStatements } from './sampleData';

export interface PitrFixture {
  set: ReplicaSet;
  catalogPath: string;
  exportDir: string;
  taskQueue: string;
  query<T>(endpoint: PgEndpoint, sql: string, params?: unknown[]): Promise<T>;
  /** Runs statements in one transaction on the primary; returns its xid and commit time (ISO, UTC). */
  commit(statements: string[]): Promise<{ xid: string; commitTime: string }>;
  waitForArchive(): Promise<void>;
  waitForReplicaToSee(sql: string): Promise<void>;
  /** Pauses replay on the replica, as a DBA would on seeing an incident: a test that needs the
   * replica to stay before the incident no longer races its delay on a loaded machine. */
  pauseReplica(): Promise<void>;
}

export async function pitrFixture(label: string, delay = '20s'): Promise<PitrFixture> {
  const dir = await scratchDir(label);
  const set = await createDelayedReplicaSet({ dir, delay });
  const catalogPath = join(dir, 'pgops.yaml');
  const exportDir = join(dir, 'exports');
  writeFileSync(
    catalogPath,
    stringify({
      clusters: {
        orders: { target: localTargetOf(set.primary) },
        'orders-delayed': {
          target: localTargetOf(set.replica),
          replicaOf: 'orders',
          walArchive: set.archiveDir,
          exportDir,
        },
      },
    }),
  );
  const query = <T>(endpoint: PgEndpoint, sql: string, params: unknown[] = []) =>
    withSession(endpoint, async (c) => (await c.query(sql, params)).rows[0] as T);
  return {
    set,
    catalogPath,
    exportDir,
    taskQueue: `pg-ops-${label}-${Math.random().toString(36).slice(2, 8)}`,
    query,
    commit: (statements) => commitStatements(set.primaryEndpoint, statements),
    async waitForArchive() {
      // A switch now, rather than archive_timeout's: the tests race the replica's delay, and under
      // load the archiver's timeout fired late (a DROP replayed before the workflow could pause).
      // Everything before what it returns is archived once the archive ends at or after it (the
      // insert position could be the start of a segment archive_timeout leaves empty).
      const lsn = (await query<{ l: string }>(set.primaryEndpoint, 'SELECT pg_switch_wal()::text AS l')).l;
      await pollUntil(
        async () => {
          const end = archiveEndLsn(set.archiveDir);
          return end && compareLsn(end, lsn) >= 0 ? { done: undefined } : { waiting: `archive ends at ${end}` };
        },
        { intervalMs: 200, timeoutMs: 60_000, what: `the archive to reach ${lsn}` },
      );
    },
    async pauseReplica() {
      await query(set.replicaEndpoint, 'SELECT pg_wal_replay_pause()');
    },
    async waitForReplicaToSee(sql) {
      await pollUntil(
        async () => {
          const row = await query<{ ok: boolean }>(set.replicaEndpoint, sql).catch(() => undefined);
          return row?.ok ? { done: undefined } : { waiting: 'not replayed yet' };
        },
        { intervalMs: 500, timeoutMs: 180_000, what: `the delayed replica to replay: ${sql}` },
      );
    },
  };
}

/**
 * Runs delayedReplicaPitrWorkflow on `taskQueue` (a worker must poll it) to recover the rows of
 * `orders` that transaction `xid` deleted: "orders-delayed" replays to just before it, exports
 * orders, inserts the missing rows into the primary ("orders") and returns to its delay.
 */
export async function recoverDeletedOrders(
  taskQueue: string,
  workflowId: string,
  xid: string,
): Promise<DelayedReplicaPitrResult> {
  const { client } = await testEnv();
  const input: DelayedReplicaPitrInput = {
    cluster: 'orders-delayed',
    target: { xid },
    then: 'export',
    export: { tables: ['orders'], insertMissing: true },
  };
  return client.workflow.execute('delayedReplicaPitrWorkflow', { taskQueue, workflowId, args: [input] });
}
