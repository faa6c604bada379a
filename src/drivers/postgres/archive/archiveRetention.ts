// Which files of the WAL archive something still needs, and which may go. A restore of a backup
// B replays WAL from B's start along any timeline B can reach (timelines.ts), up to a target that
// may lie anywhere after B: every segment from B's start to the end of the archive on those paths
// is needed. A replica restoring from the archive needs the same from its restart point (where a
// restart would begin replay). Everything else may go, except what PostgreSQL or a DBA reads for
// other reasons: `.history` files are never removed (a restore needs every ancestor's history to
// choose its timeline), and the segments of a timeline whose history file is missing are kept
// (nobody can tell where it forked). Pure file reading: no server, no Temporal.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseLsn } from '../../../common/lsn';
import { listArchivedSegments, type ArchivedSegment } from './walInspect';
import { archiveSegmentSize, pathFromBackup, readTimelines, timelinesFrom, type TimelineInfo } from './timelines';
import type { NeededSegment } from '../../../contract/archive';

/** Something that needs WAL from a point on: a kept backup, a safety snapshot, a replica. */
export interface WalAnchor {
  /** Said to a DBA: "backup 20261122T031500Z-1a2b3c4d", "replica orders-delayed (restart point)". */
  what: string;
  timeline: number;
  /** WAL is needed from here on. */
  startLsn: string;
  /** Where the anchor is consistent: which later timelines it can follow. */
  stopLsn: string;
}

export interface ArchiveFile {
  fileName: string;
  bytes: number;
}

export interface PruneRules {
  /** Files archived at or after this time stay, whatever needs them (walArchiveRetention.keepExtra). */
  keepArchivedSince?: Date;
  /** Everything from this position on, on every timeline, stays (a replica that could not be asked). */
  keepFrom?: { lsn: string; why: string };
}

export interface ArchivePrunePlan {
  /** Files to remove, oldest WAL first, so that an interrupted removal leaves the archive whole from some point on. */
  remove: ArchiveFile[];
  removeBytes: number;
  /** Segment files that stay, and their bytes. */
  keptSegments: number;
  keptBytes: number;
  /** The oldest segment that stays because something needs it, and what. */
  oldestNeeded?: NeededSegment;
  /** Why less than the rules allow is removed, one sentence each. */
  notes: string[];
}

/** A segment, `.partial` or backup history (`.backup`) file: timeline and segment, as named. */
const WAL_FILE = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.partial|\.[0-9A-F]{8}\.backup)?$/;

/** Whether `fileName` is a file the archive's retention may remove (never `.history`, never other files). */
export function isPrunableName(fileName: string): boolean {
  return WAL_FILE.test(fileName);
}

interface SegmentRange {
  timeline: number;
  from: bigint;
  /** Inclusive; undefined: to the end of the timeline, however far it grows. */
  to?: bigint;
  what: string;
}

/** The stretches of segments `anchor` needs, one per path section on every timeline it can reach. */
function rangesOf(timelines: Map<number, TimelineInfo>, anchor: WalAnchor, segmentSize: bigint): SegmentRange[] {
  const ranges: SegmentRange[] = [];
  for (const timeline of timelinesFrom(timelines, anchor)) {
    for (const section of pathFromBackup(timelines, anchor, timeline)) {
      const from = parseLsn(section.beginLsn) / segmentSize;
      const to = section.endLsn === undefined ? undefined : (parseLsn(section.endLsn) - 1n) / segmentSize;
      ranges.push({ timeline: section.timeline, from, to, what: anchor.what });
    }
  }
  return ranges;
}

/** Decides what may be removed from `archiveDir`, given everything that needs WAL. Removes nothing. */
export function planArchivePrune(archiveDir: string, anchors: WalAnchor[], rules: PruneRules = {}): ArchivePrunePlan {
  // Segments first, then the histories: a timeline's history file is archived before its
  // segments, so every segment listed here has its history read below.
  const segments = listArchivedSegments(archiveDir);
  const timelines = readTimelines(archiveDir);
  const segmentSize = archiveSegmentSize(timelines);
  const notes: string[] = [];
  const plan = (remove: ArchiveFile[], kept: typeof segments, oldestNeeded?: NeededSegment): ArchivePrunePlan => ({
    remove,
    removeBytes: remove.reduce((sum, f) => sum + f.bytes, 0),
    keptSegments: kept.length,
    keptBytes: segmentSize === undefined ? 0 : kept.length * Number(segmentSize),
    oldestNeeded,
    notes,
  });
  if (segmentSize === undefined) return plan([], segments);
  if (anchors.length === 0) {
    notes.push('no backup is kept: nothing is removed from the WAL archive');
    return plan([], segments);
  }

  const ranges = neededRanges(timelines, anchors, rules, segmentSize, notes);
  const noHistory = [...timelines.values()].filter((t) => t.timeline > 1 && t.history.length === 0);
  for (const t of noHistory)
    notes.push(`timeline ${t.timeline} has no history file in the archive: its segments are kept`);

  const neededBy = (timeline: number, segmentNumber: bigint) =>
    ranges
      .filter(
        (r) => r.timeline === timeline && r.from <= segmentNumber && (r.to === undefined || segmentNumber <= r.to),
      )
      .map((r) => r.what);
  const isNeeded = (timeline: number, segmentNumber: bigint) =>
    noHistory.some((t) => t.timeline === timeline) || neededBy(timeline, segmentNumber).length > 0;
  const since = rules.keepArchivedSince?.getTime();
  const recent = (archivedAt: number) => since !== undefined && archivedAt >= since;

  const { remove, kept, oldestNeeded, recentKept } = sortSegments(segments, segmentSize, isNeeded, recent);
  if (oldestNeeded) {
    const segmentNumber = parseLsn(oldestNeeded.startLsn) / segmentSize;
    oldestNeeded.neededBy = [...new Set(neededBy(oldestNeeded.timeline, segmentNumber))];
    if (oldestNeeded.neededBy.length === 0) oldestNeeded.neededBy = ['its timeline has no history file'];
  } else if (remove.length > 0) {
    // Not one segment the kept backups and replicas need is here: this is not their archive, or
    // their WAL is not archived yet. Removing everything would be the wrong answer either way.
    notes.push(
      `none of the segments the kept backups need (from ${anchors.map((a) => `${a.what} at ${a.startLsn} on timeline ${a.timeline}`).join(', ')}) is in ${archiveDir}: nothing is removed; check that walArchive is where archive_command writes`,
    );
    return plan([], segments);
  }
  if (recentKept > 0)
    notes.push(
      `${recentKept} segment(s) archived since ${rules.keepArchivedSince!.toISOString()} are kept (keepExtra)`,
    );

  remove.push(...companionFilesToRemove(archiveDir, segmentSize, isNeeded, recent));
  sortOldestWalFirst(remove);
  return plan(
    remove.map(({ fileName, bytes }) => ({ fileName, bytes })),
    kept,
    oldestNeeded,
  );
}

/** A file to remove, with the segment it belongs to (for the order of removal). */
type RemovableFile = ArchiveFile & { timeline: number; segmentNumber: bigint };

/** The stretches of segments every anchor and `rules.keepFrom` need; an anchor on an unknown timeline is noted. */
function neededRanges(
  timelines: Map<number, TimelineInfo>,
  anchors: WalAnchor[],
  rules: PruneRules,
  segmentSize: bigint,
  notes: string[],
): SegmentRange[] {
  const ranges: SegmentRange[] = [];
  for (const anchor of anchors) {
    if (!timelines.has(anchor.timeline)) {
      // A timeline the archive has neither a history file nor a segment of: where it leads is
      // unknown, so everything from the anchor's start stays on every timeline.
      notes.push(
        `${anchor.what} lies on timeline ${anchor.timeline}, which the archive does not know: everything from ${anchor.startLsn} on is kept`,
      );
      for (const t of timelines.keys())
        ranges.push({ timeline: t, from: parseLsn(anchor.startLsn) / segmentSize, what: anchor.what });
      continue;
    }
    ranges.push(...rangesOf(timelines, anchor, segmentSize));
  }
  if (rules.keepFrom)
    for (const t of timelines.keys())
      ranges.push({ timeline: t, from: parseLsn(rules.keepFrom.lsn) / segmentSize, what: rules.keepFrom.why });
  return ranges;
}

/** The archived segments split into those that stay (needed or recent) and those that may go. */
function sortSegments(
  segments: ArchivedSegment[],
  segmentSize: bigint,
  isNeeded: (timeline: number, segmentNumber: bigint) => boolean,
  recent: (archivedAt: number) => boolean,
): { remove: RemovableFile[]; kept: ArchivedSegment[]; oldestNeeded?: NeededSegment; recentKept: number } {
  const remove: RemovableFile[] = [];
  const kept: ArchivedSegment[] = [];
  let oldestNeeded: NeededSegment | undefined;
  let recentKept = 0;
  for (const s of segments) {
    if (isNeeded(s.timeline, s.segmentNumber)) {
      kept.push(s);
      if (
        !oldestNeeded ||
        parseLsn(s.startLsn) < parseLsn(oldestNeeded.startLsn) ||
        (s.startLsn === oldestNeeded.startLsn && s.timeline < oldestNeeded.timeline)
      )
        oldestNeeded = { fileName: s.fileName, timeline: s.timeline, startLsn: s.startLsn, neededBy: [] };
    } else if (recent(Date.parse(s.archivedAt))) {
      kept.push(s);
      recentKept++;
    } else
      remove.push({
        fileName: s.fileName,
        bytes: Number(segmentSize),
        timeline: s.timeline,
        segmentNumber: s.segmentNumber,
      });
  }
  return { remove, kept, oldestNeeded, recentKept };
}

/** `.partial` and `.backup` files go with the segment they are named after. */
function companionFilesToRemove(
  archiveDir: string,
  segmentSize: bigint,
  isNeeded: (timeline: number, segmentNumber: bigint) => boolean,
  recent: (archivedAt: number) => boolean,
): RemovableFile[] {
  const remove: RemovableFile[] = [];
  for (const fileName of readdirSync(archiveDir)) {
    const match = WAL_FILE.exec(fileName);
    if (!match?.[4]) continue;
    const timeline = parseInt(match[1]!, 16);
    const perId = 0x100000000n / segmentSize;
    const segmentNumber = BigInt(`0x${match[2]}`) * perId + BigInt(`0x${match[3]}`);
    if (isNeeded(timeline, segmentNumber)) continue;
    let stat;
    try {
      stat = statSync(join(archiveDir, fileName));
    } catch {
      continue; // gone meanwhile
    }
    if (!stat.isFile() || recent(stat.mtimeMs)) continue;
    remove.push({ fileName, bytes: stat.size, timeline, segmentNumber });
  }
  return remove;
}

/** Oldest WAL first, so that an interrupted removal leaves the archive whole from some point on. */
function sortOldestWalFirst(remove: RemovableFile[]): void {
  remove.sort((a, b) =>
    a.segmentNumber !== b.segmentNumber
      ? a.segmentNumber < b.segmentNumber
        ? -1
        : 1
      : a.timeline - b.timeline || (a.fileName < b.fileName ? -1 : 1),
  );
}

/** Files and bytes in the archive directory (every regular file, history and temporary ones too). */
export function archiveSize(archiveDir: string): { files: number; bytes: number; segments: number } {
  let files = 0;
  let bytes = 0;
  for (const name of readdirSync(archiveDir)) {
    try {
      const stat = statSync(join(archiveDir, name));
      if (!stat.isFile()) continue;
      files++;
      bytes += stat.size;
    } catch {
      // removed meanwhile
    }
  }
  return { files, bytes, segments: listArchivedSegments(archiveDir).length };
}
