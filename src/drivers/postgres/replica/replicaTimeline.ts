// How a replica is told to follow a timeline (where it stands: replicaHistory.ts): by
// number, in postgresql.auto.conf (read last, so it wins over the replica's own files), taking
// effect at its next restart (recovery_target_timeline is a postmaster setting).
import type { Client } from 'pg';
import { withSession, type PgEndpoint } from '../session';

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

/**
 * postgresql.auto.conf without its recovery_target_timeline line: a rebuilt replica is a copy of
 * its primary as it is now, and a timeline number an earlier "follow" wrote there would name a
 * timeline that is not in the copy's history ("recovery target timeline N does not exist").
 */
export function withoutTimelineSetting(autoConf: string): string {
  return autoConf
    .split('\n')
    .filter((line) => !/^\s*recovery_target_timeline\s*=/.test(line))
    .join('\n');
}
