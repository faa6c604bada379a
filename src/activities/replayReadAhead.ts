// Whether a targeted replay gets the WAL read-ahead, and running it beside the replay watch. On a
// local target the worker stages the segments itself (drivers/postgres/archive/walReadAhead.ts),
// when it reaches the replica's data directory and the archive as files and is PGDATA's owner or
// root. On a Kubernetes target a loop inside the replica's PostgreSQL container stages them from
// the archive as the container mounts it (podReadAhead.ts), the worker keeping it alive.
import { statSync } from 'node:fs';
import { posix } from 'node:path';
import type { ClusterEntry } from '../config/schema';
import type { ClusterServices } from '../drivers/clusterServices';
import { plainPathProblem } from '../common/shellPaths';
import {
  READ_AHEAD_DIR,
  readAheadStageDir,
  runReadAhead,
  clearReadAhead,
} from '../drivers/postgres/archive/walReadAhead';
import {
  clearStageCommand,
  runPodReadAhead,
  type ContainerCommand,
  type PodReadAheadResult,
} from '../drivers/postgres/archive/podReadAhead';
import type { ReadAheadStats } from '../contract/operations/pitrSteps';

/** Segments staged ahead of replay unless the catalog says otherwise (replayReadAhead). */
export const DEFAULT_READ_AHEAD_SEGMENTS = 4;

export type ReadAheadPlan =
  | {
      where: 'worker';
      stageDir: string;
      archiveDir: string;
      depth: number;
      owner?: { uid: number; gid: number };
    }
  | {
      where: 'pod';
      /** pg_wal/pgops_readahead inside the container. */
      stageDir: string;
      /** The archive as the container mounts it. */
      archiveDir: string;
      /** The archive as the worker reads it: which segments there are. */
      workerArchive: string;
      depth: number;
      run: ContainerCommand;
    };

function localPlan(entry: ClusterEntry, depth: number): ReadAheadPlan | undefined {
  if (entry.target.kind !== 'local' || !entry.walArchive) return undefined;
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
    where: 'worker',
    stageDir,
    archiveDir: entry.walArchive,
    depth,
    owner: me === 0 && owner.uid !== 0 ? owner : undefined,
  };
}

/** Undefined when the replay runs without a read-ahead (off, no archive, nothing the worker can reach). */
export async function readAheadPlan(services: ClusterServices): Promise<ReadAheadPlan | undefined> {
  const entry = services.entry;
  const depth = entry.replayReadAhead ?? DEFAULT_READ_AHEAD_SEGMENTS;
  if (depth === 0 || !entry.walArchive) return undefined;
  if (entry.target.kind === 'local') return localPlan(entry, depth);
  const archiveDir = entry.target.walArchive ?? entry.walArchive;
  let container: Awaited<ReturnType<ReturnType<ClusterServices['kubernetes']>['serverContainer']>>;
  try {
    container = await services.kubernetes('the replay read-ahead').serverContainer();
  } catch {
    return undefined; // the StatefulSet cannot be read: the steps that need it will say why
  }
  const stageDir = posix.join(container.pgdata, 'pg_wal', READ_AHEAD_DIR);
  if (plainPathProblem(stageDir, 'restore_command') || plainPathProblem(archiveDir, 'the read-ahead')) return undefined;
  return { where: 'pod', stageDir, archiveDir, workerArchive: entry.walArchive, depth, run: container.run };
}

/** Removes what a read-ahead left (a dead worker's staged segments); a loop still running in a pod stops. */
export async function clearReadAheadLeftovers(plan: ReadAheadPlan): Promise<void> {
  if (plan.where === 'worker') return clearReadAhead(plan.stageDir);
  // The pod may be gone or restarting: the next run's loop clears the directory first anyway.
  await plan.run(clearStageCommand(plan.stageDir), { timeoutMs: 30_000 }).catch(() => undefined);
}

function podStats({ reason, detail, ...counts }: PodReadAheadResult): ReadAheadStats {
  return { ...counts, where: 'pod', ended: detail ? `${reason}: ${detail}` : reason };
}

/** Starts the read-ahead; `stop()` ends it and returns what it did (never throws). */
export function startReadAhead(
  plan: ReadAheadPlan,
  start: { fromLsn: string; timeline: number },
  toLsn: string | undefined,
  replayLsn: () => string | undefined,
): { stop: () => Promise<ReadAheadStats | undefined> } {
  const abort = new AbortController();
  const range = {
    timeline: start.timeline,
    fromLsn: start.fromLsn,
    toLsn,
    depth: plan.depth,
    replayLsn,
    signal: abort.signal,
  };
  const running: Promise<ReadAheadStats | undefined> =
    plan.where === 'worker'
      ? runReadAhead({ ...range, archiveDir: plan.archiveDir, stageDir: plan.stageDir, owner: plan.owner })
          .then((stats) => ({ ...stats, where: 'worker' as const }))
          .catch(() => undefined)
      : runPodReadAhead({
          ...range,
          workerArchive: plan.workerArchive,
          archiveDir: plan.archiveDir,
          stageDir: plan.stageDir,
          run: plan.run,
        })
          .then((result) => result && podStats(result))
          .catch(() => undefined);
  return {
    async stop() {
      abort.abort();
      return running;
    },
  };
}
