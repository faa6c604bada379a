// Bisects the archive's segments on a mark that only ever turns from "not yet" to "reached"
// along the WAL: whether a transaction had ended at a RUNNING_XACTS snapshot (xidEndBisect.ts), or
// whether a commit time had reached a time target. The record searched for lies where the mark
// turns, so a search reads about log2(n) short stretches and then a few segments in full instead
// of every segment. Pure code: the reads of the archive are the caller's.

export interface SearchRange {
  /** Index of the first segment to read. */
  from: number;
  /** Index of the last segment to read (inclusive). */
  to: number;
  /** Whether a mark proved the record searched for to start in segment `to` or before. */
  toProven: boolean;
  /** Reads of the archive for a mark. */
  probes: number;
}

/** The first mark in a stretch of segments, and the index of the segment that holds it. */
export interface FoundMark<T> {
  index: number;
  mark: T;
}

/**
 * Bisects segments 0…count-1. `probe(from, to)` reads segments from…to in WAL order up to their
 * first mark (undefined: none there). A mark not `reached` bounds the record searched for from
 * below: after it, give or take one segment (a snapshot and its insertion are not atomic; commit
 * times are taken just before their records are inserted). A `reached` mark bounds it from above:
 * at or before that mark. A stretch without a mark bounds nothing; the bisection goes on to its
 * left, and the range widens rather than missing the record. Reading the range in WAL order
 * from `from` finds the record if the archive has it; the cost is what lies before it.
 */
export async function narrowSearch<T>(
  count: number,
  probe: (from: number, to: number) => Promise<FoundMark<T> | undefined>,
  reached: (mark: T) => boolean,
): Promise<SearchRange> {
  let before = -1; // the newest segment proven to start before the record
  let reachedAt = count; // the oldest segment proven to hold it or to follow it
  let top = count; // segments from here on are bisected already
  let probes = 0;
  while (top - before > 1) {
    const mid = Math.floor((before + top) / 2);
    const found = await probe(mid, top - 1);
    probes++;
    if (!found) top = mid;
    else if (reached(found.mark)) {
      reachedAt = found.index;
      top = mid;
    } else before = found.index;
  }
  return {
    from: Math.max(before - 1, 0),
    to: Math.min(reachedAt, count - 1),
    toProven: reachedAt < count,
    probes,
  };
}
