// On which timeline a recovery target lies, seen from a backup (the "history" section of the
// README). After a restore or a promote the archive holds several branches: the old timeline's
// WAL after the fork (the history that was rolled back) and the new timeline's. An LSN, an xid
// (xids are handed out again on each branch), a restore point name or a time can lie on either.
// Recovery must be told the timeline by number: 'latest' follows the newest branch and misses a
// target on an older one ("recovery ended before configured recovery target was reached"), and
// 'current' misses one after a fork.
import { compareLsn } from '../../../common/lsn';
import { isoTimeMicros } from '../../../common/recoveryTarget';
import type { RestoreTarget } from '../../../contract/recovery';
import {
  archiveSegmentSize,
  describeTimelines,
  pathFromBackup,
  readTimelines,
  segmentsAlong,
  timelineBegin,
  timelinesFrom,
  type PathSection,
  type TimelineInfo,
} from '../archive/timelines';
import {
  findCommit,
  findRestorePoint,
  findTimeTargetStop,
  lastRecordStart,
  listArchivedSegments,
  type WalDumpOptions,
} from '../archive/walInspect';
import type { ArchiveSource } from '../archive/archiveFiles';

export interface BackupPosition {
  id: string;
  timeline: number;
  startLsn: string;
  stopLsn: string;
  stoppedAt: string;
}

export interface TimelineChoice {
  /** Written as recovery_target_timeline. */
  timeline: number;
  /** The sections of WAL recovery reads, from the backup's start. */
  path: PathSection[];
  /** Where recovery stops (the stop record, or the LSN target), when the archive shows it. */
  stopLsn?: string;
  stopTime?: string;
  /** Every timeline the backup can be recovered along. */
  reachable: number[];
}

/** The target cannot be reached from this backup through the archive's history: a refusal, nothing touched. */
export class TargetNotOnHistory extends Error {
  override readonly name = 'TargetNotOnHistory';
  constructor(
    message: string,
    /** none: on no reachable timeline; several: on more than one; timeline: a bad timeline asked for;
     * before: before the backup is consistent; missing: a segment on the way is not archived. */
    readonly kind: 'none' | 'several' | 'timeline' | 'before' | 'missing' = 'none',
  ) {
    super(message);
  }
}

interface Hit {
  timeline: number;
  stopLsn?: string;
  stopTime?: string;
}

/**
 * The timeline recovery must follow for `target`, and the path to it. With `requested` (an
 * operator's recoveryTargetTimeline) the target is looked for along that timeline's path only;
 * without, on the own stretch of every timeline reachable from the backup: found on one, that
 * one; on none or on several (two branches alive at once), a refusal that lists the timelines.
 */
export async function chooseRecoveryTimeline(
  archiveDir: string,
  backup: BackupPosition,
  target: RestoreTarget,
  opts: WalDumpOptions & {
    inclusive?: boolean;
    requested?: 'current' | 'latest' | number;
    /** What recovery starts from, in messages (default: "backup <id>"). */
    origin?: string;
  } = {},
): Promise<TimelineChoice> {
  const timelines = readTimelines(archiveDir);
  const reachable = timelinesFrom(timelines, backup);
  const refuse = (why: string, kind: TargetNotOnHistory['kind']) =>
    new TargetNotOnHistory(`${why}. The archive's timelines: ${describeTimelines(timelines)}`, kind);
  const from = opts.origin ?? `backup ${backup.id}`;
  let candidates = reachable;
  if (opts.requested !== undefined) {
    const wanted =
      opts.requested === 'current'
        ? backup.timeline
        : opts.requested === 'latest'
          ? Math.max(...reachable)
          : opts.requested;
    if (!timelines.has(wanted))
      throw refuse(`timeline ${wanted} does not exist in the WAL archive (no history file, no segment)`, 'timeline');
    if (!reachable.includes(wanted))
      throw refuse(
        `timeline ${wanted} does not lead from ${from} (timeline ${backup.timeline}, consistent at ${backup.stopLsn}): it forked off earlier or from another branch; timelines reachable from it: ${reachable.join(', ')}`,
        'timeline',
      );
    candidates = [wanted];
  }
  const alongPath = opts.requested !== undefined;
  const sectionsFor = (timeline: number): PathSection[] =>
    alongPath
      ? pathFromBackup(timelines, backup, timeline)
      : [{ timeline, beginLsn: timeline === backup.timeline ? backup.startLsn : timelineBegin(timelines, timeline) }];

  const hits: Hit[] = [];
  for (const timeline of candidates) {
    const hit = await findOnSections(archiveDir, timelines, backup, target, sectionsFor(timeline), opts);
    if (hit) hits.push({ ...hit, timeline: alongPath ? timeline : hit.timeline });
  }
  const what = describeTarget(target);
  if (hits.length === 0)
    throw refuse(
      `${what} lies on no timeline reachable from ${from} (timeline ${backup.timeline}, from ${backup.startLsn}, consistent at ${backup.stopLsn}${alongPath ? `, along timeline ${candidates[0]}` : ''}): it is before that, on a branch that forked off before it, or not archived yet`,
      'none',
    );
  if (hits.length > 1)
    throw refuse(
      `${what} lies on several timelines (${hits.map((h) => `timeline ${h.timeline}${h.stopLsn ? ` at ${h.stopLsn}` : ''}`).join(', ')}): two branches of the history hold it. Say which with recoveryTargetTimeline`,
      'several',
    );
  const hit = hits[0]!;
  if (hit.stopLsn && compareLsn(hit.stopLsn, backup.stopLsn) < 0 && target !== 'immediate')
    throw refuse(
      `${what} is at ${hit.stopLsn}, before ${from} is consistent (${backup.stopLsn}): recovery cannot stop there; choose an older backup`,
      'before',
    );
  const path = pathFromBackup(timelines, backup, hit.timeline);
  const missing = missingSegment(archiveDir, timelines, path, hit.stopLsn);
  if (missing)
    throw refuse(
      `the WAL archive lacks segment ${missing}, which recovery from ${from} to ${what} needs (timeline ${hit.timeline}): every target after it is unreachable from there; take a new backup`,
      'missing',
    );
  return { timeline: hit.timeline, path, stopLsn: hit.stopLsn, stopTime: hit.stopTime, reachable };
}

/** The first segment file of `path` (up to `throughLsn`) that the archive does not hold. */
export function missingSegment(
  archive: ArchiveSource,
  timelines: Map<number, TimelineInfo>,
  path: PathSection[],
  throughLsn?: string,
  present: ReadonlySet<string> = new Set(listArchivedSegments(archive).map((s) => s.fileName)),
): string | undefined {
  const size = archiveSegmentSize(timelines);
  if (size === undefined) return undefined;
  const needed = segmentsAlong(timelines, path, size, throughLsn);
  return needed.find((s, i) => {
    if (present.has(s.fileName)) return false;
    // The segment that holds a switchpoint is also the parent's file (its start is the same WAL).
    const previous = needed[i - 1];
    return !(
      previous &&
      previous.timeline !== s.timeline &&
      present.has(hex8(previous.timeline) + s.fileName.slice(8))
    );
  })?.fileName;
}

const hex8 = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');

function describeTarget(target: RestoreTarget): string {
  if (target === 'immediate') return 'the end of the backup';
  if ('xid' in target) return `transaction ${target.xid}`;
  if ('lsn' in target) return `LSN ${target.lsn}`;
  if ('name' in target) return `restore point "${target.name}"`;
  return `time ${target.time}`;
}

/** Where `target` is on these sections (each read only from its begin to its end), if it is. */
async function findOnSections(
  archiveDir: string,
  timelines: Map<number, TimelineInfo>,
  backup: BackupPosition,
  target: RestoreTarget,
  sections: PathSection[],
  opts: WalDumpOptions & { inclusive?: boolean },
): Promise<Hit | undefined> {
  const within = (s: PathSection, lsn: string) =>
    compareLsn(lsn, s.beginLsn) >= 0 && (s.endLsn === undefined || compareLsn(lsn, s.endLsn) < 0);
  const dump = { binDir: opts.binDir, signal: opts.signal };
  for (const section of sections) {
    const on = { ...dump, timeline: section.timeline, afterLsn: section.beginLsn };
    if (target === 'immediate') {
      if (section.timeline === backup.timeline) return { timeline: section.timeline, stopLsn: backup.stopLsn };
      continue;
    }
    if ('lsn' in target) {
      if (!within(section, target.lsn)) continue;
      // A section that ends at a fork has WAL up to it; the last one, only up to its last record.
      const ends = section.endLsn !== undefined && timelines.get(section.timeline)?.lastSegment !== undefined;
      const last = ends ? section.endLsn : await lastRecordStart(archiveDir, section.timeline, dump);
      if (last !== undefined && compareLsn(target.lsn, last) <= 0)
        return { timeline: section.timeline, stopLsn: target.lsn };
      continue;
    }
    if ('xid' in target) {
      const found = await findCommit(archiveDir, target.xid, on);
      if (found && within(section, found.commitLsn))
        return { timeline: section.timeline, stopLsn: found.commitLsn, stopTime: found.commitTime };
      continue;
    }
    if ('name' in target) {
      const found = await findRestorePoint(archiveDir, target.name, on);
      if (found && within(section, found)) return { timeline: section.timeline, stopLsn: found };
      continue;
    }
    const stop = await findTimeTargetStop(archiveDir, target.time, opts.inclusive ?? false, on);
    if (!stop || !within(section, stop.lsn)) continue;
    // A branch's WAL holds only commits made after it began: a time before that (the old branch
    // was still the history then) does not lie on it, even though its first commit "stops" there.
    if (sections.length === 1 && section.timeline !== backup.timeline) {
      const began = await branchBegan(archiveDir, timelines, section, dump);
      const at = isoTimeMicros(target.time);
      if (began !== undefined && at !== undefined && at < began) continue;
    }
    return { timeline: section.timeline, stopLsn: stop.lsn, stopTime: stop.time };
  }
  return undefined;
}

/** About when a branch began: its history file's archive time, or its first commit if earlier. */
async function branchBegan(
  archiveDir: string,
  timelines: Map<number, TimelineInfo>,
  section: PathSection,
  dump: WalDumpOptions,
): Promise<bigint | undefined> {
  const archivedAt = timelines.get(section.timeline)?.historyArchivedAt;
  const first = await findTimeTargetStop(archiveDir, '1970-01-01T00:00:00Z', false, {
    ...dump,
    timeline: section.timeline,
    afterLsn: section.beginLsn,
  });
  const times = [archivedAt, first?.time]
    .map((t) => (t === undefined ? undefined : isoTimeMicros(t)))
    .filter((t): t is bigint => t !== undefined);
  return times.length ? times.reduce((a, b) => (a < b ? a : b)) : undefined;
}
