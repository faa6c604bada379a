// Whether a replica is on its primary's history. After an in-place restore (or any promotion) the
// primary runs on a new timeline N forked off timeline M at LSN F. A standby on M that has
// replayed past F holds WAL the primary no longer has: PostgreSQL logs "new timeline N forked off
// current database system timeline M before current recovery point" at every rescan and keeps
// the old history for ever. A replica on timeline T at replay position R is on the primary's
// history iff T is on the primary's path and (T is the primary's timeline, or R <= the
// switchpoint where the path leaves T).
import { Client, type ClientConfig } from 'pg';
import { compareLsn } from '../../../common/lsn';
import { clientConfig, withSession, type PgEndpoint } from '../session';
import { parseHistoryFile, readTimelines, type HistoryEntry } from '../archive/timelines';

export interface ServerPosition {
  inRecovery: boolean;
  timeline: number;
  /** The standby's replay position (pg_last_wal_replay_lsn), or the primary's current WAL LSN. */
  lsn: string;
  /** Where the timeline was read: a standby's replay timeline needs a replication connection. */
  timelineFrom: 'wal file name' | 'IDENTIFY_SYSTEM' | 'control file';
}

export interface PrimaryHistory {
  timeline: number;
  /** The ancestors of the primary's timeline with their switchpoints (its history file). */
  history: HistoryEntry[];
  lsn: string;
  historyFrom: 'server' | 'archive' | 'none';
}

export type HistoryVerdict =
  | { onHistory: true }
  | {
      onHistory: false;
      /** The primary's path left the replica's timeline here, before the replica's position. */
      forkLsn?: string;
      /** The timeline the primary's path took at the fork (the restore's or promotion's). */
      forkedTo?: number;
      /** The history file's reason for that fork ("no recovery target specified", "before transaction 727"...). */
      forkReason?: string;
      why: string;
    };

/** Where a server stands: timeline and position, on a primary or a standby. */
export async function serverPosition(endpoint: PgEndpoint): Promise<ServerPosition> {
  const read = await withSession(endpoint, async (client) => {
    const row = (
      await client.query(
        `SELECT pg_is_in_recovery() AS r,
                CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text ELSE pg_current_wal_lsn()::text END AS lsn,
                CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS walfile,
                (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_tli,
                (SELECT min_recovery_end_timeline FROM pg_control_recovery()) AS min_recovery_tli`,
      )
    ).rows[0] as {
      r: boolean;
      lsn: string | null;
      walfile: string | null;
      checkpoint_tli: number;
      min_recovery_tli: number;
    };
    return row;
  });
  if (!read.r)
    return {
      inRecovery: false,
      timeline: parseInt(read.walfile!.slice(0, 8), 16),
      lsn: read.lsn!,
      timelineFrom: 'wal file name',
    };
  // A standby's replay timeline is not exposed to SQL in PostgreSQL 15; IDENTIFY_SYSTEM on a
  // replication connection reports it (a cascading walsender's replay TLI). Without replication
  // access, the control file's timelines are the best lower bound (they lag until a restartpoint).
  const identified = await identifySystem(endpoint).catch(() => undefined);
  const lsn = read.lsn ?? '0/0';
  if (identified) return { inRecovery: true, timeline: identified.timeline, lsn, timelineFrom: 'IDENTIFY_SYSTEM' };
  return {
    inRecovery: true,
    timeline: Math.max(Number(read.checkpoint_tli), Number(read.min_recovery_tli)),
    lsn,
    timelineFrom: 'control file',
  };
}

/** IDENTIFY_SYSTEM over a physical replication connection: the timeline a standby replays (or a primary writes). */
export async function identifySystem(endpoint: PgEndpoint): Promise<{ systemId: string; timeline: number }> {
  // `replication` is a startup parameter pg passes through; its ClientConfig type does not list it.
  const client = new Client({ ...clientConfig(endpoint), replication: 'true' } as ClientConfig);
  client.on('error', () => undefined);
  try {
    await client.connect();
    const row = (await client.query('IDENTIFY_SYSTEM')).rows[0] as { systemid: string; timeline: number | string };
    return { systemId: String(row.systemid), timeline: Number(row.timeline) };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * The primary's timeline, position and history. The history file is read from the server's
 * pg_wal (pg_read_binary_file: superuser or pg_read_server_files), else from the WAL archive.
 */
export async function primaryHistory(endpoint: PgEndpoint, archiveDir?: string): Promise<PrimaryHistory> {
  const position = await serverPosition(endpoint);
  const { timeline, lsn } = position;
  if (timeline === 1) return { timeline, lsn, history: [], historyFrom: 'none' };
  const name = `${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
  const fromServer = await withSession(endpoint, async (client) => {
    const row = (await client.query(`SELECT convert_from(pg_read_binary_file($1), 'UTF8') AS t`, [`pg_wal/${name}`]))
      .rows[0] as { t: string };
    return row.t;
  }).catch(() => undefined);
  if (fromServer !== undefined)
    return { timeline, lsn, history: parseHistoryFile(fromServer, name), historyFrom: 'server' };
  const archived = archiveDir ? readTimelines(archiveDir).get(timeline)?.history : undefined;
  if (archived?.length) return { timeline, lsn, history: archived, historyFrom: 'archive' };
  throw new Error(
    `cannot read the history file ${name} of the primary's timeline ${timeline}: not readable in its pg_wal (pg_read_binary_file) and not in the WAL archive${archiveDir ? ` ${archiveDir}` : ''}`,
  );
}

/** The newest timeline the WAL archive knows and its history: the primary's, seen without the primary. */
export function archiveHistory(archiveDir: string): Omit<PrimaryHistory, 'lsn'> {
  const timelines = readTimelines(archiveDir);
  const newest = [...timelines.values()].at(-1)!;
  return { timeline: newest.timeline, history: newest.history, historyFrom: 'archive' };
}

/** Whether (timeline, lsn) of a replica is on the primary's history (see the top of this file). */
export function onPrimaryHistory(
  primary: Pick<PrimaryHistory, 'timeline' | 'history'>,
  replica: { timeline: number; lsn: string },
): HistoryVerdict {
  if (replica.timeline === primary.timeline) return { onHistory: true };
  const index = primary.history.findIndex((e) => e.timeline === replica.timeline);
  if (index < 0) {
    const path = [...primary.history.map((e) => e.timeline), primary.timeline].join(' → ');
    return {
      onHistory: false,
      why: `the replica is on timeline ${replica.timeline}, which is not on the primary's path (timelines ${path}): ${replica.timeline > primary.timeline ? 'it is newer than the primary (promoted, or restored elsewhere)' : 'another branch of the history'}`,
    };
  }
  const leaving = primary.history[index]!;
  if (compareLsn(replica.lsn, leaving.switchpoint) <= 0) return { onHistory: true };
  const forkedTo = primary.history[index + 1]?.timeline ?? primary.timeline;
  return {
    onHistory: false,
    forkLsn: leaving.switchpoint,
    forkedTo,
    forkReason: leaving.reason || undefined,
    why: `the primary left timeline ${replica.timeline} at ${leaving.switchpoint} for timeline ${forkedTo}, and the replica has replayed timeline ${replica.timeline} up to ${replica.lsn}, past that fork: it holds WAL the primary no longer has`,
  };
}

/** What rebuilding a replica from its primary takes, in words for a refusal message. */
export function rebuildAdvice(replica: string, primary: string): string {
  return `Rebuild ${replica} from ${primary}: stop it, keep its configuration (postgresql.conf, postgresql.auto.conf, the include files, pg_hba.conf, standby.signal), empty its data directory, run pg_basebackup -D <its data directory> -X stream -c fast from ${primary}, put the configuration back and start it again; it then follows ${primary}'s current timeline`;
}
