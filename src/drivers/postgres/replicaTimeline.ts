// Where a replica stands in the history of timelines, and how it is told to follow one: by
// number, in postgresql.auto.conf (read last, so it wins over the replica's own files), taking
// effect at its next restart (recovery_target_timeline is a postmaster setting).
import type { Client } from 'pg';
import { withSession, type PgEndpoint } from './session';

export interface ReplicaPosition {
  /** The timeline of its latest restartpoint (where it replays, unless it switched since). */
  timeline: number;
  replayLsn: string;
  /** recovery_target_timeline in force. */
  targetTimeline: string;
}

export async function replicaPosition(endpoint: PgEndpoint): Promise<ReplicaPosition> {
  return withSession(endpoint, async (c) => {
    const row = (
      await c.query<{ recovery: boolean; lsn: string | null; tli: number; received: number | null; target: string }>(
        `SELECT pg_is_in_recovery() AS recovery, pg_last_wal_replay_lsn()::text AS lsn,
                (SELECT timeline_id FROM pg_control_checkpoint()) AS tli,
                (SELECT received_tli FROM pg_stat_wal_receiver) AS received,
                current_setting('recovery_target_timeline') AS target`,
      )
    ).rows[0]!;
    if (!row.recovery) throw new Error(`${endpoint.host}:${endpoint.port} is not in recovery: not a replica`);
    // A streaming replica's receiver knows the timeline it follows better than the last restartpoint.
    return {
      timeline: row.received ?? row.tli,
      replayLsn: row.lsn ?? '0/0',
      targetTimeline: row.target,
    };
  });
}

/** Makes the next start follow `timeline`; the timeline number comes from the archive, never input. */
export async function followTimeline(client: Client, timeline: number): Promise<void> {
  if (!Number.isInteger(timeline) || timeline < 1) throw new Error(`timeline ${timeline} is not a timeline number`);
  await client.query(`ALTER SYSTEM SET recovery_target_timeline = '${timeline}'`);
}
