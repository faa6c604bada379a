// A server that stops while it starts because its startup process (crash or archive recovery)
// ended with FATAL or PANIC: "recovery ended before configured recovery target was reached",
// "requested timeline 3 is not a child of this server's history", a missing checkpoint record.
// Starting it again replays the same WAL with the same settings and ends the same way, so it is
// a refusal, not a hiccup. The server log is the only place that says so: the startup process's
// FATAL carries no SQLSTATE there (the default log_line_prefix has none).
import { PostgresRefusedError } from '../errorClass';

/** The postmaster's note that its startup process failed: "startup process (PID 123) exited with exit code 1". */
const STARTUP_EXITED = /startup process \(PID (\d+)\) (?:exited with exit code [1-9]|was terminated by signal 6)/;
const SEVERE = /\b(FATAL|PANIC):\s+(.*)$/;
/** A new run of the server begins its log with this line: what came before it is another run. */
const SERVER_STARTS = /\bstarting PostgreSQL \d/;
/** Startup failures for want of resources: freeing them lets the next start get further. */
const RESOURCES = /No space left on device|out of memory|Cannot allocate memory|Too many open files|could not fork/i;

const ADVICE: Array<[RegExp, string]> = [
  [
    /recovery ended before configured recovery target was reached/,
    'the WAL available (archive and pg_wal) ends before the recovery target: choose an earlier target (or "immediate"), or put the missing WAL segments in the archive, then run the restore again',
  ],
  [
    /is not a child of this server's history/,
    'the recovery target timeline does not lead to the target: choose the timeline (recoveryTargetTimeline) that holds it',
  ],
];

/**
 * The startup process's FATAL in the log lines of the server's latest run (newest last), as a
 * non-retryable error; undefined when the log shows no such failure or a shortage of resources.
 */
export function startupFailure(lines: readonly string[], where: string): PostgresRefusedError | undefined {
  let first = 0;
  lines.forEach((line, i) => {
    if (SERVER_STARTS.test(line)) first = i;
  });
  const run = lines.slice(first);
  let exitedAt = -1;
  let pid = '';
  run.forEach((line, i) => {
    const m = STARTUP_EXITED.exec(line);
    if (m) [exitedAt, pid] = [i, m[1]!];
  });
  if (exitedAt < 0) return undefined;
  // The startup process's own last FATAL or PANIC; without its PID in the prefix, the last one before.
  const before = run.slice(0, exitedAt);
  const candidates = before.filter((l) => SEVERE.test(l));
  const own = candidates.filter((l) => l.includes(`[${pid}]`));
  const line = own.at(-1) ?? candidates.at(-1);
  if (line === undefined) return undefined;
  const [, severity, serverMessage] = SEVERE.exec(line)!;
  if (RESOURCES.test(serverMessage!)) return undefined;
  const advice =
    ADVICE.find(([pattern]) => pattern.test(serverMessage!))?.[1] ??
    'read the server log around this line and fix the cause; the server will not start until then';
  return new PostgresRefusedError(
    `PostgreSQL stopped while starting: ${serverMessage} (${severity} in the startup process; server log: ${where}). Retrying cannot fix this: ${advice}.`,
    undefined,
    serverMessage!,
  );
}
