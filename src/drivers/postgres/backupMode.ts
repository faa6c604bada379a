// PostgreSQL 15's non-exclusive backup mode: pg_backup_start and pg_backup_stop must run in ONE
// session that stays open between them. If the session dies (the worker crashed, the network
// broke), PostgreSQL aborts the backup by itself: nothing is ever left "in backup mode".
import { Client } from 'pg';
import { clientConfig, type PgEndpoint } from './session';

export interface BackupStarted {
  startLsn: string;
  timeline: number;
  systemIdentifier: string;
  pgVersion: string;
  databaseSizeBytes: number;
  /** Server time when backup mode began. */
  startedAt: string;
  inRecovery: boolean;
}

export interface BackupStopped {
  stopLsn: string;
  labelfile: string;
  spcmapfile: string;
  stoppedAt: string;
}

export interface BackupSession {
  start(label: string): Promise<BackupStarted>;
  /**
   * Ends backup mode. pg_backup_stop(wait_for_archive => true) checks the archive only once a
   * second, holding backup mode for that long; so backup mode ends at once (false) and the WAL
   * the backup needs is awaited afterwards, polled every 50 ms (see waitForArchived).
   */
  stop(): Promise<BackupStopped>;
  /** Waits until the last WAL segment the backup needs is in the archive; reports failures. */
  waitForArchived(stopLsn: string, onProgress?: (detail: string) => void): Promise<{ ms: number; segment: string }>;
  /** Ends the session; a backup not stopped yet is aborted by PostgreSQL. */
  close(): Promise<void>;
}

export async function openBackupSession(endpoint: PgEndpoint, signal?: AbortSignal): Promise<BackupSession> {
  const client = new Client(clientConfig(endpoint));
  client.on('error', () => undefined);
  await client.connect();
  const close = () => client.end().catch(() => undefined);
  // A cancelled activity must not leave the session (and so backup mode) open.
  const onAbort = () => void close();
  signal?.addEventListener('abort', onAbort, { once: true });
  return {
    async start(label) {
      const info = (
        await client.query<{ sysid: string; version: string; size: string; recovery: boolean }>(
          `SELECT system_identifier::text AS sysid, current_setting('server_version') AS version,
                  (SELECT sum(pg_database_size(oid)) FROM pg_database)::text AS size, pg_is_in_recovery() AS recovery
             FROM pg_control_system()`,
        )
      ).rows[0]!;
      const started = (
        await client.query<{ lsn: string; at: string }>(
          `SELECT pg_backup_start($1, true)::text AS lsn, to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at`,
          [label],
        )
      ).rows[0]!;
      // pg_backup_start's checkpoint (fast) is the one the backup starts from: its timeline is the backup's.
      const timeline = (await client.query<{ tli: number }>('SELECT timeline_id AS tli FROM pg_control_checkpoint()'))
        .rows[0]!.tli;
      return {
        startLsn: started.lsn,
        timeline,
        systemIdentifier: info.sysid,
        pgVersion: info.version,
        databaseSizeBytes: Number(info.size),
        startedAt: started.at,
        inRecovery: info.recovery,
      };
    },
    async stop() {
      // On a standby, pg_walfile_name() is not available: keep PostgreSQL's own wait there.
      const recovering = (await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r;
      const row = (
        await client.query<{ lsn: string; labelfile: string; spcmapfile: string; at: string }>(
          `SELECT lsn::text AS lsn, labelfile, spcmapfile,
                  to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at
             FROM pg_backup_stop($1)`,
          [recovering],
        )
      ).rows[0]!;
      return { stopLsn: row.lsn, labelfile: row.labelfile, spcmapfile: row.spcmapfile ?? '', stoppedAt: row.at };
    },
    async waitForArchived(stopLsn, onProgress) {
      const started = Date.now();
      const recovering = (await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r;
      if (recovering) return { ms: 0, segment: '(standby: pg_backup_stop waited)' };
      // The segment holding the byte before the stop point, as pg_backup_stop itself computes it;
      // pg_backup_stop switched to a new segment, so this one is complete and queued for archiving.
      const segment = (await client.query<{ f: string }>('SELECT pg_walfile_name($1::pg_lsn - 1) AS f', [stopLsn]))
        .rows[0]!.f;
      for (;;) {
        const row = (
          await client.query<{ archived: string | null; failed: string | null; failedAt: string | null }>(
            'SELECT last_archived_wal AS archived, last_failed_wal AS failed, last_failed_time::text AS "failedAt" FROM pg_stat_archiver',
          )
        ).rows[0]!;
        if (await segmentArchived(client, segment, row.archived)) return { ms: Date.now() - started, segment };
        onProgress?.(
          `waiting for ${segment} to be archived${row.failed ? ` (archive_command failed on ${row.failed} at ${row.failedAt}: see the server log)` : ''}`,
        );
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async close() {
      signal?.removeEventListener('abort', onAbort);
      await close();
    },
  };
}

/**
 * The archiver marks a segment <name>.ready, then <name>.done once archive_command succeeded.
 * last_archived_wal alone can mislead: the backup history file (named after the START segment)
 * may be archived after the stop segment. Without the right to list archive_status
 * (pg_monitor), fall back to last_archived_wal.
 */
export async function segmentArchived(client: Client, segment: string, lastArchived: string | null): Promise<boolean> {
  try {
    const status = (
      await client.query<{ ready: string; done: string }>(
        "SELECT count(*) FILTER (WHERE name = $1 || '.ready') AS ready, count(*) FILTER (WHERE name = $1 || '.done') AS done FROM pg_ls_archive_statusdir()",
        [segment],
      )
    ).rows[0]!;
    if (Number(status.ready) > 0) return false;
    if (Number(status.done) > 0) return true;
  } catch {
    // no permission: use the statistics view only
  }
  // Names of one timeline sort in WAL order; a later timeline's names sort after.
  return lastArchived !== null && /^[0-9A-F]{24}$/.test(lastArchived) && lastArchived >= segment;
}
