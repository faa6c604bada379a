// Where a server restoring from the WAL archive would begin replay if it restarted now: the REDO
// location of its last restart point (a standby) or checkpoint, on that checkpoint's timeline.
// Every archived segment from there on may still be read by it, even those it has replayed.
import { withSession, type PgEndpoint } from '../session';
import { readControlData } from '../controlData';
import { withParkedSession } from '../parkedSession';

export interface RestartPoint {
  timeline: number;
  redoLsn: string;
  /** How far it has replayed (a standby), for messages. */
  replayLsn?: string;
  inRecovery?: boolean;
  /** How it was read: asked over SQL, or pg_controldata of its data directory. */
  source: 'sql' | 'pg_controldata';
}

export async function askRestartPoint(endpoint: PgEndpoint): Promise<RestartPoint> {
  return withSession(endpoint, async (client) => {
    const row = (
      await client.query<{ redo: string; tli: number; replay: string | null; rec: boolean }>(
        `SELECT redo_lsn::text AS redo, timeline_id AS tli, pg_last_wal_replay_lsn()::text AS replay,
                pg_is_in_recovery() AS rec
           FROM pg_control_checkpoint()`,
      )
    ).rows[0];
    if (!row) throw new Error('pg_control_checkpoint() returned no row');
    return {
      timeline: Number(row.tli),
      redoLsn: row.redo,
      replayLsn: row.replay ?? undefined,
      inRecovery: row.rec,
      source: 'sql',
    };
  });
}

/** The same from the control file, for a server that does not answer (stopped, or starting). */
export async function readRestartPoint(binDir: string, pgdata: string, osUser: string): Promise<RestartPoint> {
  const control = await readControlData(binDir, pgdata, osUser);
  return { timeline: control.timeline, redoLsn: control.redoLsn, source: 'pg_controldata' };
}

/** Where replay will start after a restart (the restartpoint's REDO) and on which timeline. */
export async function replayStart(endpoint: PgEndpoint): Promise<{ fromLsn: string; timeline: number }> {
  return withParkedSession(endpoint, async (client) => {
    const row = (
      await client.query<{ redo: string; tli: number }>(
        'SELECT redo_lsn::text AS redo, timeline_id AS tli FROM pg_control_checkpoint()',
      )
    ).rows[0];
    if (!row) throw new Error('pg_control_checkpoint() returned no row');
    return { fromLsn: row.redo, timeline: Number(row.tli) };
  });
}
