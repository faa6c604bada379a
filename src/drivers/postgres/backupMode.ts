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
  /** pg_backup_stop(wait_for_archive => true): returns once the WAL the backup needs is archived. */
  stop(): Promise<BackupStopped>;
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
      const row = (
        await client.query<{ lsn: string; labelfile: string; spcmapfile: string; at: string }>(
          `SELECT lsn::text AS lsn, labelfile, spcmapfile,
                  to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at
             FROM pg_backup_stop(true)`,
        )
      ).rows[0]!;
      return { stopLsn: row.lsn, labelfile: row.labelfile, spcmapfile: row.spcmapfile ?? '', stoppedAt: row.at };
    },
    async close() {
      signal?.removeEventListener('abort', onAbort);
      await close();
    },
  };
}
