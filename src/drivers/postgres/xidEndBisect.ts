// Narrows the archived segments that can hold a transaction's end record (commit or abort) without
// reading them all. The primary logs a Standby RUNNING_XACTS record at every checkpoint and every
// 15 s of activity: a snapshot of nextXid and the top-level transactions running. Whether the
// transaction had ended at a snapshot only ever turns from no to yes along the WAL, so a bisection
// over the segments' first snapshots finds the few segments where it ended. Pure code: the reads
// of the archive are the caller's.

/** What a RUNNING_XACTS record says (pg_waldump's desc). */
export interface RunningXactsSnapshot {
  nextXid: number;
  /** Top-level xids running when the snapshot was taken. */
  running: number[];
}

const RUNNING_XACTS =
  /^RUNNING_XACTS nextXid (\d+) latestCompletedXid \d+ oldestRunningXid \d+(?:; \d+ xacts:((?: \d+)*))?/;

/** 'RUNNING_XACTS nextXid 750 latestCompletedXid 748 oldestRunningXid 749; 1 xacts: 749' → snapshot. */
export function parseRunningXacts(desc: string): RunningXactsSnapshot | undefined {
  const m = RUNNING_XACTS.exec(desc);
  if (!m) return undefined;
  return { nextXid: Number(m[1]), running: (m[2] ?? '').split(' ').filter(Boolean).map(Number) };
}

/** 32-bit xid `a` is `b` or assigned after it (modulo 2^32, as PostgreSQL's TransactionIdFollowsOrEquals). */
export const xidFollowsOrEquals = (a: number, b: number) => ((a - b) | 0) >= 0;

/**
 * The transaction had ended (committed or aborted) when the snapshot was taken: it was assigned
 * (before nextXid) and no longer running. A backend writes its commit record before it leaves
 * the process array, so the end record lies before the snapshot's own record.
 */
export function endedBefore(xid: number, snapshot: RunningXactsSnapshot): boolean {
  return !xidFollowsOrEquals(xid, snapshot.nextXid) && !snapshot.running.includes(xid);
}

export interface EndSearchRange {
  /** Index of the first segment to read. */
  from: number;
  /** Index of the last segment to read (inclusive). */
  to: number;
  /** Whether a snapshot proved the end record to lie before the end of segment `to`. */
  toProven: boolean;
  /** Reads of the archive for a snapshot. */
  probes: number;
}

/** The first snapshot in a stretch of segments, and the index of the segment that holds it. */
export interface FoundSnapshot {
  index: number;
  snapshot: RunningXactsSnapshot;
}

/**
 * Bisects segments 0…count-1. `probe(from, to)` reads segments from…to in WAL order up to their
 * first snapshot (undefined: none there, as in a stretch of heavy writes). A snapshot that shows
 * the transaction not ended yet bounds the end record from below: after that snapshot was taken,
 * which is at most one segment before its record (the snapshot and its insertion are not
 * atomic). A snapshot that shows it ended bounds it from above: before that record. Reading the
 * range returned in WAL order finds the end record if the archive has it.
 */
export async function narrowEndSearch(
  count: number,
  probe: (from: number, to: number) => Promise<FoundSnapshot | undefined>,
  ended: (snapshot: RunningXactsSnapshot) => boolean,
): Promise<EndSearchRange> {
  let notEnded = -1; // the newest segment proven to start before the end record
  let endedAt = count; // the oldest segment proven to hold it or to follow it
  let top = count; // segments from here on are bisected already
  let probes = 0;
  while (top - notEnded > 1) {
    const mid = Math.floor((notEnded + top) / 2);
    const found = await probe(mid, top - 1);
    probes++;
    if (!found) top = mid;
    else if (ended(found.snapshot)) {
      endedAt = found.index;
      top = mid;
    } else notEnded = found.index;
  }
  return {
    from: Math.max(notEnded - 1, 0),
    to: Math.min(endedAt, count - 1),
    toProven: endedAt < count,
    probes,
  };
}
