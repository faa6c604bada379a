// Setting, clearing and checking a recovery target on a paused delayed replica (docs/runbooks/delayed-replica-pitr.md
// steps 2–4 and 7). Settings go through ALTER SYSTEM, which works on a standby and writes
// postgresql.auto.conf: that file wins over postgresql.conf and include files, so leftovers there
// are always reset. Targets need a restart to take effect; the caller restarts.
import type { Client } from 'pg';
import { compareLsn } from '../../../common/lsn';
import {
  describeRecoveryTarget,
  isoTimeMicros,
  recoveryTargetKind,
  recoveryTargetProblem,
  recoveryTargetSetting,
  recoveryTargetTimeSetting,
  recoveryTargetValue,
  type RecoveryTarget,
} from '../../../common/recoveryTarget';
import {
  NotAReplicaError,
  readReplayStatus,
  readCommitTimestamp,
  readXactStatus,
  RECOVERY_TARGET_SETTINGS,
  settingAsInput,
  type ReplayStatus,
  type SettingWithSource,
} from './replayControl';
import { withSession, type PgEndpoint } from '../session';
import { isReadAheadRestoreCommand, readAheadRestoreCommand } from '../archive/walReadAhead';
import { withParkedSession } from '../parkedSession';
import {
  archiveEndLsn,
  findCommit,
  findRestorePoint,
  findTimeTargetStop,
  type ArchiveSearchStats,
} from '../archive/walInspect';

export type { RecoveryTarget } from '../../../common/recoveryTarget';

const TARGET_SETTINGS = RECOVERY_TARGET_SETTINGS;
/**
 * The delay as it was before the first applyRecoveryTarget, kept in postgresql.auto.conf next to
 * the target: a retried apply (after the restart made delay=0 the running value) still returns
 * the original, so a delayed replica never silently stops being delayed.
 */
const SAVED_DELAY_SETTING = 'pgops.saved_recovery_min_apply_delay';
/** The replica's own recovery_target_timeline in postgresql.auto.conf while a PITR's stands there. */
const SAVED_TIMELINE_SETTING = 'pgops.saved_recovery_target_timeline';
/** The replica's own restore_command while the read-ahead's stands in front of it (walReadAhead.ts). */
const SAVED_RESTORE_COMMAND_SETTING = 'pgops.saved_restore_command';

async function alterSystem(client: Client, name: string, value: string | undefined): Promise<void> {
  // ALTER SYSTEM only knows parameters this session knows: a custom one must exist as a
  // placeholder first, which set_config creates for the session.
  if (name.includes('.')) await client.query("SELECT set_config($1, '', false)", [name]);
  // ALTER SYSTEM takes no bind parameters; names are constants here and values are validated
  // before they get here, and quoted by the driver's escapeLiteral all the same.
  await client.query(
    value === undefined ? `ALTER SYSTEM RESET ${name}` : `ALTER SYSTEM SET ${name} = ${client.escapeLiteral(value)}`,
  );
}

/**
 * postgresql.auto.conf as it is now, in one read (pg_file_settings re-reads the files):
 * - `written`: the settings pg_file_settings reports without an error;
 * - `inFile`: every setting in the file, including those marked with an error (a value that
 *   waits for a restart): what ALTER SYSTEM would have to RESET or overwrite. Each ALTER SYSTEM
 *   rewrites and fsyncs the file (tens of milliseconds on a slow disk), so the writes below skip
 *   what the file already says.
 */
async function autoConf(client: Client): Promise<{ written: Map<string, string>; inFile: Map<string, string> }> {
  const rows = (
    await client.query<{ name: string; setting: string | null; error: string | null }>(
      "SELECT name, setting, error FROM pg_file_settings WHERE sourcefile LIKE '%/postgresql.auto.conf' ORDER BY seqno",
    )
  ).rows;
  return {
    written: new Map(rows.filter((r) => r.error === null).map((r) => [r.name, r.setting ?? ''])),
    inFile: new Map(rows.map((r) => [r.name, r.setting ?? ''])),
  };
}

/**
 * The recovery settings whose value in the configuration files differs from the one in force, so
 * that only a restart applies them: written with a new value (pg_file_settings reports it "could
 * not be applied"), or removed from the files while the value in force came from them. Read
 * without pg_reload_conf(): a reload wakes a startup process that waits out the apply delay, it
 * then pauses for real, and a paused startup process notices a shutdown request only after up to
 * a second (its pause loop sleeps a second at a time), which every restart would then pay.
 */
export async function settingsAwaitingRestart(client: Client): Promise<string[]> {
  const rows = (
    await client.query<{ name: string }>(
      `SELECT DISTINCT name FROM pg_file_settings
        WHERE name LIKE 'recovery%' AND error = 'setting could not be applied'
       UNION
       SELECT s.name FROM pg_settings s
        WHERE s.name LIKE 'recovery%' AND s.context = 'postmaster' AND s.source = 'configuration file'
          AND NOT EXISTS (SELECT 1 FROM pg_file_settings f WHERE f.name = s.name)
       ORDER BY 1`,
    )
  ).rows;
  return rows.map((r) => r.name);
}

async function requireReplica(client: Client, endpoint: PgEndpoint): Promise<void> {
  const recovering = (await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]?.r;
  if (!recovering) throw new NotAReplicaError(endpoint);
}

/**
 * Writes one recovery target with recovery_target_action = 'pause' and recovery_min_apply_delay
 * = 0, resetting every other recovery_target_*. Returns the delay setting from before the first
 * call (value, source, file) for clearRecoveryTarget. Refuses unless replay is paused: a reload
 * of delay=0 while replay runs would apply the held-back bad commit at once.
 */
export async function applyRecoveryTarget(
  endpoint: PgEndpoint,
  target: RecoveryTarget,
  inclusive: boolean,
  /** Puts the read-ahead's restore_command in front of the replica's own (walReadAhead.ts). */
  readAhead?: { stageDir: string },
  /** A branch the replica does not follow (replicaTargetTimeline.ts), from the archive, never input. */
  timeline?: number,
): Promise<SettingWithSource> {
  if (timeline !== undefined && !(Number.isInteger(timeline) && timeline >= 1))
    throw new Error(`refusing to set recovery_target_timeline to ${timeline}: not a timeline number`);
  const problem = recoveryTargetProblem(target);
  if (problem) throw new Error(`refusing to set a recovery target on ${endpoint.host}:${endpoint.port}: ${problem}`);
  const wanted = new Map<string, string>([
    [
      recoveryTargetSetting(target),
      'time' in target ? recoveryTargetTimeSetting(target.time) : recoveryTargetValue(target),
    ],
    ['recovery_target_inclusive', inclusive ? 'on' : 'off'],
    ['recovery_target_action', 'pause'],
    ['recovery_min_apply_delay', '0'],
  ]);
  if (timeline !== undefined) wanted.set('recovery_target_timeline', String(timeline));
  return withSession(endpoint, async (client) => {
    await requireReplica(client, endpoint);
    const status = await readReplayStatus(client);
    const { written, inFile } = await autoConf(client);
    const saved = written.get(SAVED_DELAY_SETTING);
    const previous: SettingWithSource = saved
      ? (JSON.parse(saved) as SettingWithSource)
      : status.settings.recovery_min_apply_delay;
    const alreadyWritten =
      saved !== undefined &&
      [...wanted].every(([name, value]) => written.get(name) === value) &&
      TARGET_SETTINGS.every((name) => name === recoveryTargetSetting(target) || !written.has(name));
    if (alreadyWritten) {
      if (readAhead) await applyReadAheadRestoreCommand(client, readAhead.stageDir, written);
      return previous;
    }
    if (status.pauseState === 'not paused' && status.settings.recovery_min_apply_delay.value !== '0') {
      throw new Error(
        `replay on ${endpoint.host}:${endpoint.port} is not paused: pause it first (pauseReplay). Writing recovery_min_apply_delay = 0 while replay runs would apply the held-back commits, including the bad one, at the next reload`,
      );
    }
    if (saved === undefined) await alterSystem(client, SAVED_DELAY_SETTING, JSON.stringify(previous));
    // The replica's own recovery_target_timeline line ('' for none), put back by clearRecoveryTarget.
    if (timeline !== undefined && !written.has(SAVED_TIMELINE_SETTING))
      await alterSystem(client, SAVED_TIMELINE_SETTING, JSON.stringify(inFile.get('recovery_target_timeline') ?? ''));
    for (const name of TARGET_SETTINGS)
      if (name !== recoveryTargetSetting(target) && inFile.has(name)) await alterSystem(client, name, undefined);
    if (readAhead) await applyReadAheadRestoreCommand(client, readAhead.stageDir, written);
    // The delay goes last: until then a reload changes nothing, and replay is paused anyway.
    for (const [name, value] of wanted) if (inFile.get(name) !== value) await alterSystem(client, name, value);
    return previous;
  });
}

interface SavedRestoreCommand {
  value: string;
  sourcefile: string | null;
}

/**
 * Writes the read-ahead's restore_command (the replica's own behind it), saving the replica's
 * own first. Leaves everything as it is when the replica restores nothing from an archive or
 * the staging path cannot go into a shell string.
 */
async function applyReadAheadRestoreCommand(
  client: Client,
  stageDir: string,
  written: Map<string, string>,
): Promise<void> {
  const savedText = written.get(SAVED_RESTORE_COMMAND_SETTING);
  let saved: SavedRestoreCommand | undefined;
  if (savedText !== undefined) saved = JSON.parse(savedText) as SavedRestoreCommand;
  else {
    const row = (
      await client.query<{ setting: string; sourcefile: string | null }>(
        "SELECT setting, sourcefile FROM pg_settings WHERE name = 'restore_command'",
      )
    ).rows[0];
    // Without the file it came from (a role that may not see it), putting it back could not
    // tell SET from RESET: no read-ahead then.
    if (row && row.sourcefile !== null && !isReadAheadRestoreCommand(row.setting))
      saved = { value: row.setting, sourcefile: row.sourcefile };
  }
  if (!saved) return;
  const command = readAheadRestoreCommand(stageDir, saved.value);
  if (!command) return;
  if (savedText === undefined) await alterSystem(client, SAVED_RESTORE_COMMAND_SETTING, JSON.stringify(saved));
  if (written.get('restore_command') !== command) await alterSystem(client, 'restore_command', command);
}

/**
 * Puts the replica's own restore_command back after a read-ahead (SET when it came from
 * postgresql.auto.conf, otherwise RESET) and, with `reload`, applies it at once (restore_command
 * takes a reload). Idempotent; does nothing when no read-ahead command was written.
 */
export async function restoreOwnRestoreCommand(
  client: Client,
  reload: boolean,
  /** postgresql.auto.conf as the caller read it already (autoConf), else read here. */
  written?: Map<string, string>,
): Promise<boolean> {
  const savedText = (written ?? (await autoConf(client)).written).get(SAVED_RESTORE_COMMAND_SETTING);
  if (savedText === undefined) return false;
  const saved = JSON.parse(savedText) as SavedRestoreCommand;
  if (saved.sourcefile?.endsWith('postgresql.auto.conf')) await alterSystem(client, 'restore_command', saved.value);
  else await alterSystem(client, 'restore_command', undefined);
  await alterSystem(client, SAVED_RESTORE_COMMAND_SETTING, undefined);
  if (reload) await client.query('SELECT pg_reload_conf()');
  return true;
}

/**
 * Removes every recovery target setting and restores the delay: SET back when it came from
 * postgresql.auto.conf, otherwise RESET so the configuration file's value applies again.
 * Without `originalDelay` the copy saved by applyRecoveryTarget is used. Idempotent; needs a restart.
 */
export async function clearRecoveryTarget(
  endpoint: PgEndpoint,
  originalDelay?: SettingWithSource,
): Promise<{ recoveryMinApplyDelay: string }> {
  return withSession(endpoint, async (client) => {
    const { written, inFile } = await autoConf(client);
    const saved = written.get(SAVED_DELAY_SETTING);
    const original = originalDelay ?? (saved ? (JSON.parse(saved) as SettingWithSource) : undefined);
    for (const name of [...TARGET_SETTINGS, 'recovery_target_inclusive', 'recovery_target_action'])
      if (inFile.has(name)) await alterSystem(client, name, undefined);
    const savedTimeline = written.get(SAVED_TIMELINE_SETTING);
    if (savedTimeline !== undefined) {
      const own = JSON.parse(savedTimeline) as string;
      await alterSystem(client, 'recovery_target_timeline', own === '' ? undefined : own);
      await alterSystem(client, SAVED_TIMELINE_SETTING, undefined);
    }
    let restored = 'the configuration file value (RESET)';
    if (original?.sourcefile?.endsWith('postgresql.auto.conf')) {
      const value = settingAsInput(original);
      if (!/^\d+(ms|s|min|h|d)?$/.test(value))
        throw new Error(
          `the saved recovery_min_apply_delay ${JSON.stringify(value)} is not a duration; set it by hand`,
        );
      await alterSystem(client, 'recovery_min_apply_delay', value);
      restored = value;
    } else {
      await alterSystem(client, 'recovery_min_apply_delay', undefined);
    }
    await alterSystem(client, SAVED_DELAY_SETTING, undefined);
    await restoreOwnRestoreCommand(client, false, written);
    return { recoveryMinApplyDelay: restored };
  });
}

export type Reachability =
  /** `replayLsn`: where the replica's replay stood when it was judged (null before any replay). */
  | { ok: true; targetLsn?: string; targetTime?: string; note?: string; replayLsn?: string | null }
  | { ok: false; reason: string };

export interface ReachabilityOptions {
  archiveDir?: string;
  primary?: PgEndpoint;
  /** As it will be applied; matters for time targets. Default false (stop just before). */
  inclusive?: boolean;
  /** Filled with how long each read took (ms from the check's start to its end), for figures. */
  readsMs?: Record<string, number>;
  /** Filled with the archive search's work (bisection reads, segments read), for figures. */
  archiveSearch?: ArchiveSearchStats;
}

const refuse = (reason: string): Reachability => ({ ok: false, reason });

type Settled<T> = { value: T } | { error: unknown };
/** Starts a read now and keeps its error for when (and if) its result is used. */
function settle<T>(work: Promise<T>): Promise<Settled<T>> {
  return work.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}
async function outcome<T>(settled: Promise<Settled<T> | undefined>): Promise<T | undefined> {
  const s = await settled;
  if (s === undefined) return undefined;
  if ('error' in s) throw s.error;
  return s.value;
}

/**
 * Refuses, before anything is touched, a target this replica cannot stop at: already replayed
 * past (PostgreSQL would fail with "requested recovery stop point is before consistent recovery
 * point"), unknown or aborted transactions, or beyond the archive (a standby would replay all
 * of it and wait forever). For xid and time targets, finds the stop record's LSN in the archive.
 */
export async function checkTargetReachable(
  endpoint: PgEndpoint,
  target: RecoveryTarget,
  opts: ReachabilityOptions = {},
): Promise<Reachability> {
  const problem = recoveryTargetProblem(target);
  if (problem) return refuse(problem);
  const began = Date.now();
  const reads = opts.readsMs;
  const timed = <T>(name: string, work: Promise<T>): Promise<T> =>
    reads ? work.finally(() => void (reads[name] = Date.now() - began)) : work;
  const status = await timed('replicaStatus', withParkedSession(endpoint, readReplayStatus));
  const verdict = await judgeTarget(endpoint, target, opts, status, timed);
  return verdict.ok ? { ...verdict, replayLsn: status.replayLsn } : verdict;
}

/** checkTargetReachable's judgement, given the replica's status as it read it. */
async function judgeTarget(
  endpoint: PgEndpoint,
  target: RecoveryTarget,
  opts: ReachabilityOptions,
  status: ReplayStatus,
  timed: <T>(name: string, work: Promise<T>) => Promise<T>,
): Promise<Reachability> {
  const where = `the replica at ${endpoint.host}:${endpoint.port}`;
  if (!status.inRecovery)
    return refuse(
      `${endpoint.host}:${endpoint.port} is not a replica (pg_is_in_recovery() is false): a recovery target only applies to a standby; is this the primary?`,
    );
  const replayLsn = status.replayLsn ?? '0/0';
  // `lsn` is where the stop happens. For xid/time/name targets it is the START of the record to
  // stop before: a replica held back by the delay sits exactly there (its replay LSN, the end of
  // the last record replayed, equals that start), which is still reachable. Only a raw LSN target
  // equal to the replay position is already consumed.
  const replayedPast = (lsn: string, stopsBeforeRecord = true): string | undefined => {
    const cmp = compareLsn(lsn, replayLsn);
    if (stopsBeforeRecord ? cmp < 0 : cmp <= 0)
      return `${describeRecoveryTarget(target)} is at or before what ${where} has already replayed (${replayLsn}): replay cannot go backwards; use an older base backup or another replica`;
    if (compareLsn(lsn, status.minRecoveryEndLsn) < 0)
      return `${describeRecoveryTarget(target)} is before the replica's minimum recovery ending location ${status.minRecoveryEndLsn}: PostgreSQL would refuse with "requested recovery stop point is before consistent recovery point"`;
    return undefined;
  };
  const archiveEnd = opts.archiveDir ? archiveEndLsn(opts.archiveDir) : undefined;
  if (opts.archiveDir && archiveEnd === undefined)
    return refuse(
      `the WAL archive ${opts.archiveDir} holds no complete segment: nothing could be replayed to any target`,
    );

  switch (recoveryTargetKind(target)) {
    case 'lsn': {
      const lsn = recoveryTargetValue(target);
      const past = replayedPast(lsn, false);
      if (past) return refuse(past);
      if (archiveEnd && compareLsn(lsn, archiveEnd) > 0)
        return refuse(
          `${describeRecoveryTarget(target)} is beyond the end of the WAL archive (${archiveEnd}): the standby would replay everything and wait for WAL that is not there`,
        );
      if (opts.primary) {
        const current = await withParkedSession(
          opts.primary,
          async (c) => (await c.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]?.l ?? '0/0',
        );
        if (compareLsn(lsn, current) > 0)
          return refuse(
            `${describeRecoveryTarget(target)} is beyond the primary's current WAL position ${current}: it has not been written yet`,
          );
      }
      return { ok: true, targetLsn: lsn };
    }
    case 'time': {
      const time = recoveryTargetValue(target);
      const at = isoTimeMicros(time) ?? 0n;
      const replayedAt = status.replayTimestamp ? isoTimeMicros(status.replayTimestamp) : undefined;
      if (replayedAt !== undefined && (opts.inclusive ? at < replayedAt : at <= replayedAt)) {
        return refuse(
          `${describeRecoveryTarget(target, opts.inclusive ?? false)} is not after the last transaction ${where} has already replayed (committed ${status.replayTimestamp}): replay cannot go backwards`,
        );
      }
      const clockOwner = opts.primary ? 'the primary' : 'the replica';
      // The archive scan runs while the primary's clock is read; it is used only if the time is not in the future.
      const stopSearch = opts.archiveDir
        ? settle(
            timed(
              'archiveTimeStop',
              findTimeTargetStop(opts.archiveDir, time, opts.inclusive ?? false, {
                afterLsn: replayLsn,
                stats: opts.archiveSearch,
              }),
            ),
          )
        : Promise.resolve(undefined);
      const now = opts.primary
        ? await withParkedSession(
            opts.primary,
            async (c) =>
              (
                await c.query<{ n: string }>(
                  `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS n`,
                )
              ).rows[0]?.n ?? status.serverNow,
          )
        : status.serverNow;
      if (at > (isoTimeMicros(now) ?? 0n))
        return refuse(
          `${describeRecoveryTarget(target)} is in the future (${clockOwner}'s clock reads ${now}): no archived commit can reach it, and the standby would replay everything and wait`,
        );
      if (!opts.archiveDir) return { ok: true, targetTime: time };
      const stop = await outcome(stopSearch);
      if (!stop)
        return {
          ok: true,
          targetTime: time,
          note: `no archived commit after ${time} yet: the replica will stop at the first one that arrives`,
        };
      const past = replayedPast(stop.lsn);
      return past ? refuse(past) : { ok: true, targetLsn: stop.lsn, targetTime: stop.time };
    }
    case 'xid': {
      const xid = recoveryTargetValue(target);
      // The three reads run at once (the replica's and the primary's view on their parked
      // sessions, the archive scan); they are judged in this order, so a refusal from the first
      // stands even when a later read failed.
      // The primary's commit time for the transaction (track_commit_timestamp), if it has one,
      // narrows the archive search once its newest segment is read.
      const primaryRead = opts.primary
        ? settle(
            timed(
              'primaryXact',
              withParkedSession(opts.primary, async (c) => {
                const status = await readXactStatus(c, xid);
                return { status, commitTime: status === 'committed' ? await readCommitTimestamp(c, xid) : undefined };
              }),
            ),
          )
        : Promise.resolve(undefined);
      const commitTimeHint = primaryRead.then((read) => (read && 'value' in read ? read.value.commitTime : undefined));
      const commitSearch = opts.archiveDir
        ? settle(
            timed(
              'archiveCommit',
              findCommit(opts.archiveDir, xid, { afterLsn: replayLsn, commitTimeHint, stats: opts.archiveSearch }),
            ),
          )
        : Promise.resolve(undefined);
      const onReplica = await timed(
        'replicaXact',
        withParkedSession(endpoint, (c) => readXactStatus(c, xid)),
      );
      if (onReplica === 'committed' || onReplica === 'too old')
        return refuse(
          `transaction ${xid} is already ${onReplica === 'committed' ? 'committed' : 'replayed and forgotten'} on ${where}: its effects are applied; stopping before it is no longer possible`,
        );
      if (onReplica === 'aborted')
        return refuse(
          `transaction ${xid} was rolled back (aborted): it changed nothing, so there is nothing to stop before; check the xid`,
        );
      const onPrimary = (await outcome(primaryRead))?.status;
      if (onPrimary === 'future')
        return refuse(`transaction ${xid} does not exist: the primary has not assigned that xid yet`);
      if (onPrimary === 'aborted')
        return refuse(`transaction ${xid} was rolled back on the primary: it changed nothing; check the xid`);
      if (onPrimary === 'in progress')
        return refuse(
          `transaction ${xid} is still running on the primary: its commit is not in the WAL, so the replica would replay everything and wait`,
        );
      if (onReplica === 'future' && !onPrimary && !opts.archiveDir)
        return refuse(
          `transaction ${xid} is unknown to ${where} and neither the primary nor the archive was given to show it exists`,
        );
      if (!opts.archiveDir) return { ok: true };
      const commit = await outcome(commitSearch);
      if (!commit) {
        return refuse(
          onPrimary === 'committed'
            ? `transaction ${xid} committed on the primary but no commit record for it is in the archive (which ends at ${archiveEnd}): wait for archiving (archive_timeout) and check again; a subtransaction's xid never appears on a commit record: give the top-level xid`
            : `no commit record for transaction ${xid} in the archive after ${replayLsn} (the replica says '${onReplica}'): it does not exist, was rolled back, is not archived yet, or is a subtransaction (give the top-level xid)`,
        );
      }
      const past = replayedPast(commit.commitLsn);
      return past ? refuse(past) : { ok: true, targetLsn: commit.commitLsn, targetTime: commit.commitTime };
    }
    case 'name': {
      const name = recoveryTargetValue(target);
      if (!opts.archiveDir) return { ok: true, note: 'restore point not checked: no archive directory given' };
      const lsn = await findRestorePoint(opts.archiveDir, name, { afterLsn: replayLsn });
      if (!lsn)
        return refuse(
          `no restore point named '${name}' after ${replayLsn} in the archive: it was never created, is already replayed, or is not archived yet`,
        );
      const past = replayedPast(lsn);
      return past ? refuse(past) : { ok: true, targetLsn: lsn };
    }
  }
}
