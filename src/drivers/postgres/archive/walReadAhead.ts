// Read-ahead for a targeted replay from a WAL archive directory. The startup process fetches one
// segment at a time through restore_command and replays nothing while the copy runs (about a
// fifth of the replay's time here for a cold 16 MB segment). The read-ahead copies the next
// segments into a staging directory inside pg_wal while replay goes on, each under a temporary
// name and renamed when whole, so restore_command only renames a staged segment into place and
// falls back to the replica's own command for anything not staged (docs/runbooks/delayed-replica-pitr.md step 5; the
// seed's GitLab replicas fetched 4 segments in parallel for the same reason).
import { chown, copyFile, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { compareLsn, parseLsn } from '../../../common/lsn';
import { plainPathProblem } from '../../../common/shellPaths';
import { listArchivedSegments, type ArchivedSegment } from './walInspect';
import type { ArchiveSource } from './archiveFiles';
import { delay } from '../../waiting';
import type { ReadAheadStats } from '../../../contract/operations/pitrSteps';

/** A wait that an abort ends early (the loops check the signal themselves). */
const pause = (ms: number, signal: AbortSignal) => delay(ms, signal).catch(() => undefined);

/** The staging directory's name inside pg_wal: pg_basebackup and PostgreSQL ignore it. */
export const READ_AHEAD_DIR = 'pgops_readahead';
const SEGMENT_FILE = /^[0-9A-F]{24}$/;
/** The most the staging directory holds (a whole number of segments, at least one). */
export const MAX_STAGED_BYTES = 256 * 1024 * 1024;

export function readAheadStageDir(pgdata: string): string {
  return join(pgdata, 'pg_wal', READ_AHEAD_DIR);
}

/**
 * restore_command with the read-ahead in front of the replica's own command: a staged segment is
 * renamed into place (same file system, instant), anything else is fetched as before. Undefined
 * when the staging path cannot go into a shell string or there is no command to fall back to.
 */
export function readAheadRestoreCommand(stageDir: string, original: string): string | undefined {
  if (plainPathProblem(stageDir, 'restore_command') || original.trim() === '') return undefined;
  if (isReadAheadRestoreCommand(original)) return original;
  return `mv -f ${stageDir}/%f %p 2>/dev/null || { ${original.trim().replace(/;+$/, '')}; }`;
}

export function isReadAheadRestoreCommand(command: string): boolean {
  return command.startsWith('mv -f ') && command.includes(`/pg_wal/${READ_AHEAD_DIR}/%f %p 2>/dev/null || {`);
}

/** The replay a read-ahead runs beside, wherever it copies (here, or in a pod: podReadAhead.ts). */
export interface ReadAheadRange {
  /** Timeline whose segments are staged (the replica's). */
  timeline: number;
  /** Replay starts here (the restartpoint's REDO): the first segment staged holds it. */
  fromLsn: string;
  /** The last segment staged holds this position (the target), or the archive's end. */
  toLsn?: string;
  /** Segments staged and not yet taken, at most (fewer when that would pass MAX_STAGED_BYTES). */
  depth: number;
  /** Where replay stands now (updated by the caller's watch); staged segments before it are stale. */
  replayLsn: () => string | undefined;
  signal: AbortSignal;
}

export interface ReadAheadOptions extends ReadAheadRange {
  archiveDir: string;
  stageDir: string;
  /** Owner given to the staged files (PGDATA's), when this process may give it. */
  owner?: { uid: number; gid: number };
  /** How often the staging directory is looked at while it is full. */
  pollMs?: number;
}

/** The archived segments of the range, in order, and how many may wait staged at once. */
export function segmentsToStage(
  archive: ArchiveSource,
  range: Omit<ReadAheadRange, 'replayLsn' | 'signal'>,
): { segments: ArchivedSegment[]; segmentBytes: number; depth: number } {
  const from = parseLsn(range.fromLsn);
  const segments = listArchivedSegments(archive).filter(
    (s) =>
      s.timeline === range.timeline &&
      parseLsn(s.endLsn) > from &&
      (range.toLsn === undefined || compareLsn(s.startLsn, range.toLsn) <= 0),
  );
  const segmentBytes = segments[0] ? Number(parseLsn(segments[0].endLsn) - parseLsn(segments[0].startLsn)) : 1;
  // Large segments (up to 1 GB) are staged fewer at a time: at most MAX_STAGED_BYTES in pg_wal.
  const depth = Math.max(1, Math.min(range.depth, Math.floor(MAX_STAGED_BYTES / segmentBytes)));
  return { segments, segmentBytes, depth };
}

async function stagedNames(stageDir: string): Promise<string[]> {
  return (await readdir(stageDir).catch(() => [] as string[])).filter((n) => SEGMENT_FILE.test(n));
}

/** Empties and removes the staging directory (idempotent). */
export async function clearReadAhead(stageDir: string): Promise<void> {
  await rm(stageDir, { recursive: true, force: true });
}

/**
 * Stages the segments from `fromLsn` to `toLsn` in order, keeping at most `depth` staged ahead of
 * replay, until every one is staged and taken, or `signal` aborts. Never throws for a segment it
 * could not stage: restore_command fetches it itself. Leaves the staging directory empty.
 */
export async function runReadAhead(opts: ReadAheadOptions): Promise<ReadAheadStats> {
  const stats: ReadAheadStats = { staged: 0, consumed: 0, discarded: 0, skipped: 0 };
  const pollMs = opts.pollMs ?? 10;
  await clearReadAhead(opts.stageDir);
  await mkdir(opts.stageDir, { mode: 0o700 });
  if (opts.owner) await chown(opts.stageDir, opts.owner.uid, opts.owner.gid);
  const pending = new Map<string, ArchivedSegment>(); // staged, not yet taken
  const settle = async () => {
    // Replay's position first: a segment still present after it was read is one the startup
    // process did not take before replaying past it (it takes a segment before replaying it).
    const replay = opts.replayLsn();
    const present = new Set(await stagedNames(opts.stageDir));
    for (const [name, segment] of pending) {
      if (!present.has(name)) {
        pending.delete(name);
        stats.consumed++;
      } else if (replay !== undefined && compareLsn(segment.endLsn, replay) <= 0) {
        // Replay fetched it itself before it was staged: it will never be asked for again.
        await rm(join(opts.stageDir, name), { force: true });
        pending.delete(name);
        stats.discarded++;
      }
    }
  };
  try {
    const { segments, depth } = segmentsToStage(opts.archiveDir, opts);
    for (const segment of segments) {
      for (;;) {
        if (opts.signal.aborted) return stats;
        await settle();
        if (pending.size < depth) break;
        await pause(pollMs, opts.signal);
      }
      const replay = opts.replayLsn();
      if (replay !== undefined && compareLsn(segment.endLsn, replay) <= 0) continue; // already replayed
      const source = join(opts.archiveDir, segment.fileName);
      const temporary = join(opts.stageDir, `.${segment.fileName}.partial`);
      try {
        const expected = (await stat(source)).size;
        await copyFile(source, temporary);
        if ((await stat(temporary)).size !== expected) throw new Error('short copy');
        if (opts.owner) await chown(temporary, opts.owner.uid, opts.owner.gid);
        await rename(temporary, join(opts.stageDir, segment.fileName));
        pending.set(segment.fileName, segment);
        stats.staged++;
      } catch {
        await rm(temporary, { force: true });
        stats.skipped++;
      }
    }
    // Wait for the last staged segments to be taken (or passed), so none is left behind.
    while (pending.size > 0 && !opts.signal.aborted) {
      await settle();
      if (pending.size > 0) await pause(pollMs * 5, opts.signal);
    }
    return stats;
  } finally {
    await clearReadAhead(opts.stageDir);
  }
}
