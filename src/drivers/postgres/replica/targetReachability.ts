// Whether a paused delayed replica can stop at a recovery target (the PITR's check-target step),
// judged before anything is touched: the replica's own position, the primary's and the archive's
// say whether each kind of target (LSN, time, xid, restore point) is still ahead and reachable.
import { compareLsn } from '../../../common/lsn';
import {
  describeRecoveryTarget,
  isoTimeMicros,
  recoveryTargetKind,
  recoveryTargetProblem,
  recoveryTargetValue,
  type RecoveryTarget,
} from '../../../common/recoveryTarget';
import { readReplayStatus, readCommitTimestamp, readXactStatus, type ReplayStatus } from './replayControl';
import type { PgEndpoint } from '../session';
import { withParkedSession } from '../parkedSession';
import { archiveEndLsn, findCommit, findRestorePoint, findTimeTargetStop } from '../archive/walInspect';
import type { ArchiveSearchStats } from '../../../contract/operations/pitrSteps';

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

/** What every kind of target is judged against: the replica's status as the check read it. */
interface Judging {
  endpoint: PgEndpoint;
  target: RecoveryTarget;
  opts: ReachabilityOptions;
  status: ReplayStatus;
  timed: <T>(name: string, work: Promise<T>) => Promise<T>;
  /** The replica, in words. */
  where: string;
  /** Where its replay stands ('0/0' before any replay). */
  replayLsn: string;
  /** The end of the archive's last complete segment, when an archive is given. */
  archiveEnd?: string;
  /** Why a stop at `lsn` is no longer possible, if it is not. */
  replayedPast: (lsn: string, stopsBeforeRecord?: boolean) => string | undefined;
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
  const judging: Judging = { endpoint, target, opts, status, timed, where, replayLsn, archiveEnd, replayedPast };
  switch (recoveryTargetKind(target)) {
    case 'lsn':
      return judgeLsnTarget(judging);
    case 'time':
      return judgeTimeTarget(judging);
    case 'xid':
      return judgeXidTarget(judging);
    case 'name':
      return judgeRestorePoint(judging);
  }
}

/** An LSN: ahead of replay, within the archive, and already written by the primary. */
async function judgeLsnTarget({ target, opts, archiveEnd, replayedPast }: Judging): Promise<Reachability> {
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

/**
 * A time: after the last replayed commit and not in the future (the primary's clock); the stop
 * record is the first archived commit past it.
 */
async function judgeTimeTarget({
  target,
  opts,
  status,
  timed,
  where,
  replayLsn,
  replayedPast,
}: Judging): Promise<Reachability> {
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

/** A transaction: neither applied nor aborted on the replica, committed on the primary, its commit record archived. */
async function judgeXidTarget({
  endpoint,
  target,
  opts,
  timed,
  where,
  replayLsn,
  archiveEnd,
  replayedPast,
}: Judging): Promise<Reachability> {
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

/** A restore point: named in the archive after what the replica has replayed. */
async function judgeRestorePoint({ target, opts, replayLsn, replayedPast }: Judging): Promise<Reachability> {
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
