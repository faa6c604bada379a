// DROP DATABASE and DROP TABLESPACE in the WAL, and why a delayed replica cannot hold them back.
// recovery_min_apply_delay delays only commit records (recoveryApplyDelay in xlogrecovery.c). A
// DROP DATABASE logs, before its commit: an in-place update of its pg_database row
// (datconnlimit = -2, "invalid", PostgreSQL 15.4+; a Heap INPLACE on global/1262 with no xid),
// then, after a checkpoint, Database/DROP ("DROP dir <tablespace>/<db> …") with the dropping
// transaction's xid, which removes the database's directories when it is replayed. Both are
// replayed at once: on a delayed replica the database is gone while its drop's commit still waits.
// DROP TABLESPACE logs Tablespace/DROP ("DROP <oid>") the same way, before its commit.
import { parseLsn } from '../../../common/lsn';
import type { DroppedKind } from '../../../contract/operations/pitrSteps';
import {
  listArchivedSegments,
  parseTransactionEnd,
  scanArchive,
  type WalDumpOptions,
  type WalRecord,
} from './walInspect';

export interface DropRecord {
  kind: DroppedKind;
  /** The database's OID (for a database) or the tablespace's. */
  oid: number;
  /** A database: the tablespaces it had directories in. */
  tablespaceOids?: number[];
  /** Where the drop record itself starts (not its commit). */
  lsn: string;
  /** The dropping transaction; 0 for ALTER DATABASE SET TABLESPACE's removal of the old copy (after its commit). */
  xid: number;
}

const DATABASE_DROP = /^DROP dir ((?:\d+\/\d+\s*)+)$/;
const TABLESPACE_DROP = /^DROP (\d+)\s*$/;
/** The in-place update of a pg_database row (global/1262): how DROP DATABASE marks it invalid first. */
const PG_DATABASE_INPLACE = /^INPLACE .*blkref #\d+: rel \d+\/0\/1262 blk/;

export function parseDropRecord(record: WalRecord): DropRecord | undefined {
  if (record.rmgr === 'Database') {
    const m = DATABASE_DROP.exec(record.desc.trim());
    if (!m) return undefined;
    const pairs = m[1]!
      .trim()
      .split(/\s+/)
      .map((p) => p.split('/').map(Number) as [number, number]);
    return {
      kind: 'database',
      oid: pairs[0]![1],
      tablespaceOids: pairs.map(([spc]) => spc),
      lsn: record.lsn,
      xid: record.xid,
    };
  }
  if (record.rmgr === 'Tablespace') {
    const m = TABLESPACE_DROP.exec(record.desc.trim());
    return m ? { kind: 'tablespace', oid: Number(m[1]), lsn: record.lsn, xid: record.xid } : undefined;
  }
  return undefined;
}

/** A drop record whose transaction had not ended at the position it was judged at. */
export interface PendingDrop extends DropRecord {
  /** Its transaction's commit, when the window read holds it. */
  commitLsn?: string;
  /**
   * The earliest position at which nothing of the drop is applied yet: the transaction's first
   * record, or for a database the in-place update that marked it invalid just before it.
   */
  beforeDropLsn: string;
  /** beforeDropLsn is that in-place update. */
  beforeInvalidation?: true;
}

/**
 * The DROP DATABASE / DROP TABLESPACE records before `at` whose transaction had not committed
 * (or aborted) before `at`: stopping replay at `at` leaves them replayed and their commit not.
 * A dropping transaction commits right after its drop record, so the archive is read only around
 * `at`: from the segment before the one holding it to the segment after.
 */
export async function dropsPendingAt(
  archiveDir: string,
  at: string,
  opts: WalDumpOptions = {},
): Promise<PendingDrop[]> {
  const position = parseLsn(at);
  const segments = listArchivedSegments(archiveDir);
  const index = segments.findIndex((s) => parseLsn(s.startLsn) <= position && position < parseLsn(s.endLsn));
  if (index < 0) return [];
  const window = {
    afterLsn: segments[Math.max(0, index - 1)]!.startLsn,
    throughLsn: segments[Math.min(segments.length - 1, index + 1)]!.startLsn,
  };
  const drops: DropRecord[] = [];
  const ends = new Map<number, { lsn: string; outcome: string }>();
  await scanArchive(
    archiveDir,
    { rmgrs: ['Database', 'Tablespace', 'Transaction'], ...window },
    (record) => {
      const drop = parseDropRecord(record);
      if (drop && drop.xid !== 0 && parseLsn(drop.lsn) < position) drops.push(drop);
      const end = parseTransactionEnd(record);
      if (end) for (const xid of [end.xid, record.xid]) ends.set(xid, { lsn: end.lsn, outcome: end.outcome });
      return false;
    },
    opts,
  );
  // A rolled-back transaction's drop record (a failed CREATE DATABASE cleaning up) dropped nothing that existed.
  const pending = drops.filter((d) => {
    const end = ends.get(d.xid);
    return end === undefined || (end.outcome === 'commit' && parseLsn(end.lsn) >= position);
  });
  if (pending.length === 0) return [];
  // Only now the heap records (many): where each dropping transaction began.
  const firsts = await firstRecordsOf(archiveDir, new Map(pending.map((d) => [d.xid, d.kind])), window.afterLsn, opts);
  return pending.map((d) => {
    const end = ends.get(d.xid);
    return {
      ...d,
      ...(end?.outcome === 'commit' ? { commitLsn: end.lsn } : {}),
      beforeDropLsn: firsts.get(d.xid)?.lsn ?? d.lsn,
      ...(firsts.get(d.xid)?.invalidation ? { beforeInvalidation: true } : {}),
    };
  });
}

/**
 * The first record of each transaction in the window; for a database drop, the pg_database
 * in-place update just before it when no commit lies between them.
 */
async function firstRecordsOf(
  archiveDir: string,
  wanted: Map<number, DroppedKind>,
  afterLsn: string,
  opts: WalDumpOptions,
): Promise<Map<number, { lsn: string; invalidation: boolean }>> {
  const firsts = new Map<number, { lsn: string; invalidation: boolean }>();
  let lastInplace: string | undefined;
  await scanArchive(
    archiveDir,
    { rmgrs: [], afterLsn },
    (record) => {
      if (record.xid === 0 && record.rmgr === 'Heap' && PG_DATABASE_INPLACE.test(record.desc)) lastInplace = record.lsn;
      else if (wanted.has(record.xid) && !firsts.has(record.xid)) {
        // DROP DATABASE's in-place update carries no xid: the last one before the transaction's first record.
        const inplace = wanted.get(record.xid) === 'database' ? lastInplace : undefined;
        firsts.set(record.xid, { lsn: inplace ?? record.lsn, invalidation: inplace !== undefined });
        if (firsts.size === wanted.size) return true;
      } else if (record.rmgr === 'Transaction') lastInplace = undefined; // stopping before it would undo a commit
      return false;
    },
    opts,
  );
  return firsts;
}
