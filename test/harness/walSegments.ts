// Small archives of 1 MB WAL segments for the read-ahead tests (wal-read-ahead, pod-read-ahead):
// segments 1–9 of timeline 1 filled with their number, and a timeline 2 history file.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const MB = 1 << 20;
/** The file name of 1 MB segment `seg` on timeline 1. */
export const segmentName = (seg: number) => `00000001000000000000${seg.toString(16).toUpperCase().padStart(4, '0')}`;
/** Start LSN of 1 MB segment `seg`. */
export const segmentLsn = (seg: number) => `0/${(seg * MB).toString(16).toUpperCase()}`;

/** A fresh directory holding `archive/` (segments 1–9, a history file) and `data/pg_wal/`. */
export function segmentArchive(prefix: string): { root: string; archive: string; pgdata: string } {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const archive = join(root, 'archive');
  const pgdata = join(root, 'data');
  mkdirSync(archive);
  mkdirSync(join(pgdata, 'pg_wal'), { recursive: true });
  for (let seg = 1; seg <= 9; seg++) writeFileSync(join(archive, segmentName(seg)), Buffer.alloc(MB, seg));
  writeFileSync(join(archive, '00000002.history'), '1\t0/5000000\tno recovery target specified\n');
  return { root, archive, pgdata };
}

/** A replay from inside segment 2 to a target inside segment 7, three segments staged at most. */
export const REDO_TO_TARGET = {
  timeline: 1,
  fromLsn: `0/${(2 * MB + 40).toString(16).toUpperCase()}`,
  toLsn: `0/${(7 * MB + 123).toString(16).toUpperCase()}`,
  depth: 3,
};
