// A server whose startup process gave up during recovery (FATAL or PANIC in it, "startup process
// exited") will give up the same way on every start: the WAL, the settings or the target are
// wrong. Found in the server log of the latest start, so a start step can refuse at once with the
// server's own words instead of retrying with the database down.

/** Where the log of the latest start begins (pg_ctl appends every start to one log file). */
const START_MARK = /starting PostgreSQL \d+/;

/** The startup process's last words, most specific first. */
const STARTUP_GAVE_UP = [
  /FATAL:\s+recovery ended before configured recovery target was reached/,
  /FATAL:\s+requested timeline \d+ (is not a child of this server's history|does not contain minimum recovery point.*)/,
  /FATAL:\s+requested recovery stop point is before consistent recovery point/,
  /FATAL:\s+WAL ends before (end of online backup|consistent recovery point)/,
  /FATAL:\s+could not locate required checkpoint record/,
  /FATAL:\s+invalid value for parameter "recovery_target\w*".*/,
  /PANIC:\s+.*/,
  /startup process \(PID \d+\) exited with exit code [1-9]\d*/,
];

export interface RecoveryFailure {
  /** The line that says why (FATAL/PANIC), else the one that says the startup process exited. */
  line: string;
  /** A few lines before it, for context. */
  context: string[];
}

/** The startup process's failure in the latest start recorded in `lines` (oldest first), if any. */
export function recoveryFailureIn(lines: string[]): RecoveryFailure | undefined {
  const begin = lines.findLastIndex((l) => START_MARK.test(l));
  const latest = lines.slice(Math.max(0, begin));
  for (const pattern of STARTUP_GAVE_UP) {
    const at = latest.findLastIndex((l) => pattern.test(l));
    if (at >= 0) return { line: latest[at]!.trim(), context: latest.slice(Math.max(0, at - 4), at + 1) };
  }
  return undefined;
}
