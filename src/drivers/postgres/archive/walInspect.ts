// Reads the WAL archive with pg_waldump to find what went wrong, where to stop (docs/runbooks/delayed-replica-pitr.md
// step 2): which transaction deleted, truncated or dropped data, its commit LSN and commit time.
// pg_waldump's output is streamed line by line: a large DELETE prints one line per row.
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { createInterface } from 'node:readline';
import { formatLsn, parseLsn } from '../../../common/lsn';
import { isoTimeMicros } from '../../../common/recoveryTarget';
import { withSession, type PgEndpoint } from '../session';
import { DEFAULT_PG_BIN_DIR } from '../../../config/binDir';
import { endedBefore, parseRunningXacts } from './xidEndBisect';
import { narrowSearch, type FoundMark } from './archiveBisect';
import { archiveFilesOf, type ArchiveSource } from './archiveFiles';
import type { ArchiveSearchStats } from '../../../contract/operations/pitrSteps';

export interface WalDumpOptions {
  binDir?: string;
  signal?: AbortSignal;
}

const SEGMENT_NAME = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;

export interface ArchivedSegment {
  fileName: string;
  timeline: number;
  segmentNumber: bigint;
  startLsn: string;
  /** First LSN after the segment. */
  endLsn: string;
  /** When the file was archived (its modification time). */
  archivedAt: string;
}

/** Complete WAL segment files in the archive (no .tmp, .partial, .backup or .history), by timeline then position. */
export function listArchivedSegments(archive: ArchiveSource): ArchivedSegment[] {
  if (typeof archive === 'string' && !isAbsolute(archive))
    throw new Error(`WAL archive directory ${JSON.stringify(archive)} must be an absolute path`);
  const segments: ArchivedSegment[] = [];
  for (const file of archiveFilesOf(archive, { histories: false }).files) {
    const fileName = file.name;
    const match = SEGMENT_NAME.exec(fileName);
    if (!match) continue;
    // An archived segment is always whole; its size is the cluster's wal_segment_size.
    const size = BigInt(file.size);
    if (size < 1n << 20n || size > 1n << 30n || (size & (size - 1n)) !== 0n) continue;
    const [, tli, log, seg] = match as unknown as [string, string, string, string];
    const start = (BigInt(`0x${log}`) << 32n) + BigInt(`0x${seg}`) * size;
    segments.push({
      fileName,
      timeline: parseInt(tli, 16),
      segmentNumber: start / size,
      startLsn: formatLsn(start),
      endLsn: formatLsn(start + size),
      archivedAt: file.mtime.toISOString(),
    });
  }
  return segments.sort(
    (a, b) =>
      a.timeline - b.timeline || (a.segmentNumber < b.segmentNumber ? -1 : a.segmentNumber > b.segmentNumber ? 1 : 0),
  );
}

/** The end of the newest segment on the newest timeline: no target beyond it can be reached yet. */
export function archiveEndLsn(archiveDir: string): string | undefined {
  return listArchivedSegments(archiveDir).at(-1)?.endLsn;
}

interface SegmentRun {
  timeline: number;
  first: ArchivedSegment;
  last: ArchivedSegment;
}

/** Contiguous runs pg_waldump can read in one go; an older timeline only up to where the next one starts. */
function scanRuns(segments: ArchivedSegment[], keep: (s: ArchivedSegment) => boolean): SegmentRun[] {
  // `segments` come in WAL order by timeline (listArchivedSegments), so what is kept is still in order.
  const timelines = [...new Set(segments.map((s) => s.timeline))];
  const nextTimelineStart = new Map(
    timelines.map((t, i) => [t, segments.find((s) => s.timeline === timelines[i + 1])?.segmentNumber]),
  );
  return runsOf(
    segments.filter((s) => {
      const next = nextTimelineStart.get(s.timeline);
      return keep(s) && (next === undefined || s.segmentNumber < next);
    }),
  );
}

export interface WalRecord {
  rmgr: string;
  xid: number;
  lsn: string;
  desc: string;
}

const RECORD_LINE =
  /^rmgr: (\S+)\s+len \(rec\/tot\):\s*\d+\/\s*\d+, tx:\s*(\d+), lsn: ([0-9A-F]+\/[0-9A-F]+), prev [0-9A-F]+\/[0-9A-F]+, desc: (.*)$/;
/** pg_waldump ends with this when the last segment was not switched: the end of WAL, not a failure. */
const END_OF_WAL = /error in WAL record at|invalid record length|could not find a valid record/;

/**
 * pg_waldump only reads files: a worker running as root runs it as the archive directory's owner
 * (the server that archives into it, on this host or in a container with a uid of its own).
 */
function readerIds(archiveDir: string): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const { uid, gid } = statSync(archiveDir);
  return uid === 0 ? undefined : { uid, gid };
}

/** Runs pg_waldump over one run of segments; `onRecord` returning true stops early. */
async function dumpRun(
  archiveDir: string,
  run: SegmentRun,
  args: string[],
  onRecord: (r: WalRecord) => boolean | void,
  opts: WalDumpOptions,
): Promise<boolean> {
  const ids = readerIds(archiveDir);
  const child = spawn(
    join(opts.binDir ?? DEFAULT_PG_BIN_DIR, 'pg_waldump'),
    [`--path=${archiveDir}`, `--timeline=${run.timeline}`, ...args, run.first.fileName, run.last.fileName],
    {
      uid: ids?.uid,
      gid: ids?.gid,
      cwd: '/tmp',
      signal: opts.signal,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Commit times are printed in pg_waldump's local zone; UTC makes them unambiguous.
      env: { ...process.env, TZ: 'UTC', LC_ALL: 'C' },
    },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    if (stderr.length < 10_000) stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolveExit, reject) => {
    child.on('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT'
          ? new Error(
              `pg_waldump was not found in ${opts.binDir ?? DEFAULT_PG_BIN_DIR} on this worker (is PostgreSQL installed? set PGOPS_PG_BIN)`,
            )
          : err,
      ),
    );
    child.on('close', (code) => resolveExit(code));
  });
  exited.catch(() => undefined); // rejected before it is awaited below: not an unhandled rejection
  let stopped = false;
  for await (const line of createInterface({ input: child.stdout })) {
    if (stopped) continue;
    const match = RECORD_LINE.exec(line);
    if (!match) continue;
    const [, rmgr, xid, lsn, desc] = match as unknown as [string, string, string, string, string];
    if (onRecord({ rmgr, xid: Number(xid), lsn: formatLsn(parseLsn(lsn)), desc })) {
      stopped = true;
      child.kill('SIGTERM');
    }
  }
  const code = await exited;
  if (!stopped && code !== 0 && !(code === 1 && END_OF_WAL.test(stderr))) {
    throw new Error(
      `pg_waldump over ${run.first.fileName}..${run.last.fileName} in ${archiveDir} failed (exit ${code}): ${stderr.trim()}`,
    );
  }
  return stopped;
}

interface ScanFilter {
  rmgrs: string[];
  /** Only this timeline's segments (a section of one branch of the history), not the newest path. */
  timeline?: number;
  xid?: number;
  afterLsn?: string;
  /** Only segments that start at or before this position (records after it in the last one still pass). */
  throughLsn?: string;
  notArchivedBefore?: number;
}

/** What both scans share: the segment runs to read, pg_waldump's filter arguments, and the afterLsn cut. */
function planScan(archiveDir: string, filter: ScanFilter, onRecord: (r: WalRecord) => boolean | void) {
  const after = filter.afterLsn === undefined ? undefined : parseLsn(filter.afterLsn);
  const through = filter.throughLsn === undefined ? undefined : parseLsn(filter.throughLsn);
  const segments = listArchivedSegments(archiveDir).filter(
    (s) => filter.timeline === undefined || s.timeline === filter.timeline,
  );
  const runs = scanRuns(
    segments,
    (s) =>
      (after === undefined || parseLsn(s.endLsn) > after) &&
      (through === undefined || parseLsn(s.startLsn) <= through) &&
      (filter.notArchivedBefore === undefined || Date.parse(s.archivedAt) >= filter.notArchivedBefore),
  );
  const args = [
    ...filter.rmgrs.map((r) => `--rmgr=${r}`),
    ...(filter.xid === undefined ? [] : [`--xid=${filter.xid}`]),
  ];
  // Segments are skipped whole; records of the first one that lie before afterLsn are skipped here.
  const onLaterRecord =
    after === undefined ? onRecord : (r: WalRecord) => (parseLsn(r.lsn) < after ? false : onRecord(r));
  return { segments, runs, args, onLaterRecord };
}

/** Streams the archive's records through `onRecord` in WAL order; true from it stops the scan. */
export async function scanArchive(
  archiveDir: string,
  filter: ScanFilter,
  onRecord: (r: WalRecord) => boolean | void,
  opts: WalDumpOptions = {},
): Promise<void> {
  const { runs, args, onLaterRecord } = planScan(archiveDir, filter, onRecord);
  for (const run of runs) {
    if (await dumpRun(archiveDir, run, args, onLaterRecord, opts)) return;
  }
}

/**
 * The start of the last record archived on `timeline` (read from its last segment): recovery
 * reaches an LSN target only by reading a record that starts at or after it, so a target past
 * this one ends recovery before its target, even inside the last archived segment.
 */
export async function lastRecordStart(
  archiveDir: string,
  timeline: number,
  opts: WalDumpOptions = {},
): Promise<string | undefined> {
  const last = listArchivedSegments(archiveDir)
    .filter((s) => s.timeline === timeline)
    .at(-1);
  if (!last) return undefined;
  let start: string | undefined;
  await scanArchive(archiveDir, { rmgrs: [], timeline, afterLsn: last.startLsn }, (r) => void (start = r.lsn), opts);
  return start;
}

export interface TransactionEnd {
  outcome: 'commit' | 'abort';
  /** The top-level xid (for COMMIT PREPARED, the prepared transaction's). */
  xid: number;
  lsn: string;
  /** Commit (or abort) time, primary's clock, ISO with microseconds. */
  time: string;
  /** Relation files dropped at commit, as db/relfilenode keys. */
  droppedFiles: string[];
  /** Relation OIDs whose statistics were dropped: DROPped relations, or a rewrite's transient table. */
  droppedStatsOids: number[];
  subxacts: number[];
}

const TX_END =
  /^(COMMIT|ABORT)(?:_PREPARED)? (?:(\d+): )?(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?) ([A-Za-z][A-Za-z0-9+-]*)(.*)$/;
const FILE_PATH = /^(?:base\/(\d+)\/(\d+)|global\/(\d+)|pg_tblspc\/\d+\/[^/]+\/(\d+)\/(\d+))$/;

/** 'base/5/16384' → '5/16384' (shared catalogs in global/ are database 0). */
export function fileKey(path: string): string | undefined {
  const m = FILE_PATH.exec(path);
  if (!m) return undefined;
  return m[3] !== undefined ? `0/${m[3]}` : m[1] !== undefined ? `${m[1]}/${m[2]}` : `${m[4]}/${m[5]}`;
}

export function parseTransactionEnd(record: WalRecord): TransactionEnd | undefined {
  if (record.rmgr !== 'Transaction') return undefined;
  const m = TX_END.exec(record.desc);
  if (!m) return undefined;
  const [, kind, preparedXid, date, clock, zone, rest] = m as unknown as [
    string,
    string,
    string | undefined,
    string,
    string,
    string,
    string,
  ];
  if (zone !== 'UTC' && zone !== 'GMT')
    throw new Error(`pg_waldump printed a commit time in zone ${zone}, expected UTC`);
  const part = (label: string) =>
    rest
      .split('; ')
      .find((p) => p.startsWith(`${label}: `))
      ?.slice(label.length + 2)
      .trim()
      .split(/\s+/) ?? [];
  return {
    outcome: kind === 'COMMIT' ? 'commit' : 'abort',
    xid: preparedXid === undefined ? record.xid : Number(preparedXid),
    lsn: record.lsn,
    time: `${date}T${clock.includes('.') ? clock : `${clock}.000000`}Z`,
    droppedFiles: part('rels')
      .map(fileKey)
      .filter((k): k is string => k !== undefined),
    // 'kind/db/oid'; kind 2 is a relation's statistics.
    droppedStatsOids: part('dropped stats')
      .map((s) => s.split('/'))
      .filter((p) => p[0] === '2')
      .map((p) => Number(p[2])),
    subxacts: part('subxacts').map(Number),
  };
}

export interface CommitLocation {
  commitLsn: string;
  commitTime: string;
}

/** Segments in the first and the largest pg_waldump window when the archive is searched from its newest end. */
const NEWEST_FIRST_WINDOWS = { first: 1, largest: 16 };

/**
 * Like scanArchive, but in windows from the newest segment back to the oldest (records within a
 * window still in WAL order): one segment, then two, four… up to sixteen. For a record that
 * exists once, such as a transaction's commit: an incident is usually recent, and the delayed
 * replica hours behind, so the search reads the newest WAL first instead of all of it. Each
 * window also reads the segment after it, so a record that starts in its last segment and ends
 * in the next one is read whole.
 */
export async function scanArchiveNewestFirst(
  archiveDir: string,
  filter: Omit<ScanFilter, 'notArchivedBefore'>,
  onRecord: (r: WalRecord) => boolean | void,
  opts: WalDumpOptions = {},
): Promise<void> {
  const { segments, runs, args, onLaterRecord } = planScan(archiveDir, filter, onRecord);
  const onTimeline = (timeline: number, segmentNumber: bigint) =>
    segments.find((s) => s.timeline === timeline && s.segmentNumber === segmentNumber);
  let size = NEWEST_FIRST_WINDOWS.first;
  for (const run of runs.reverse()) {
    let last = run.last.segmentNumber;
    while (last >= run.first.segmentNumber) {
      const firstNumber =
        last - BigInt(size - 1) > run.first.segmentNumber ? last - BigInt(size - 1) : run.first.segmentNumber;
      const window: SegmentRun = {
        timeline: run.timeline,
        first: onTimeline(run.timeline, firstNumber)!,
        last: (last < run.last.segmentNumber ? onTimeline(run.timeline, last + 1n) : undefined) ?? run.last,
      };
      if (await dumpRun(archiveDir, window, args, onLaterRecord, opts)) return;
      last = firstNumber - 1n;
      size = Math.min(size * 2, NEWEST_FIRST_WINDOWS.largest);
    }
  }
}

/** The segments of `runs` one by one, in WAL order. */
function segmentsOf(segments: ArchivedSegment[], runs: SegmentRun[]): ArchivedSegment[] {
  return runs.flatMap((run) =>
    segments.filter(
      (s) =>
        s.timeline === run.timeline &&
        s.segmentNumber >= run.first.segmentNumber &&
        s.segmentNumber <= run.last.segmentNumber,
    ),
  );
}

/** Segments in WAL order regrouped into runs pg_waldump can read in one go. */
function runsOf(ordered: ArchivedSegment[]): SegmentRun[] {
  const runs: SegmentRun[] = [];
  for (const segment of ordered) {
    const run = runs.at(-1);
    if (run && run.timeline === segment.timeline && segment.segmentNumber === run.last.segmentNumber + 1n)
      run.last = segment;
    else runs.push({ timeline: segment.timeline, first: segment, last: segment });
  }
  return runs;
}

/** The first mark (`markOf` not undefined) in `ordered[from…to]`, read only up to it, and its segment's index. */
async function firstMark<T>(
  archiveDir: string,
  ordered: ArchivedSegment[],
  range: { from: number; to: number },
  args: string[],
  markOf: (record: WalRecord) => T | undefined,
  opts: WalDumpOptions,
): Promise<FoundMark<T> | undefined> {
  let found: FoundMark<T> | undefined;
  for (const run of runsOf(ordered.slice(range.from, range.to + 1))) {
    const stopped = await dumpRun(
      archiveDir,
      run,
      args,
      (record) => {
        const mark = markOf(record);
        if (mark === undefined) return false;
        const index = ordered.findIndex((s) => s.timeline === run.timeline && segmentHolds(s, record.lsn));
        found = { index: Math.max(index, range.from), mark };
        return true;
      },
      opts,
    );
    if (stopped) return found;
  }
  return undefined;
}

/** The segment holds the position `lsn`. */
function segmentHolds(segment: ArchivedSegment, lsn: string): boolean {
  const at = parseLsn(lsn);
  return parseLsn(segment.startLsn) <= at && at < parseLsn(segment.endLsn);
}

/**
 * A reader of `ordered[from…to]` in WAL order that stops where `onRecord` says so, and counts
 * the segments it read up to there. True when it stopped.
 */
function orderedReader(
  archiveDir: string,
  ordered: ArchivedSegment[],
  args: string[],
  onRecord: (r: WalRecord) => boolean | void,
  stats: ArchiveSearchStats,
  opts: WalDumpOptions,
): (from: number, to: number, signal?: AbortSignal) => Promise<boolean> {
  let stopLsn: string | undefined;
  const watch = (record: WalRecord) => {
    const stop = onRecord(record) === true;
    if (stop) stopLsn = record.lsn;
    return stop;
  };
  return async (from, to, signal) => {
    const runOpts = signal ? { ...opts, signal: opts.signal ? AbortSignal.any([opts.signal, signal]) : signal } : opts;
    for (const run of runsOf(ordered.slice(from, to + 1))) {
      const stopped = await dumpRun(archiveDir, run, args, watch, runOpts);
      const at = stopped ? stopLsn : undefined;
      const last =
        at === undefined ? undefined : ordered.find((s) => s.timeline === run.timeline && segmentHolds(s, at));
      stats.segmentsRead += Number((last ?? run.last).segmentNumber - run.first.segmentNumber) + 1;
      if (stopped) return true;
    }
    return false;
  };
}

/** Up to this many segments, a search reads them all instead of bisecting. */
const BISECT_FROM_SEGMENTS = 4;
/** Segments read from the first one archived after a commit time before the search falls back. */
const HINT_READ_LIMIT = 8;

/**
 * Where the transaction `xid` committed in the archive, or undefined (not archived yet, aborted,
 * or unknown), however much WAL the primary archived since:
 * - with the primary's commit time (`commitTimeHint`, from track_commit_timestamp), from the
 *   first segment archived at or after that time: every segment archived before it was complete
 *   before the commit. It reads the archiver's lag and the commit's segment, and no probe.
 * - otherwise the newest segment first (an incident is usually recent, and the delayed replica
 *   hours behind), then a bisection on the archive's RUNNING_XACTS snapshots (xidEndBisect.ts).
 * Segment files and commit times may disagree on the clock (an archive on another host, files
 * copied without their times): if the commit is not within a few segments of where the first
 * way starts, the second way searches, and the answer never depends on the clocks.
 */
export async function findCommit(
  archiveDir: string,
  xid: string,
  opts: WalDumpOptions & {
    afterLsn?: string;
    /** Search this timeline's segments only. */
    timeline?: number;
    stats?: ArchiveSearchStats;
    /** When the primary says the transaction committed (ISO), if it keeps commit times. */
    commitTimeHint?: Promise<string | undefined>;
  } = {},
): Promise<CommitLocation | undefined> {
  if (!/^[0-9]{1,20}$/.test(xid))
    throw new Error(`transaction ID ${JSON.stringify(xid.slice(0, 30))} must be decimal digits`);
  const xid32 = Number(BigInt(xid) & 0xffffffffn); // WAL records carry 32-bit xids
  const stats = opts.stats ?? { probes: 0, segmentsRead: 0 };
  let found: CommitLocation | undefined;
  const { segments, runs, args, onLaterRecord } = planScan(
    archiveDir,
    { rmgrs: ['Transaction'], xid: xid32, afterLsn: opts.afterLsn, timeline: opts.timeline },
    (record) => {
      const end = parseTransactionEnd(record);
      if (end?.xid !== xid32) return false;
      if (end.outcome === 'commit') found = { commitLsn: end.lsn, commitTime: end.time };
      return true; // a transaction ends once
    },
  );
  const ordered = segmentsOf(segments, runs);
  const read = orderedReader(archiveDir, ordered, args, onLaterRecord, stats, opts);
  const newest = ordered.length - 1;
  if (newest < 0) return undefined;
  // The newest segment is read while the hint is awaited; dropped if the hint points elsewhere.
  const newestAbort = new AbortController();
  const newestRead = read(newest, newest, newestAbort.signal).catch((err: unknown) => {
    if (newestAbort.signal.aborted) return false;
    throw err;
  });
  const hint = await opts.commitTimeHint;
  const hintMs = hint === undefined ? NaN : Date.parse(hint);
  const first = Number.isNaN(hintMs) ? -1 : ordered.findIndex((s) => Date.parse(s.archivedAt) >= Math.floor(hintMs));
  let inNewest: boolean;
  if (first >= 0 && first < newest) {
    newestAbort.abort();
    if (await newestRead) return found; // it had found the commit already
    if (await read(first, Math.min(newest, first + HINT_READ_LIMIT))) return found;
    // The clocks disagree, the archiver lagged far behind, or the files' times were reset by a
    // copy: searched as without the hint, which does not depend on them.
    inNewest = await read(newest, newest);
  } else inNewest = await newestRead;
  if (inNewest || newest === 0) return found;
  if (newest <= BISECT_FROM_SEGMENTS) {
    await read(0, newest - 1);
    return found;
  }
  // Segment `newest - 1` is the last one bisected; the newest is read whole above.
  const range = await narrowSearch(
    newest,
    (from, to) =>
      firstMark(archiveDir, ordered, { from, to }, ['--rmgr=Standby'], (r) => parseRunningXacts(r.desc), opts),
    (snapshot) => endedBefore(xid32, snapshot),
  );
  stats.probes += range.probes;
  // Unless a snapshot ends the range, the newest segment too: an end record that starts in the
  // range's last segment and crosses into it is read whole.
  await read(range.from, range.toProven ? range.to : newest);
  return found;
}

/**
 * The record a time target stops before: the first commit or abort whose time is at or after
 * the target (inclusive=false) or after it (inclusive=true), as PostgreSQL's recoveryStopsBefore.
 * From a replica hours behind, the archive is bisected on the first commit time of its segments:
 * commit times follow the WAL (each is taken just before its record is inserted), so only the
 * segments around the target are read, not the hours of WAL between the replica and it.
 */
export async function findTimeTargetStop(
  archiveDir: string,
  time: string,
  inclusive: boolean,
  opts: WalDumpOptions & { afterLsn?: string; timeline?: number; stats?: ArchiveSearchStats } = {},
): Promise<TransactionEnd | undefined> {
  const target = isoTimeMicros(time);
  if (target === undefined) throw new Error(`${JSON.stringify(time)} is not an ISO time with a zone`);
  const stats = opts.stats ?? { probes: 0, segmentsRead: 0 };
  const stopsAt = (end: TransactionEnd) => {
    const at = isoTimeMicros(end.time);
    return at !== undefined && (inclusive ? at > target : at >= target);
  };
  let found: TransactionEnd | undefined;
  const { segments, runs, args, onLaterRecord } = planScan(
    archiveDir,
    { rmgrs: ['Transaction'], afterLsn: opts.afterLsn, timeline: opts.timeline },
    (record) => {
      const end = parseTransactionEnd(record);
      if (!end || !stopsAt(end)) return false;
      found = end;
      return true;
    },
  );
  const ordered = segmentsOf(segments, runs);
  const read = orderedReader(archiveDir, ordered, args, onLaterRecord, stats, opts);
  let from = 0;
  if (ordered.length > BISECT_FROM_SEGMENTS) {
    const range = await narrowSearch(
      ordered.length,
      (first, last) =>
        firstMark(archiveDir, ordered, { from: first, to: last }, ['--rmgr=Transaction'], parseTransactionEnd, opts),
      stopsAt,
    );
    stats.probes += range.probes;
    from = range.from;
  }
  // To the end if need be: reading stops at the first record that qualifies.
  await read(from, ordered.length - 1);
  return found;
}

/** The LSN of the first restore point called `name` (pg_create_restore_point) after `afterLsn`. */
export async function findRestorePoint(
  archiveDir: string,
  name: string,
  opts: WalDumpOptions & { afterLsn?: string; timeline?: number } = {},
): Promise<string | undefined> {
  let found: string | undefined;
  await scanArchive(
    archiveDir,
    { rmgrs: ['XLOG'], afterLsn: opts.afterLsn, timeline: opts.timeline },
    (record) => {
      if (record.desc.trim() !== `RESTORE_POINT ${name}`) return false;
      found = record.lsn;
      return true;
    },
    opts,
  );
  return found;
}

export interface RelationInfo {
  oid: number;
  name: string;
  kind: string;
}

/** relfilenode → relation, from pg_class of the endpoint's database: keys '<db oid>/<relfilenode>'. */
export async function relationMap(endpoint: PgEndpoint): Promise<Map<string, RelationInfo>> {
  return withSession(endpoint, async (client) => {
    const rows = (
      await client.query<{ key: string; oid: number; name: string; kind: string }>(
        `SELECT CASE WHEN c.relisshared THEN '0' ELSE (SELECT oid FROM pg_database WHERE datname = current_database())::text END
                || '/' || pg_relation_filenode(c.oid)::text AS key,
              c.oid::int8 AS oid, n.nspname || '.' || c.relname AS name, c.relkind::text AS kind
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE pg_relation_filenode(c.oid) IS NOT NULL`,
      )
    ).rows;
    return new Map(rows.map((r) => [r.key, { oid: Number(r.oid), name: r.name, kind: r.kind }]));
  });
}
