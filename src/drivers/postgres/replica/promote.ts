// Promotion of a replica: first it stops writing into the shared archive (archive_command ''
// keeps WAL locally instead), then pg_promote(), then a checkpoint so the new timeline is durable.
// Safe to repeat: a server no longer in recovery is reported as promoted already.
import type { Client } from 'pg';
import { readArchiveMode } from '../archive/archiving';
import { reloadConfiguration } from '../settings';

export interface Promotion {
  promoted: true;
  alreadyPromoted: boolean;
  timeline: number;
}

/** How long pg_promote() may take before the promotion counts as failed. */
const PROMOTE_WAIT_SECONDS = 300;

export async function promoteStandby(client: Client): Promise<Promotion> {
  if (!(await client.query('SELECT pg_is_in_recovery() AS r')).rows[0].r)
    return { promoted: true, alreadyPromoted: true, timeline: await checkpointTimeline(client) };
  const mode = await readArchiveMode(client);
  if (mode !== 'off') {
    await client.query("ALTER SYSTEM SET archive_command = ''");
    await reloadConfiguration(client);
  }
  const ok = (await client.query(`SELECT pg_promote(true, ${PROMOTE_WAIT_SECONDS}) AS ok`)).rows[0].ok as boolean;
  if (!ok) throw new Error(`pg_promote() did not finish within ${PROMOTE_WAIT_SECONDS} s`);
  await client.query('CHECKPOINT');
  return { promoted: true, alreadyPromoted: false, timeline: await checkpointTimeline(client) };
}

/** The timeline of the last checkpoint (pg_control). */
async function checkpointTimeline(client: Client): Promise<number> {
  return Number((await client.query('SELECT timeline_id FROM pg_control_checkpoint()')).rows[0].timeline_id);
}
