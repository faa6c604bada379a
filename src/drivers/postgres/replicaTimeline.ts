// How a replica is told to follow a timeline (where it stands: replicaHistory.ts): by
// number, in postgresql.auto.conf (read last, so it wins over the replica's own files), taking
// effect at its next restart (recovery_target_timeline is a postmaster setting).
import type { Client } from 'pg';
import { withSession, type PgEndpoint } from './session';

/** recovery_target_timeline in force (a restart applies a changed one). */
export async function recoveryTargetTimeline(endpoint: PgEndpoint): Promise<string> {
  return withSession(
    endpoint,
    async (c) => (await c.query<{ t: string }>("SELECT current_setting('recovery_target_timeline') AS t")).rows[0]!.t,
  );
}

/** Makes the next start follow `timeline`; the timeline number comes from the archive, never input. */
export async function followTimeline(client: Client, timeline: number): Promise<void> {
  if (!Number.isInteger(timeline) || timeline < 1) throw new Error(`timeline ${timeline} is not a timeline number`);
  await client.query(`ALTER SYSTEM SET recovery_target_timeline = '${timeline}'`);
}
