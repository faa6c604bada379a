// A transaction that took an ACCESS EXCLUSIVE lock (TRUNCATE, DROP TABLE, ALTER TABLE…) logs a
// Standby LOCK record, and a standby's startup process holds that lock until it replays the
// commit. Stopped just before the commit, the replica would be paused holding the lock forever:
// every read of the table blocks. Stopping before the transaction's FIRST record avoids it, and
// is possible whenever that record is not before the replica's minimum recovery point (a restart
// re-replays from the last restartpoint, so records replayed but not flushed can be undone).
import { scanArchive, type WalDumpOptions } from './walInspect';

export interface ExclusiveLockStart {
  /** LSN of the transaction's first WAL record: stop before it (recovery_target_lsn, not inclusive). */
  firstLsn: string;
  /** "db/relation-oid" of each relation it locked. */
  lockedRelations: string[];
}

const LOCK_DESC = /^LOCK xid (\d+) db (\d+) rel (\d+)/;

export async function findExclusiveLockStart(
  archiveDir: string,
  xid: number,
  opts: WalDumpOptions & { afterLsn?: string } = {},
): Promise<ExclusiveLockStart | undefined> {
  let firstLsn: string | undefined;
  const locked: string[] = [];
  await scanArchive(
    archiveDir,
    { rmgrs: [], xid, afterLsn: opts.afterLsn },
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
