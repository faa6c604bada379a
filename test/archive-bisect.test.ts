// The bisection that narrows an archive search to the segments where a transaction ended, or
// where commit times reach a time target: checked against archives simulated as one mark (or
// none) per segment.
import assert from 'node:assert/strict';
import { narrowSearch } from '../src/drivers/postgres/archive/archiveBisect';
import {
  endedBefore,
  parseRunningXacts,
  type RunningXactsSnapshot,
} from '../src/drivers/postgres/archive/xidEndBisect';

/** An archive of `count` segments where transaction 1000 runs from segment `start` and ends in `end`. */
function simulated(count: number, start: number, end: number, withoutSnapshot: Set<number> = new Set()) {
  const snapshots: Array<RunningXactsSnapshot | undefined> = [];
  for (let i = 0; i < count; i++) {
    if (withoutSnapshot.has(i)) snapshots.push(undefined);
    // A segment's snapshot comes before the segment's other records: segment `start`'s still
    // shows 1000 unassigned, segment `end`'s still running.
    else if (i <= start) snapshots.push({ nextXid: 990 + i - start, running: [] });
    else if (i <= end) snapshots.push({ nextXid: 1000 + i, running: [1000] });
    else snapshots.push({ nextXid: 1000 + i, running: [] });
  }
  let probes = 0;
  const probe = async (from: number, to: number) => {
    probes++;
    for (let index = from; index <= to; index++) {
      const snapshot = snapshots[index];
      if (snapshot) return { index, mark: snapshot };
    }
    return undefined;
  };
  return { probe, probed: () => probes };
}

describe('commit search bisection on RUNNING_XACTS snapshots', () => {
  it("parses pg_waldump's RUNNING_XACTS descriptions, with and without running transactions", () => {
    assert.deepEqual(parseRunningXacts('RUNNING_XACTS nextXid 750 latestCompletedXid 749 oldestRunningXid 750'), {
      nextXid: 750,
      running: [],
    });
    assert.deepEqual(
      parseRunningXacts(
        'RUNNING_XACTS nextXid 760 latestCompletedXid 757 oldestRunningXid 751; 2 xacts: 751 758; subxid ovf',
      ),
      { nextXid: 760, running: [751, 758] },
    );
    assert.equal(parseRunningXacts('LOCK xid 751 db 5 rel 16384 '), undefined);
  });

  it('tells an ended transaction from a running or future one, across xid wraparound', () => {
    assert.equal(endedBefore(100, { nextXid: 200, running: [] }), true);
    assert.equal(endedBefore(100, { nextXid: 200, running: [100] }), false, 'still running');
    assert.equal(endedBefore(200, { nextXid: 200, running: [] }), false, 'not assigned yet');
    assert.equal(endedBefore(4294967290, { nextXid: 5, running: [] }), true, 'assigned before the wrap');
    assert.equal(endedBefore(5, { nextXid: 4294967290, running: [] }), false, 'assigned after the wrap');
  });

  it('narrows 1000 segments to the few where the transaction ended, in about log2(1000) probes', async () => {
    for (const [start, end] of [
      [0, 0],
      [10, 12],
      [500, 500],
      [997, 998],
      [200, 900],
    ] as const) {
      const sim = simulated(1000, start, end);
      const range = await narrowSearch(1000, sim.probe, (s: RunningXactsSnapshot) => endedBefore(1000, s));
      assert.ok(range.from <= end && end <= range.to, `[${start}, ${end}] lies in [${range.from}, ${range.to}]`);
      assert.ok(range.to - range.from <= 2, `[${start}, ${end}]: ${range.to - range.from + 1} segments to read`);
      assert.ok(sim.probed() <= 11, `[${start}, ${end}]: ${sim.probed()} probes`);
    }
  });

  it('still covers the end record when segments have no snapshot (heavy writes between snapshots)', async () => {
    for (let seed = 0; seed < 200; seed++) {
      const count = 5 + (seed % 60);
      const start = (seed * 7) % count;
      const end = Math.min(count - 1, start + (seed % 4));
      const missing = new Set<number>();
      for (let i = 0; i < count; i++) if ((i * 13 + seed) % 3 === 0) missing.add(i);
      const sim = simulated(count, start, end, missing);
      const range = await narrowSearch(count, sim.probe, (s: RunningXactsSnapshot) => endedBefore(1000, s));
      assert.ok(range.from <= end && end <= range.to, `seed ${seed}: ${end} in [${range.from}, ${range.to}]`);
      // Reading stops at the end record: what comes before it in the range is the cost.
      assert.ok(end - range.from <= 3, `seed ${seed}: ${end - range.from} segments read before ${end}`);
    }
  });

  it('puts a transaction not ended yet in the last segments, and one ended before every snapshot in the first', async () => {
    const notYet = simulated(100, 99, 200);
    const late = await narrowSearch(100, notYet.probe, (s: RunningXactsSnapshot) => endedBefore(1000, s));
    assert.deepEqual([late.from, late.to], [98, 99]);
    const none = await narrowSearch(100, simulated(100, 99, 200).probe, () => true);
    assert.deepEqual([none.from, none.to], [0, 0]);
  });

  it('narrows a time search to the segments around the target, with commit times slightly out of WAL order', async () => {
    // Segment i's first commit at 10 s × i, give or take 2 s (concurrent commits insert their
    // records in a slightly different order than they took their times).
    const times = Array.from({ length: 300 }, (_, i) => i * 10_000 + ((i * 7919) % 5) * 1000 - 2000);
    for (const target of [0, 55_555, 1_000_000, 2_990_000, 5_000_000]) {
      let probes = 0;
      const range = await narrowSearch(
        times.length,
        async (from) => {
          probes++;
          return { index: from, mark: times[from]! };
        },
        (t: number) => t >= target,
      );
      const first = times.findIndex((t) => t >= target);
      const stop = first === -1 ? times.length - 1 : first;
      assert.ok(range.from <= stop && stop - range.from <= 2, `${target}: from ${range.from}, stop in ${stop}`);
      assert.ok(probes <= 10, `${target}: ${probes} probes`);
    }
  });
});
