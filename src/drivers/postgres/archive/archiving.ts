// How a server hands its WAL to the archive: whether archiving is on, the segment it writes now
// (whose name begins with its timeline), and a switch to the next segment so this one is archived.
import type { Client } from 'pg';

/** archive_mode as the server has it: 'off', 'on' or 'always'. */
export async function readArchiveMode(c: Client): Promise<string | undefined> {
  return (await c.query<{ archive_mode: string }>('SHOW archive_mode')).rows[0]?.archive_mode;
}

/** The timeline a primary writes on, from the name of its current WAL segment. */
export async function currentWalTimeline(c: Client): Promise<number> {
  const f = (await c.query<{ f: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS f')).rows[0]!.f;
  return parseInt(f.slice(0, 8), 16);
}

/** Ends the current WAL segment, so that the archiver takes it. */
export async function switchWal(c: Client): Promise<void> {
  await c.query('SELECT pg_switch_wal()');
}
