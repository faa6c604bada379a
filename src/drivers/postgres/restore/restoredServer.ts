// What the restore's last step reads from the restored server: which database system it is,
// where recovery left it, and, once recovery has ended, its recovery settings removed.
import type { Client } from 'pg';
import { clearRestoreSettings } from './recoveryConfig';
import { currentWalTimeline } from '../archive/archiving';

export interface RestoredServer {
  timeline: number;
  endLsn: string;
  systemIdentifier: string;
  inRecovery: boolean;
  /** The restore's settings taken out of postgresql.auto.conf (none while recovery goes on). */
  settingsRemoved: string[];
}

export async function checkRestoredServer(c: Client): Promise<RestoredServer> {
  const row = (
    await c.query<{ sysid: string; recovery: boolean; lsn: string; tli: number }>(
      `SELECT system_identifier::text AS sysid, pg_is_in_recovery() AS recovery,
              (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn,
              (SELECT timeline_id FROM pg_control_checkpoint()) AS tli
         FROM pg_control_system()`,
    )
  ).rows[0]!;
  let timeline = row.tli;
  if (!row.recovery) timeline = await currentWalTimeline(c);
  await c.query('SELECT count(*) FROM pg_database');
  const settingsRemoved = row.recovery ? [] : await clearRestoreSettings(c);
  return { timeline, endLsn: row.lsn, systemIdentifier: row.sysid, inRecovery: row.recovery, settingsRemoved };
}

/** The database system identifier of a running server. */
export async function systemIdentifierOf(c: Client): Promise<string> {
  return (await c.query<{ sysid: string }>('SELECT system_identifier::text AS sysid FROM pg_control_system()')).rows[0]!
    .sysid;
}
