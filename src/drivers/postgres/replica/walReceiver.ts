// Where a standby gets its WAL from: a WAL receiver streaming from its primary, or the archive.
import type { Client } from 'pg';

/** True when the standby's WAL receiver streams from its primary now. */
export async function isStreaming(client: Client): Promise<boolean> {
  return (
    (await client.query(`SELECT count(*)::int AS n FROM pg_stat_wal_receiver WHERE status = 'streaming'`)).rows[0].n > 0
  );
}
