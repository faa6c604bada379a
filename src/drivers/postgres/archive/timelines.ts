// The archive's history of timelines (PostgreSQL's timeline.c, read from outside the server).
// Every promotion and every recovery that ends with a promote starts a timeline N and archives
// N.history: one line per ancestor, "<parent tli> <switchpoint LSN> <reason>", the switchpoint
// being where N left that ancestor. Timeline 1 has no file. A restore of a backup taken on
// timeline B can follow only the timelines whose history passes through B after the backup's
// end; on each, WAL up to a switchpoint is read from the ancestor's segments and after it from
// the child's.
import { compareLsn, formatLsn, isLsn, parseLsn } from '../../../common/lsn';
import { listArchivedSegments, type ArchivedSegment } from './walInspect';
import { archiveFilesOf, HISTORY_FILE, type ArchiveSource } from './archiveFiles';

export interface HistoryEntry {
  /** The ancestor timeline. */
  timeline: number;
  /** Where the next timeline of the path forked off this one (its WAL ends here on this path). */
  switchpoint: string;
  reason: string;
}

export interface TimelineInfo {
  timeline: number;
  /** Ancestors from timeline 1 to the parent; empty for timeline 1. */
  history: HistoryEntry[];
  /** When its history file was archived (about when the timeline began); none for timeline 1. */
  historyArchivedAt?: string;
  /** The first and last archived segment files of this timeline, if any. */
  firstSegment?: ArchivedSegment;
  lastSegment?: ArchivedSegment;
}

/** A stretch of one timeline on the way to another: WAL from `beginLsn` up to `endLsn` (exclusive). */
export interface PathSection {
  timeline: number;
  beginLsn: string;
  /** Where the path leaves this timeline for the next one; undefined on the last. */
  endLsn?: string;
}

/** Parses a timeline history file; comments and blank lines are skipped, as PostgreSQL does. */
export function parseHistoryFile(text: string, fileName = 'history file'): HistoryEntry[] {
  const entries: HistoryEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [tli, lsn, ...reason] = line.split(/\s+/);
    if (!/^\d+$/.test(tli ?? '') || !isLsn(lsn))
      throw new Error(`${fileName}: cannot read the line ${JSON.stringify(line.slice(0, 80))}`);
    entries.push({ timeline: Number(tli), switchpoint: formatLsn(parseLsn(lsn!)), reason: reason.join(' ') });
  }
  return entries;
}

/** Every timeline the archive knows, from its history files and its segment files, by number. */
export function readTimelines(source: ArchiveSource): Map<number, TimelineInfo> {
  const archive = archiveFilesOf(source);
  const timelines = new Map<number, TimelineInfo>();
  const info = (timeline: number) => {
    let t = timelines.get(timeline);
    if (!t) timelines.set(timeline, (t = { timeline, history: [] }));
    return t;
  };
  info(1);
  for (const file of archive.files) {
    const match = HISTORY_FILE.exec(file.name);
    const text = archive.histories.get(file.name);
    if (!match || text === undefined) continue;
    const t = info(parseInt(match[1]!, 16));
    t.history = parseHistoryFile(text, file.name);
    t.historyArchivedAt = file.mtime.toISOString();
  }
  for (const segment of listArchivedSegments(archive)) {
    const t = info(segment.timeline);
    t.firstSegment ??= segment;
    t.lastSegment = segment;
  }
  return new Map([...timelines.entries()].sort(([a], [b]) => a - b));
}

/** The sections of WAL that recovery reads to reach `timeline`, from timeline 1 on. */
export function pathTo(timelines: Map<number, TimelineInfo>, timeline: number): PathSection[] {
  const history = timelines.get(timeline)?.history ?? [];
  const sections: PathSection[] = [];
  let begin = '0/0';
  for (const entry of history) {
    sections.push({ timeline: entry.timeline, beginLsn: begin, endLsn: entry.switchpoint });
    begin = entry.switchpoint;
  }
  sections.push({ timeline, beginLsn: begin });
  return sections;
}

/** Where `timeline` begins: its fork from its parent (0/0 for timeline 1). */
export function timelineBegin(timelines: Map<number, TimelineInfo>, timeline: number): string {
  return timelines.get(timeline)?.history.at(-1)?.switchpoint ?? '0/0';
}

/**
 * Whether recovery from a backup taken on `backup.timeline`, consistent at `backup.stopLsn`, can
 * follow `timeline`: the backup's timeline must be on its path and left no earlier than that
 * (else PostgreSQL: "requested timeline is not a child of this server's history" or "does not
 * contain minimum recovery point").
 */
export function reachableFrom(
  timelines: Map<number, TimelineInfo>,
  backup: { timeline: number; stopLsn: string },
  timeline: number,
): boolean {
  if (timeline === backup.timeline) return true;
  const info = timelines.get(timeline);
  if (!info || (timeline > 1 && info.history.length === 0)) return false;
  const entry = info.history.find((e) => e.timeline === backup.timeline);
  return entry !== undefined && compareLsn(entry.switchpoint, backup.stopLsn) >= 0;
}

/** The timelines a backup can be recovered along, by number. */
export function timelinesFrom(
  timelines: Map<number, TimelineInfo>,
  backup: { timeline: number; stopLsn: string },
): number[] {
  return [...timelines.keys()].filter((t) => reachableFrom(timelines, backup, t));
}

/** The path from a backup's start to `timeline`: sections before the backup dropped, the first cut at its start. */
export function pathFromBackup(
  timelines: Map<number, TimelineInfo>,
  backup: { timeline: number; startLsn: string },
  timeline: number,
): PathSection[] {
  const path = pathTo(timelines, timeline);
  const from = path.findIndex((s) => s.timeline === backup.timeline);
  if (from < 0) return [];
  return path.slice(from).map((s, i) => (i === 0 ? { ...s, beginLsn: backup.startLsn } : s));
}

/** Archive file names recovery reads along `path` up to `throughLsn` (default: each section's archived end). */
export function segmentsAlong(
  timelines: Map<number, TimelineInfo>,
  path: PathSection[],
  segmentSize: bigint,
  throughLsn?: string,
): { fileName: string; timeline: number; startLsn: string }[] {
  const names: { fileName: string; timeline: number; startLsn: string }[] = [];
  const through = throughLsn === undefined ? undefined : parseLsn(throughLsn);
  for (const section of path) {
    const begin = parseLsn(section.beginLsn);
    // The last byte this section is read for: up to its switchpoint, the target, or its archived end.
    const ends = [
      section.endLsn === undefined ? undefined : parseLsn(section.endLsn) - 1n,
      through,
      section.endLsn === undefined && through === undefined
        ? (() => {
            const last = timelines.get(section.timeline)?.lastSegment;
            return last ? parseLsn(last.endLsn) - 1n : undefined;
          })()
        : undefined,
    ].filter((e): e is bigint => e !== undefined);
    if (ends.length === 0) continue;
    const end = ends.reduce((a, b) => (a < b ? a : b));
    for (let seg = begin / segmentSize; seg <= end / segmentSize; seg++) {
      names.push({
        fileName: segmentFileName(section.timeline, seg, segmentSize),
        timeline: section.timeline,
        startLsn: formatLsn(seg * segmentSize),
      });
    }
    if (through !== undefined && end === through) break;
  }
  return names;
}

/** PostgreSQL's XLogFileName: timeline, then the segment number split at 4 GB. */
export function segmentFileName(timeline: number, segmentNumber: bigint, segmentSize: bigint): string {
  const perId = 0x100000000n / segmentSize;
  const hex = (n: bigint | number, width = 8) => n.toString(16).toUpperCase().padStart(width, '0');
  return `${hex(timeline)}${hex(segmentNumber / perId)}${hex(segmentNumber % perId)}`;
}

/** The archive's segment size (all segments of one cluster have it), or undefined before any. */
export function archiveSegmentSize(timelines: Map<number, TimelineInfo>): bigint | undefined {
  for (const t of timelines.values()) {
    const s = t.firstSegment;
    if (s) return parseLsn(s.endLsn) - parseLsn(s.startLsn);
  }
  return undefined;
}

/** One line per timeline for a DBA: where it began, from which parent, how far the archive has it. */
export function describeTimelines(timelines: Map<number, TimelineInfo>, only?: number[]): string {
  return [...timelines.values()]
    .filter((t) => !only || only.includes(t.timeline))
    .map((t) => {
      const parent = t.history.at(-1);
      const origin = parent ? `forked from ${parent.timeline} at ${parent.switchpoint}` : 'the first';
      const archived = t.lastSegment
        ? `WAL archived from ${t.firstSegment!.startLsn} to ${t.lastSegment.endLsn}`
        : 'no WAL archived';
      const reason = parent?.reason ? ` (${parent.reason})` : '';
      return `timeline ${t.timeline}: ${origin}${reason}, ${archived}`;
    })
    .join('; ');
}
