// One fact about a transaction that pg_waldump does not print: whether it held an ACCESS
// EXCLUSIVE lock. PostgreSQL sets XACT_XINFO_HAS_AE_LOCKS in the commit record of every
// transaction that logged a Standby LOCK record (LogAccessExclusiveLock sets the transaction's
// XACT_FLAGS_ACQUIREDACCESSEXCLUSIVELOCK; the standby reads the bit to know whether it has locks
// to release). Read straight from the archived segment at the commit's LSN, it spares the search
// for the transaction's first record (lockingTransaction.ts), which reads WAL back to a snapshot
// taken before the transaction began, for the common target that locked nothing exclusively.
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { parseLsn } from '../../../common/lsn';
import { listArchivedSegments, type ArchivedSegment } from './walInspect';

/** xlog_internal.h: page headers are MAXALIGNed; the first page of a segment has the long one. */
const SHORT_PAGE_HEADER = 24n;
const LONG_PAGE_HEADER = 40n;
/** xlogrecord.h: the fixed record header, and the ids of what follows it. */
const RECORD_HEADER = 24;
const BLOCK_ID_DATA_SHORT = 255;
const BLOCK_ID_DATA_LONG = 254;
const BLOCK_ID_ORIGIN = 253;
const BLOCK_ID_TOPLEVEL_XID = 252;
/** rmgrlist.h and xact.h. */
const RM_XACT_ID = 1;
const XLOG_XACT_OPMASK = 0x70;
const XLOG_XACT_COMMIT = 0x00;
const XLOG_XACT_COMMIT_PREPARED = 0x30;
const XLOG_XACT_HAS_INFO = 0x80;
const XACT_XINFO_HAS_AE_LOCKS = 1 << 6;
/** sizeof(xl_xact_commit): its commit time. */
const COMMIT_TIME_BYTES = 8;

/** Reads `length` bytes of the WAL stream from `lsn` on, stepping over page headers (and into the next segment). */
function readWal(archiveDir: string, segments: ArchivedSegment[], lsn: bigint, length: number): Buffer | undefined {
  const parts: Buffer[] = [];
  let got = 0;
  let pos = lsn;
  const timeline = segments.findLast((s) => parseLsn(s.startLsn) <= lsn && lsn < parseLsn(s.endLsn))?.timeline;
  while (got < length) {
    const segment = segments.find(
      (s) => s.timeline === timeline && parseLsn(s.startLsn) <= pos && pos < parseLsn(s.endLsn),
    );
    if (!segment) return undefined;
    const fd = openSync(join(archiveDir, segment.fileName), 'r');
    try {
      const header = Buffer.alloc(40);
      readSync(fd, header, 0, 40, 0);
      const pageSize = BigInt(header.readUInt32LE(36)); // xlp_xlog_blcksz of the long page header
      if (pageSize < 1024n || pageSize > 65536n) return undefined;
      const segmentStart = parseLsn(segment.startLsn);
      const segmentEnd = parseLsn(segment.endLsn);
      while (got < length && pos < segmentEnd) {
        const offset = pos - segmentStart;
        if (offset % pageSize === 0n) {
          pos += offset === 0n ? LONG_PAGE_HEADER : SHORT_PAGE_HEADER;
          continue;
        }
        const pageLeft = Number(pageSize - (offset % pageSize));
        const n = Math.min(length - got, pageLeft);
        const chunk = Buffer.alloc(n);
        if (readSync(fd, chunk, 0, n, Number(offset)) !== n) return undefined;
        parts.push(chunk);
        got += n;
        pos += BigInt(n);
      }
    } finally {
      closeSync(fd);
    }
  }
  return Buffer.concat(parts);
}

/**
 * Whether the transaction whose commit record starts at `commitLsn` held an ACCESS EXCLUSIVE
 * lock. Undefined when the record there is not that commit (or cannot be read): the caller then
 * searches the WAL as if it might have.
 */
export function commitHeldExclusiveLock(archiveDir: string, commitLsn: string, xid: number): boolean | undefined {
  try {
    const segments = listArchivedSegments(archiveDir);
    const lsn = parseLsn(commitLsn);
    const header = readWal(archiveDir, segments, lsn, RECORD_HEADER);
    if (!header) return undefined;
    const totalLength = header.readUInt32LE(0);
    const recordXid = header.readUInt32LE(4);
    const info = header.readUInt8(16);
    const rmid = header.readUInt8(17);
    const op = info & XLOG_XACT_OPMASK;
    if (rmid !== RM_XACT_ID || (op !== XLOG_XACT_COMMIT && op !== XLOG_XACT_COMMIT_PREPARED)) return undefined;
    // A COMMIT PREPARED is written by the session that commits it, not by the prepared transaction.
    if (op === XLOG_XACT_COMMIT && recordXid !== xid >>> 0) return undefined;
    if (totalLength < RECORD_HEADER + 2 || totalLength > 1 << 24) return undefined;
    const record = readWal(archiveDir, segments, lsn, totalLength);
    if (!record) return undefined;
    let at = RECORD_HEADER;
    for (;;) {
      const id = record.readUInt8(at);
      if (id === BLOCK_ID_DATA_SHORT) {
        at += 2;
        break;
      }
      if (id === BLOCK_ID_DATA_LONG) {
        at += 5;
        break;
      }
      if (id === BLOCK_ID_ORIGIN) at += 3;
      else if (id === BLOCK_ID_TOPLEVEL_XID) at += 5;
      else return undefined; // a block reference: not what a commit record carries
      if (at >= totalLength) return undefined;
    }
    if (!(info & XLOG_XACT_HAS_INFO)) return false; // no xinfo at all: no flag set
    if (at + COMMIT_TIME_BYTES + 4 > totalLength) return undefined;
    return (record.readUInt32LE(at + COMMIT_TIME_BYTES) & XACT_XINFO_HAS_AE_LOCKS) !== 0;
  } catch {
    return undefined;
  }
}
