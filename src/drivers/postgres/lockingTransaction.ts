// A transaction that took an ACCESS EXCLUSIVE lock (TRUNCATE, DROP TABLE, ALTER TABLE…) logs a
// Standby LOCK record, and a standby's startup process holds that lock until it replays the
// commit. Stopped just before the commit, the replica would be paused holding the lock forever:
// every read of the table blocks. Stopping before the transaction's FIRST record avoids it, and
// is possible whenever that record is not before the replica's minimum recovery point (a restart
// re-replays from the last restartpoint, so records replayed but not flushed can be undone).
import { parseLsn } from '../../common/lsn';
import { scanArchive, scanArchiveNewestFirst, type WalDumpOptions } from './archive/walInspect';
import { commitHeldExclusiveLock } from './archive/commitRecord';
import { parseRunningXacts, xidFollowsOrEquals } from './archive/xidEndBisect';

export interface ExclusiveLockStart {
  /** LSN of the transaction's first WAL record: stop before it (recovery_target_lsn, not inclusive). */
  firstLsn: string;
  /** "db/relation-oid" of each relation it locked. */
  lockedRelations: string[];
}

const LOCK_DESC = /^LOCK xid (\d+) db (\d+) rel (\d+)/;

/**
 * An LSN before every record of transaction `xid`, found near `endLsn` (its commit) rather than at
 * the start of the archive. The primary logs a Standby RUNNING_XACTS record at every checkpoint
 * and every 15 s of activity; one whose nextXid is not past `xid` was written before `xid` was
 * assigned. A transaction assigned between that snapshot and the record's insertion may log
 * first, so the bound is the RUNNING_XACTS record before it. Undefined: none in the archive.
 */
export async function xidStartBound(
  archiveDir: string,
  xid: number,
  endLsn: string,
  opts: WalDumpOptions = {},
): Promise<string | undefined> {
  const end = parseLsn(endLsn);
  let previous: { lsn: bigint; text: string } | undefined;
  let bound: string | undefined;
  // Back from the commit's segment, not from the archive's newest: the WAL archived after the
  // commit (a busy primary's hours of it, behind a delayed replica) cannot hold the bound.
  await scanArchiveNewestFirst(
    archiveDir,
    { rmgrs: ['Standby'], throughLsn: endLsn },
    (record) => {
      const lsn = parseLsn(record.lsn);
      if (previous && lsn < previous.lsn) {
        // An older window begins: the newer one's bound, if it had one, is the closest.
        if (bound) return true;
        previous = undefined;
      }
      const snapshot = parseRunningXacts(record.desc);
      if (!snapshot || lsn >= end) return false;
      // In WAL order within a window: the last qualifying record's predecessor is the closest bound.
      if (previous && xidFollowsOrEquals(xid, snapshot.nextXid)) bound = previous.text;
      previous = { lsn, text: record.lsn };
      return false;
    },
    opts,
  );
  return bound;
}

/**
 * The first record of transaction `xid` and the relations it locked ACCESS EXCLUSIVE, if any.
 * `endLsn`, where its commit record starts: a commit that says it held no such lock ends the search
 * at once; otherwise the search starts near it (xidStartBound), not at the archive's start.
 */
export async function findExclusiveLockStart(
  archiveDir: string,
  xid: number,
  opts: WalDumpOptions & { endLsn?: string } = {},
): Promise<ExclusiveLockStart | undefined> {
  // Its commit record says whether it locked anything ACCESS EXCLUSIVE: if not, nothing to search.
  if (opts.endLsn !== undefined && commitHeldExclusiveLock(archiveDir, opts.endLsn, xid) === false) return undefined;
  let firstLsn: string | undefined;
  const locked: string[] = [];
  const afterLsn = opts.endLsn === undefined ? undefined : await xidStartBound(archiveDir, xid, opts.endLsn, opts);
  await scanArchive(
    archiveDir,
    { rmgrs: [], xid, afterLsn },
    (record) => {
      firstLsn ??= record.lsn;
      const lock = record.rmgr === 'Standby' ? LOCK_DESC.exec(record.desc) : null;
      if (lock) locked.push(`${lock[2]}/${lock[3]}`);
      return record.rmgr === 'Transaction'; // its end: nothing of it after this
    },
    opts,
  );
  return firstLsn && locked.length ? { firstLsn, lockedRelations: locked } : undefined;
}
