// The WAL read-ahead run inside the replica's container (a Kubernetes replica, whose pg_wal the
// worker does not see): the same staging as walReadAhead.ts, done by a small POSIX sh loop that
// one long-lived exec starts in the PostgreSQL container. The loop copies the next segments from
// the archive as the container mounts it into pg_wal/pgops_readahead, each under a temporary name
// and renamed when whole, owned by pg_wal's owner, at most `depth` (and MAX_STAGED_BYTES) ahead.
//
// The worker keeps it alive by rewriting a heartbeat file in the staging directory through short
// execs ("<run id> <counter> <segment being replayed>"): the loop stops itself, removing what it
// staged, when the heartbeat goes stale (a dead worker), when another run's id is in it (a newer
// run took the directory over), when the worker writes "stop", or when the directory is gone.
// Nothing is ever put in the background: the container's PID 1 is the postmaster, which takes a
// child it did not start and that dies of a signal for a crashed backend (and restarts every
// server process); the loop's children are waited for, so none is ever left to it.
import { randomBytes } from 'node:crypto';
import { parseLsn } from '../../../common/lsn';
import { plainPathProblem } from '../../../common/shellPaths';
import { delay } from '../../waiting';
import type { ReadAheadStats } from '../../../contract/operations/pitrSteps';
import type { ArchiveSource } from './archiveFiles';
import { segmentsToStage, type ReadAheadRange } from './walReadAhead';

/** A command run in the replica's container as an argument array (pods/exec); rejects when it cannot be run. */
export type ContainerCommand = (
  command: string[],
  opts: { timeoutMs: number; signal?: AbortSignal },
) => Promise<{ code: number; stdout: string; stderr: string }>;

/** The heartbeat file inside the staging directory. */
export const HEARTBEAT_FILE = '.heartbeat';
/** How often the worker rewrites the heartbeat. */
export const HEARTBEAT_INTERVAL_MS = 5_000;
/** The loop stops itself when the heartbeat has not changed for this long (the worker is gone). */
export const HEARTBEAT_STALE_SECONDS = 30;
/** The line the loop prints when it ends. */
const RESULT_LINE = /^pgops-readahead staged=(\d+) consumed=(\d+) discarded=(\d+) skipped=(\d+) reason=([a-z-]+)/m;
const SEGMENT_FILE = /^[0-9A-F]{24}$/;
const RUN_ID = /^[a-z0-9]{1,32}$/;

/**
 * The loop (POSIX sh; dash, bash and busybox run it). Arguments: archive directory, staging
 * directory, run id, first and last segment file names (same timeline), depth, stale seconds, and
 * where the processes are listed (/proc; a test's own directory when the loop runs on a host).
 * It prints one result line when it ends and always exits 0 once started.
 */
export const POD_READ_AHEAD_SCRIPT = `trap '' HUP PIPE
archive=$1 stage=$2 id=$3 first=$4 last=$5 depth=$6 stale=$7 proc=\${8:-/proc}
hb=$stage/.heartbeat
staged=0 consumed=0 discarded=0 skipped=0 pending= npending=0 posk= lastcnt= own= sp= ticks=0
finish() {
  case $1 in stopped | stale)
    for s in $pending; do [ -e "$stage/$s" ] || consumed=$((consumed + 1)); done ;;
  esac
  rm -f "$stage/.$id."* "$hb.$id" 2>/dev/null
  case $1 in taken-over | removed) ;; *) [ -z "$own" ] || rm -rf "$stage" ;; esac
  echo "pgops-readahead staged=$staged consumed=$consumed discarded=$discarded skipped=$skipped reason=$1 $2"
  exit 0
}
k() { K=$((0x\${1#????????})); }
alive() {
  [ -f "$hb" ] || finish removed
  read -r hid hcnt hpos <"$hb" || finish removed
  [ "$hid" = "$id" ] || finish taken-over
  [ "$hcnt" != stop ] || finish stopped
  case $hpos in "$tli"????????????????) k "$hpos"; [ -n "$posk" ] && [ "$K" -le "$posk" ] || posk=$K ;; esac
  # The clock and the startup process are read every fourth look (each costs a program run).
  ticks=$((ticks + 1))
  [ $((ticks % 4)) = 1 ] || return 0
  now=$(date +%s)
  if [ "$hcnt" != "$lastcnt" ]; then lastcnt=$hcnt seen=$now; fi
  [ $((now - seen)) -lt "$stale" ] || finish stale
  replaying
}
# The segment the startup process reads now, from its title ("postgres: startup recovering <segment>"):
# what replay passed is known before the worker's next heartbeat says so.
replaying() {
  if [ -z "$sp" ] || [ ! -r "$proc/$sp/cmdline" ]; then
    sp=
    for p in "$proc"/[0-9]*; do
      case $(tr '\\0' ' ' <"$p/cmdline" 2>/dev/null) in "postgres: startup"*) sp=\${p##*/} && break ;; esac
    done
    [ -n "$sp" ] || return 0
  fi
  t=$(tr '\\0' ' ' <"$proc/$sp/cmdline" 2>/dev/null)
  case $t in
  *"recovering $tli"????????????????*)
    t=\${t#*recovering }
    k "\${t%% *}"
    [ -n "$posk" ] && [ "$K" -le "$posk" ] || posk=$K
    ;;
  esac
}
settle() {
  alive
  keep= npending=0
  for s in $pending; do
    if [ ! -e "$stage/$s" ]; then
      consumed=$((consumed + 1))
    else
      k "$s"
      if [ -n "$posk" ] && [ "$K" -lt "$posk" ]; then
        rm -f "$stage/$s"
        discarded=$((discarded + 1))
      else
        keep="$keep $s" npending=$((npending + 1))
      fi
    fi
  done
  pending=$keep
}
tli=\${first%????????????????}
[ -d "$archive" ] || finish no-archive "$archive"
wal=\${stage%/*}
owner=$(ls -ldn -- "$wal" | awk '{ print $3 ":" $4 }')
me=$(id -u)
chown_to=
if [ "$me" != "\${owner%%:*}" ]; then
  [ "$me" = 0 ] || finish not-owner "uid=$me pg_wal=$owner"
  chown_to=$owner
fi
[ -d "$stage" ] || mkdir -m 700 "$stage" 2>/dev/null || [ -d "$stage" ] || finish no-stage-dir
own=1
[ -z "$chown_to" ] || chown "$chown_to" "$stage" || finish not-owner "chown $chown_to"
# The directory is this run's from here (a loop still running there sees another id and ends).
echo "$id 0 -" >"$hb.$id" && mv -f "$hb.$id" "$hb" || finish no-stage-dir
seen=$(date +%s) lastcnt=0
LC_ALL=C ls -- "$archive" | LC_ALL=C grep -E "^$tli"'[0-9A-F]{16}$' | LC_ALL=C sort |
  LC_ALL=C awk -v f="$first" -v l="$last" '($0 "") >= (f "") && ($0 "") <= (l "")' >"$stage/.$id.todo"
# What an earlier loop left: a whole segment of this range (renamed only when whole, the archive's
# size) is kept for the replay (the one run in the pod a restart replaced staged it); anything else goes.
for f in "$stage"/* "$stage"/.[!.]*; do
  n=\${f##*/}
  case $f in "$hb" | "$stage/.$id.todo") continue ;; esac
  if [ -f "$f" ] && LC_ALL=C grep -qx "$n" "$stage/.$id.todo" &&
    [ "$(wc -c <"$f")" -eq "$(wc -c <"$archive/$n")" ]; then
    pending="$pending $n" npending=$((npending + 1)) staged=$((staged + 1))
  else
    rm -rf "$f"
  fi
done
while read -r seg; do
  case " $pending " in *" $seg "*) continue ;; esac
  while :; do
    settle
    [ "$npending" -lt "$depth" ] && break
    sleep 0.05
  done
  k "$seg"
  if [ -n "$posk" ] && [ "$K" -lt "$posk" ]; then continue; fi
  tmp=$stage/.$id.$seg.partial
  if cp -- "$archive/$seg" "$tmp" 2>/dev/null &&
    [ "$(wc -c <"$tmp")" -eq "$(wc -c <"$archive/$seg")" ] &&
    { [ -z "$chown_to" ] || chown "$chown_to" "$tmp"; } &&
    mv -f "$tmp" "$stage/$seg"; then
    pending="$pending $seg" npending=$((npending + 1)) staged=$((staged + 1))
  else
    rm -f "$tmp"
    skipped=$((skipped + 1))
  fi
done <"$stage/.$id.todo"
while [ -n "$pending" ]; do
  settle
  [ -z "$pending" ] || sleep 0.2
done
finish done
`;

/** Why the loop ended, with what it did. */
export interface PodReadAheadResult extends ReadAheadStats {
  reason: string;
  detail?: string;
}

export function parsePodReadAheadResult(stdout: string): PodReadAheadResult | undefined {
  const match = RESULT_LINE.exec(stdout);
  if (!match) return undefined;
  const [, staged, consumed, discarded, skipped, reason] = match as unknown as string[];
  const detail = stdout
    .slice(match.index + match[0].length)
    .split('\n')[0]!
    .trim();
  return {
    staged: Number(staged),
    consumed: Number(consumed),
    discarded: Number(discarded),
    skipped: Number(skipped),
    reason: reason!,
    ...(detail && { detail }),
  };
}

/** The loop's command line (argument array: no shell parses any of the values). */
export function podReadAheadCommand(args: {
  archiveDir: string;
  stageDir: string;
  runId: string;
  first: string;
  last: string;
  depth: number;
  staleSeconds?: number;
  /** Where the startup process is looked for (default /proc: the container's own processes). */
  procDir?: string;
}): string[] {
  const stale = args.staleSeconds ?? HEARTBEAT_STALE_SECONDS;
  for (const [what, path] of [
    ['archive', args.archiveDir],
    ['staging', args.stageDir],
    ['process', args.procDir ?? '/proc'],
  ] as const) {
    const problem = plainPathProblem(path, 'the read-ahead');
    if (problem) throw new Error(`the read-ahead's ${what} directory ${problem}`);
  }
  if (!RUN_ID.test(args.runId)) throw new Error(`read-ahead run id ${JSON.stringify(args.runId)} is not plain`);
  if (
    !SEGMENT_FILE.test(args.first) ||
    !SEGMENT_FILE.test(args.last) ||
    args.first.slice(0, 8) !== args.last.slice(0, 8)
  )
    throw new Error(`read-ahead segments ${args.first}..${args.last} are not two segment names of one timeline`);
  if (!Number.isInteger(args.depth) || args.depth < 1 || args.depth > 64)
    throw new Error(`read-ahead depth ${args.depth} is not 1..64`);
  if (!Number.isInteger(stale) || stale < 2) throw new Error(`read-ahead stale time ${stale} s is not 2 s or more`);
  return [
    'sh',
    '-c',
    POD_READ_AHEAD_SCRIPT,
    'pgops-readahead',
    args.archiveDir,
    args.stageDir,
    args.runId,
    args.first,
    args.last,
    String(args.depth),
    String(stale),
    args.procDir ?? '/proc',
  ];
}

/** Rewrites the heartbeat (only while the staging directory exists: it never makes one). */
export function heartbeatCommand(stageDir: string, runId: string, counter: string, segment: string): string[] {
  return [
    'sh',
    '-c',
    'printf "%s %s %s\\n" "$1" "$2" "$3" >"$4.w.$1" 2>/dev/null && mv -f "$4.w.$1" "$4"',
    'pgops-readahead-heartbeat',
    runId,
    counter,
    segment,
    `${stageDir}/${HEARTBEAT_FILE}`,
  ];
}

/** Removes the staging directory (a dead worker's leftovers); a loop still running there stops. */
export function clearStageCommand(stageDir: string): string[] {
  const problem = plainPathProblem(stageDir, 'the read-ahead');
  if (problem) throw new Error(`the read-ahead's staging directory ${problem}`);
  return ['rm', '-rf', '--', stageDir];
}

/** The segment file holding `lsn` on `timeline` ('-' when unknown). */
export function segmentFileOf(timeline: number, lsn: string | undefined, segmentBytes: bigint): string {
  if (lsn === undefined) return '-';
  const segno = parseLsn(lsn) / segmentBytes;
  const perLog = 0x100000000n / segmentBytes;
  const hex = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(segno / perLog)}${hex(segno % perLog)}`;
}

export interface PodReadAheadOptions extends ReadAheadRange {
  /** The archive as the worker sees it: which segments to stage, and their size. */
  workerArchive: ArchiveSource;
  /** The archive as the container sees it. */
  archiveDir: string;
  /** pg_wal/pgops_readahead inside the container. */
  stageDir: string;
  run: ContainerCommand;
  staleSeconds?: number;
  heartbeatMs?: number;
  /** Where the loop looks for the startup process (default /proc). */
  procDir?: string;
  /** Told each time a loop starts in the container (tests, progress). */
  onLoopStarted?: (runId: string) => void;
}

/**
 * Runs the loop in the container until `signal` aborts (then it asks the loop to stop and waits
 * for its result), restarting it when the container goes away under it (a restart recreates the
 * pod). Returns the sum of what the loops reported (reason "none" when no loop reported, "failed"
 * or "refused" when none can run there), or undefined when there was nothing to stage. Never
 * throws: restore_command fetches whatever was not staged.
 */
export async function runPodReadAhead(opts: PodReadAheadOptions): Promise<PodReadAheadResult | undefined> {
  const { segments, segmentBytes, depth } = segmentsToStage(opts.workerArchive, opts);
  const first = segments[0];
  const last = segments.at(-1);
  if (!first || !last) return undefined;
  const base = randomBytes(6).toString('hex');
  const total: PodReadAheadResult = { staged: 0, consumed: 0, discarded: 0, skipped: 0, reason: 'none' };
  let attempt = 0;
  let broken = 0;
  let runId = '';
  let counter = 0;
  let beating: Promise<unknown> | undefined;
  const beat = (value?: string) =>
    opts
      .run(
        heartbeatCommand(
          opts.stageDir,
          runId,
          value ?? String(++counter),
          segmentFileOf(opts.timeline, opts.replayLsn(), BigInt(segmentBytes)),
        ),
        { timeoutMs: 10_000 },
      )
      .catch(() => undefined);
  const timer = setInterval(() => {
    if (runId && !beating) beating = beat().finally(() => (beating = undefined));
  }, opts.heartbeatMs ?? HEARTBEAT_INTERVAL_MS);
  const loopAbort = new AbortController();
  let ended = false;
  const loops = (async () => {
    while (!opts.signal.aborted) {
      runId = `${base}${++attempt}`;
      counter = 0;
      opts.onLoopStarted?.(runId);
      const command = podReadAheadCommand({
        archiveDir: opts.archiveDir,
        stageDir: opts.stageDir,
        runId,
        first: first.fileName,
        last: last.fileName,
        depth,
        staleSeconds: opts.staleSeconds,
        procDir: opts.procDir,
      });
      let refused: string | undefined;
      const ran = await opts
        .run(command, { timeoutMs: 7 * 86_400_000, signal: loopAbort.signal })
        .catch((err: unknown) => {
          // 401/403 (no pods/exec on the pod): a retry cannot help.
          if (err instanceof Error && err.name === 'PermanentDriverError') refused = err.message;
          return undefined;
        });
      if (refused !== undefined) {
        total.reason = 'refused';
        total.detail = refused.slice(0, 300);
        return;
      }
      const result = ran && parsePodReadAheadResult(ran.stdout);
      // An exit code of its own (127: no sh, say) three times: the loop cannot run in this
      // container. A status without one (the container not there yet, a restart) is retried.
      if (ran && !result && ran.code > 0 && !opts.signal.aborted && ++broken >= 3) {
        total.reason = 'failed';
        total.detail = (ran.stderr || ran.stdout).trim().split('\n')[0]?.slice(0, 200);
        return;
      }
      if (result) {
        total.staged += result.staged;
        total.consumed += result.consumed;
        total.discarded += result.discarded;
        total.skipped += result.skipped;
        total.reason = result.reason;
        if (result.detail) total.detail = result.detail;
        else delete total.detail;
        // Finished, stopped, or it cannot run here: no other attempt.
        if (!['removed', 'stale', 'taken-over'].includes(result.reason)) return;
      }
      // The container went away (a restart) or the exec broke: again in the current container.
      await delay(300, opts.signal).catch(() => undefined);
    }
  })();
  void loops.then(() => (ended = true));
  await new Promise<void>((resolve) => {
    if (opts.signal.aborted) resolve();
    else opts.signal.addEventListener('abort', () => resolve(), { once: true });
    void loops.then(() => resolve());
  });
  clearInterval(timer);
  await beating;
  // Ask the running loop to stop (it removes what it staged) and wait a little for its result.
  if (runId && !ended) await beat('stop');
  const wait = new AbortController();
  const settled = await Promise.race([
    loops.then(() => true),
    delay(10_000, wait.signal).then(
      () => false,
      () => true,
    ),
  ]);
  wait.abort();
  if (!settled) {
    loopAbort.abort();
    await loops;
  }
  return total;
}
