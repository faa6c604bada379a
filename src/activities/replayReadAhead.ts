// Whether a targeted replay gets the WAL read-ahead (drivers/postgres/archive/walReadAhead.ts), and running
// it beside the replay watch. Only where the worker reaches the replica's data directory and the
// archive as files: a local target with a walArchive, and a worker that is PGDATA's owner or root.
import { statSync } from 'node:fs';
import type { ClusterEntry } from '../config/schema';
import { plainPathProblem } from '../common/shellPaths';
import { readAheadStageDir, runReadAhead } from '../drivers/postgres/archive/walReadAhead';
import type { ReadAheadStats } from '../contract/operations/pitrSteps';

/** Segments staged ahead of replay unless the catalog says otherwise (replayReadAhead). */
export const DEFAULT_READ_AHEAD_SEGMENTS = 4;

export interface ReadAheadPlan {
  stageDir: string;
  archiveDir: string;
  depth: number;
  owner?: { uid: number; gid: number };
}

export function readAheadPlan(entry: ClusterEntry): ReadAheadPlan | undefined {
  const depth = entry.replayReadAhead ?? DEFAULT_READ_AHEAD_SEGMENTS;
  if (depth === 0 || !entry.walArchive || entry.target.kind !== 'local') return undefined;
  let owner: { uid: number; gid: number };
  try {
    const s = statSync(entry.target.pgdata);
    owner = { uid: s.uid, gid: s.gid };
  } catch {
    return undefined;
  }
  const me = process.getuid?.();
  if (me !== 0 && me !== owner.uid) return undefined;
  const stageDir = readAheadStageDir(entry.target.pgdata);
  // The staging path goes into restore_command, a shell string: only plain characters.
  if (plainPathProblem(stageDir, 'restore_command')) return undefined;
  return {
    stageDir,
    archiveDir: entry.walArchive,
    depth,
    owner: me === 0 && owner.uid !== 0 ? owner : undefined,
  };
}

/** Starts the read-ahead; `stop()` ends it and returns what it did (never throws). */
export function startReadAhead(
  plan: ReadAheadPlan,
  start: { fromLsn: string; timeline: number },
  toLsn: string | undefined,
  replayLsn: () => string | undefined,
): { stop: () => Promise<ReadAheadStats | undefined> } {
  const abort = new AbortController();
  const running = runReadAhead({
    archiveDir: plan.archiveDir,
    stageDir: plan.stageDir,
    timeline: start.timeline,
    fromLsn: start.fromLsn,
    toLsn,
    depth: plan.depth,
    owner: plan.owner,
    replayLsn,
    signal: abort.signal,
  }).catch(() => undefined);
  return {
    async stop() {
      abort.abort();
      return running;
    },
  };
}
