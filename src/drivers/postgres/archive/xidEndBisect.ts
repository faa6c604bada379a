// What the archive's RUNNING_XACTS snapshots say about a transaction, for the bisection that
// narrows a commit search (archiveBisect.ts). The primary logs a Standby RUNNING_XACTS record at
// every checkpoint and every 15 s of activity: nextXid and the top-level transactions running.
// Whether the transaction had ended at a snapshot only ever turns from no to yes along the WAL.
// Pure code.

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
