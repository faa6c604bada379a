// The sample data and the committing helper the fixtures share.
import type { Client } from 'pg';
import { withSession, type PgEndpoint } from '../../src/drivers/postgres/session';
import { pollUntil } from '../../src/drivers/waiting';
import { segmentArchived } from '../../src/drivers/postgres/backupMode';

const lastArchivedWal = async (c: Client): Promise<string | null> =>
  (await c.query<{ w: string | null }>('SELECT last_archived_wal AS w FROM pg_stat_archiver')).rows[0]!.w;

/** The `orders` table every fixture starts with: `rows` rows, deterministic content. */
export async function createOrders(c: Client, rows: number): Promise<void> {
  await c.query('CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(12,2) NOT NULL)');
  await c.query(
    `INSERT INTO orders SELECT g, 'customer-' || (g % 97), (g * 7 % 1000) / 10.0 FROM generate_series(1, $1) g`,
    [rows],
  );
}

/** Runs statements in one transaction; returns its xid, its commit time (ISO, UTC) and the WAL position after it. */
export function commitStatements(
  endpoint: PgEndpoint,
  statements: string[],
): Promise<{ xid: string; commitTime: string; lsn: string }> {
  return withSession(endpoint, async (c: Client) => {
    await c.query('BEGIN');
    for (const sql of statements) await c.query(sql);
    const xid = String((await c.query('SELECT pg_current_xact_id()::text AS x')).rows[0].x);
    await c.query('COMMIT');
    const row = (
      await c.query(
        `SELECT to_char(pg_xact_commit_timestamp($1::text::xid) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t, pg_current_wal_lsn()::text AS lsn`,
        [xid],
      )
    ).rows[0];
    return { xid, commitTime: row.t as string, lsn: row.lsn as string };
  });
}

/**
 * Switches the server to a new WAL segment and waits until its archiver reports the old one
 * archived (pg_stat_archiver): everything written before is then in the WAL archive.
 */
export async function switchWalAndWaitForArchiver(endpoint: PgEndpoint): Promise<void> {
  await withSession(endpoint, async (c) => {
    const wal = (await c.query<{ f: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS f')).rows[0]!.f;
    await c.query('SELECT pg_switch_wal()');
    await pollUntil(
      async () =>
        // Its .done mark, or an archiver past it: not last_archived_wal alone, which a backup history file
        // archived after the segment (000…2.00000028.backup after 000…3) leaves behind it.
        (await segmentArchived(c, wal, await lastArchivedWal(c)))
          ? { done: undefined }
          : { waiting: 'not archived yet' },
      { intervalMs: 100, timeoutMs: 30_000, what: `WAL ${wal} to be archived` },
    ).catch(async (err: unknown) => {
      const archiver = (
        await c.query(
          "SELECT *, pg_current_wal_lsn() AS current, (SELECT string_agg(name, ' ') FROM pg_ls_archive_statusdir()) AS status FROM pg_stat_archiver",
        )
      ).rows[0];
      throw new Error(`${String(err)}; pg_stat_archiver: ${JSON.stringify(archiver)}`);
    });
  });
}
