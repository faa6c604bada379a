// Whether a targeted replay gets the WAL read-ahead (drivers/postgres/archive/walReadAhead.ts), and running
// it beside the replay watch. Only where the worker reaches the replica's data directory and the
// archive as files: a local target with a walArchive, and a worker that is PGDATA's owner or root.
import { statSync } from 'node:fs';
import type { ClusterRegistry } from './clusterRegistry';
import { withParkedSession } from '../drivers/postgres/parkedSession';
import type { PgEndpoint } from '../drivers/postgres/session';
import { plainPathProblem } from '../common/shellPaths';
import { readAheadStageDir, runReadAhead, type ReadAheadStats } from '../drivers/postgres/archive/walReadAhead';

/** Segments staged ahead of replay unless the catalog says otherwise (replayReadAhead). */
export const DEFAULT_READ_AHEAD_SEGMENTS = 4;

export interface ReadAheadPlan {
  stageDir: string;
  archiveDir: string;
  depth: number;
  owner?: { uid: number; gid: number };
}

export function readAheadPlan(registry: ClusterRegistry, cluster: string): ReadAheadPlan | undefined {
  const entry = registry.entry(cluster);
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

/** Where replay will start after a restart (the restartpoint's REDO) and on which timeline. */
export async function replayStart(endpoint: PgEndpoint): Promise<{ fromLsn: string; timeline: number }> {
  return withParkedSession(endpoint, async (client) => {
    const row = (
      await client.query<{ redo: string; tli: number }>(
        'SELECT redo_lsn::text AS redo, timeline_id AS tli FROM pg_control_checkpoint()',
      )
    ).rows[0];
    if (!row) throw new Error('pg_control_checkpoint() returned no row');
    return { fromLsn: row.redo, timeline: Number(row.tli) };
  });
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
