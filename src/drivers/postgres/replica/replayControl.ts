// Pausing and observing WAL replay on a (delayed) standby: docs/runbooks/delayed-replica-pitr.md steps 1 and 5.
import type { Client } from 'pg';
import { withSession, type PgEndpoint } from '../session';
import { withParkedSession } from '../parkedSession';

export type PauseState = 'not paused' | 'pause requested' | 'paused';

export class NotAReplicaError extends Error {
  constructor(endpoint: PgEndpoint, detail = 'pg_is_in_recovery() is false') {
    super(
      `PostgreSQL at ${endpoint.host}:${endpoint.port} is not a replica (${detail}): replay can only be paused or targeted on a standby; check that the catalog names the delayed replica, not the primary`,
    );
    this.name = 'NotAReplicaError';
  }
}

export interface SettingWithSource {
  /** pg_settings.setting, in the setting's base unit (recovery_min_apply_delay: milliseconds). */
  value: string;
  unit: string | null;
  /** pg_settings.source: 'default', 'configuration file', … */
  source: string;
  /** The file it came from (null for defaults, or when the role may not see file names). */
  sourcefile: string | null;
}

export const RECOVERY_SETTING_NAMES = [
  'recovery_min_apply_delay',
  'recovery_target',
  'recovery_target_time',
  'recovery_target_xid',
  'recovery_target_lsn',
  'recovery_target_name',
  'recovery_target_inclusive',
  'recovery_target_action',
] as const;
export type RecoverySettingName = (typeof RECOVERY_SETTING_NAMES)[number];

export interface ReplayStatus {
  inRecovery: boolean;
  pauseState: PauseState;
  /** pg_last_wal_replay_lsn(): the end of the last record replayed (null on a server never in recovery). */
  replayLsn: string | null;
  /** pg_last_wal_receive_lsn(): null on an archive-only standby. */
  receiveLsn: string | null;
  /** Commit time (primary's clock) of the last transaction replayed, ISO with microseconds. */
  replayTimestamp: string | null;
  serverNow: string;
  /** pg_control_recovery().min_recovery_end_lsn: a target before it cannot be reached by a restart. */
  minRecoveryEndLsn: string;
  /** Timeline of the latest checkpoint (restartpoint on a standby). */
  timeline: number;
  /**
   * What the startup process waits for (pg_stat_activity.wait_event): see startupWaitMeaning. Null
   * when it is busy, or when the role may not see it (neither superuser nor pg_read_all_stats).
   */
  startupWait: string | null;
  settings: Record<RecoverySettingName, SettingWithSource>;
}

/**
 * What a startup process's wait event says about replay (PostgreSQL 15 names):
 * - `wal`: every source of WAL (pg_wal, the archive, the stream) has been tried and none has the
 *   next record: replay has caught up with everything there is;
 * - `delay`: a commit is held back by recovery_min_apply_delay;
 * - `paused`: replay is paused; undefined: busy, or a wait that says nothing of either.
 */
export function startupWaitMeaning(waitEvent: string | null): 'wal' | 'delay' | 'paused' | undefined {
  if (waitEvent === 'RecoveryRetrieveRetryInterval' || waitEvent === 'RecoveryWalStream') return 'wal';
  if (waitEvent === 'RecoveryApplyDelay') return 'delay';
  if (waitEvent === 'RecoveryPause') return 'paused';
  return undefined;
}

/** SQL rendering a timestamptz as ISO 8601 in UTC with microseconds (Date would drop them). */
export function isoSql(expression: string): string {
  return `to_char((${expression}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

export function settingAsInput(setting: SettingWithSource): string {
  return `${setting.value}${setting.unit && /^\d+$/.test(setting.value) ? setting.unit : ''}`;
}

export async function readRecoverySettings(client: Client): Promise<Record<RecoverySettingName, SettingWithSource>> {
  const rows = (
    await client.query<{
      name: RecoverySettingName;
      setting: string;
      unit: string | null;
      source: string;
      sourcefile: string | null;
    }>('SELECT name, setting, unit, source, sourcefile FROM pg_settings WHERE name = ANY($1::text[])', [
      RECOVERY_SETTING_NAMES,
    ])
  ).rows;
  const settings = {} as Record<RecoverySettingName, SettingWithSource>;
  for (const name of RECOVERY_SETTING_NAMES) {
    const row = rows.find((r) => r.name === name);
    if (!row)
      throw new Error(
        `pg_settings has no ${name}: this server is older than PostgreSQL 12, which this project does not support`,
      );
    settings[name] = { value: row.setting, unit: row.unit, source: row.source, sourcefile: row.sourcefile };
  }
  return settings;
}

/** The columns every replay read starts with: where replay stands. */
const POSITION_COLUMNS = `pg_is_in_recovery() AS in_recovery,
  CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() ELSE 'not paused' END AS pause_state,
  pg_last_wal_replay_lsn()::text AS replay_lsn,
  ${isoSql('pg_last_xact_replay_timestamp()')} AS replay_ts`;
interface PositionRow {
  in_recovery: boolean;
  pause_state: PauseState;
  replay_lsn: string | null;
  replay_ts: string | null;
}

/** Where replay stands, and nothing more: what a watch asks many times a second. */
export type ReplayPosition = Pick<ReplayStatus, 'inRecovery' | 'pauseState' | 'replayLsn' | 'replayTimestamp'>;

/**
 * One light statement (no pg_settings scan, no control file read), so that polling it 20 times a
 * second takes as little CPU as possible from the startup process it watches.
 */
export async function readReplayPosition(client: Client): Promise<ReplayPosition> {
  const row = (await client.query<PositionRow>(`SELECT ${POSITION_COLUMNS}`)).rows[0];
  if (!row) throw new Error('the replay position query returned no row');
  return {
    inRecovery: row.in_recovery,
    pauseState: row.pause_state,
    replayLsn: row.replay_lsn,
    replayTimestamp: row.replay_ts,
  };
}

export async function readReplayStatus(client: Client): Promise<ReplayStatus> {
  const row = (
    await client.query<
      PositionRow & {
        receive_lsn: string | null;
        now: string;
        min_recovery_end_lsn: string;
        timeline: number;
        startup_wait: string | null;
      }
    >(`SELECT ${POSITION_COLUMNS},
            pg_last_wal_receive_lsn()::text AS receive_lsn,
            (SELECT wait_event FROM pg_stat_activity WHERE backend_type = 'startup' LIMIT 1) AS startup_wait,
            ${isoSql('clock_timestamp()')} AS now,
            (SELECT min_recovery_end_lsn::text FROM pg_control_recovery()) AS min_recovery_end_lsn,
            (SELECT timeline_id FROM pg_control_checkpoint()) AS timeline`)
  ).rows[0];
  if (!row) throw new Error('the replay status query returned no row');
  return {
    inRecovery: row.in_recovery,
    pauseState: row.pause_state,
    replayLsn: row.replay_lsn,
    receiveLsn: row.receive_lsn,
    replayTimestamp: row.replay_ts,
    serverNow: row.now,
    minRecoveryEndLsn: row.min_recovery_end_lsn,
    timeline: Number(row.timeline),
    startupWait: row.startup_wait,
    settings: await readRecoverySettings(client),
  };
}

/** On the endpoint's parked session (see parkedSession.ts): a read, safe to repeat. */
export function replayStatus(endpoint: PgEndpoint): Promise<ReplayStatus> {
  return withParkedSession(endpoint, readReplayStatus);
}

export interface PauseResult {
  /** 'pause requested' while a held-back commit waits out the delay: already safe, nothing more is applied. */
  pauseState: 'paused' | 'pause requested';
  replayLsn: string;
  replayTimestamp: string | null;
  /** This worker's clock right after pg_wal_replay_pause() returned. */
  pausedAt: Date;
}

/** The settings that name a recovery target (at most one may be set). */
export const RECOVERY_TARGET_SETTINGS = [
  'recovery_target',
  'recovery_target_xid',
  'recovery_target_time',
  'recovery_target_lsn',
  'recovery_target_name',
] as const;

/** A recovery target this server started with (postmaster settings: in force until the next restart). */
const TARGET_IN_FORCE_SQL = RECOVERY_TARGET_SETTINGS.map((name) => `current_setting('${name}')`).join(' || ');

/**
 * Pauses WAL replay at once (idempotent). Never reads pg_is_wal_replay_paused(): it says false
 * while the pause is merely requested, which would tempt a caller to wait out the whole delay.
 * `unlessTargetInForce`: a server started with a recovery target is replaying to it (or paused
 * there) on someone's purpose; it is left alone and `{ targetInForce }` returned instead, for the
 * caller to find out whose purpose before pausing it.
 */
export async function pauseReplay(endpoint: PgEndpoint): Promise<PauseResult>;
export async function pauseReplay(
  endpoint: PgEndpoint,
  opts: { unlessTargetInForce: true },
): Promise<PauseResult | { targetInForce: string }>;
export async function pauseReplay(
  endpoint: PgEndpoint,
  opts: { unlessTargetInForce?: boolean } = {},
): Promise<PauseResult | { targetInForce: string }> {
  // On the parked session: no login between the incident and the pause. Every statement here is
  // safe to run twice (a parked session that hangs is replaced and the whole runs again).
  return withParkedSession(endpoint, async (client) => {
    const state = (
      await client.query<{ r: boolean; t: string }>(`SELECT pg_is_in_recovery() AS r, ${TARGET_IN_FORCE_SQL} AS t`)
    ).rows[0];
    if (!state?.r) throw new NotAReplicaError(endpoint);
    if (opts.unlessTargetInForce && state.t !== '') return { targetInForce: state.t };
    try {
      await client.query('SELECT pg_wal_replay_pause()');
    } catch (err) {
      // 55000: recovery ended (a promotion) between the two statements.
      if ((err as { code?: string }).code === '55000') throw new NotAReplicaError(endpoint, (err as Error).message);
      throw err;
    }
    const pausedAt = new Date();
    const row = (
      await client.query<{ state: PauseState; lsn: string; ts: string | null }>(
        `SELECT pg_get_wal_replay_pause_state() AS state, pg_last_wal_replay_lsn()::text AS lsn, ${isoSql('pg_last_xact_replay_timestamp()')} AS ts`,
      )
    ).rows[0];
    if (!row || row.state === 'not paused')
      throw new Error(
        `replay on ${endpoint.host}:${endpoint.port} still reads 'not paused' right after pg_wal_replay_pause(): is a promotion under way?`,
      );
    return { pauseState: row.state, replayLsn: row.lsn, replayTimestamp: row.ts, pausedAt };
  });
}

export type XactStatus = 'committed' | 'aborted' | 'in progress' | 'future' | 'too old';

/**
 * pg_xact_status for one transaction, seen from this server. 'future' when the server has not
 * seen the xid yet (on a standby: not replayed that far); 'too old' when its commit log is gone.
 * A 32-bit xid (as pg_waldump prints it) is placed in the current epoch.
 */
export async function readXactStatus(client: Client, xid: string): Promise<XactStatus> {
  if (!/^[0-9]{1,20}$/.test(xid))
    throw new Error(`transaction ID ${JSON.stringify(xid.slice(0, 30))} must be decimal digits`);
  const next = BigInt(
    (await client.query<{ next: string }>('SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS next')).rows[0]
      ?.next ?? '0',
  );
  let full = BigInt(xid);
  // A recent 32-bit xid belongs to the current epoch; across an epoch boundary this guess can be
  // one epoch off, which only happens once every four billion transactions.
  if (full < 1n << 32n && next >= 1n << 32n) full = (next & ~0xffffffffn) | full;
  try {
    const status = (
      await client.query<{ s: string | null }>('SELECT pg_xact_status($1::text::xid8) AS s', [full.toString()])
    ).rows[0]?.s;
    if (status === 'committed' || status === 'aborted' || status === 'in progress') return status;
    return 'too old';
  } catch (err) {
    if ((err as { code?: string }).code === '22023' && /in the future/.test((err as Error).message)) return 'future';
    throw err;
  }
}

/**
 * When transaction `xid` committed, by the server's own record (ISO, UTC, microseconds), or
 * undefined: track_commit_timestamp is off, the xid is older than the record, or not committed.
 */
export async function readCommitTimestamp(client: Client, xid: string): Promise<string | undefined> {
  if (!/^[0-9]{1,20}$/.test(xid))
    throw new Error(`transaction ID ${JSON.stringify(xid.slice(0, 30))} must be decimal digits`);
  const xid32 = (BigInt(xid) & 0xffffffffn).toString();
  try {
    const row = (
      await client.query<{ t: string | null }>(
        `SELECT CASE WHEN current_setting('track_commit_timestamp')::bool
                THEN to_char(pg_xact_commit_timestamp($1::text::xid) AT TIME ZONE 'UTC',
                             'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
                END AS t`,
        [xid32],
      )
    ).rows[0];
    return row?.t ?? undefined;
  } catch {
    return undefined; // a hint only: the caller searches without it
  }
}

export function xactStatus(endpoint: PgEndpoint, xid: string): Promise<XactStatus> {
  return withSession(endpoint, (client) => readXactStatus(client, xid));
}

/** pg_wal_lsn_diff(a, b): bytes from b to a (negative when a is before b). */
export async function lsnDiff(endpoint: PgEndpoint, a: string, b: string): Promise<bigint> {
  return withSession(endpoint, async (client) => {
    const row = (await client.query<{ d: string }>('SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::text AS d', [a, b]))
      .rows[0];
    return BigInt(row?.d ?? '0');
  });
}
