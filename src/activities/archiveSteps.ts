// WAL archive retention (README, "WAL archive retention"): after a backup's prune, the segments
// that no kept backup, no listed safety snapshot and no replica of the catalog needs are removed
// from the cluster's walArchive; `archiveStatus` says the same without removing anything. What is
// needed comes from the backup records (each needs WAL from its start along every timeline it can
// reach) and from each catalog replica's restart point. A replica that cannot be asked keeps
// everything from the oldest kept backup on.
import { existsSync } from 'node:fs';
import type { Catalog, ClusterEntry } from '../config/schema';
import type { ClusterRegistry } from './clusterRegistry';
import type { ClusterServices } from '../drivers/clusterServices';
import { asStep } from './failures';
import { withHeartbeats, type ActivityProgress } from './heartbeat';
import { archiveSize, planArchivePrune } from '../drivers/postgres/archive/archiveRetention';
import {
  carryOutPruneIntent,
  readPruneIntent,
  writePruneIntent,
  type RemovedFiles,
} from '../drivers/postgres/archive/archivePrune';
import { describeTimelines, readTimelines } from '../drivers/postgres/archive/timelines';
import { listArchivedSegments } from '../drivers/postgres/archive/walInspect';
import type { ArchivePruneResult, ArchiveStatus } from '../contract/archive';
import { whatNeedsWal } from './archiveNeeds';

export function createArchiveSteps(registry: ClusterRegistry, catalog: () => Catalog) {
  return {
    /**
     * Removes from the cluster's WAL archive what nothing needs any more. Finishes an interrupted
     * earlier run first; idempotent. Runs after retention, under the cluster's lock.
     */
    async pruneWalArchive({ cluster }: { cluster: string }): Promise<ArchivePruneResult> {
      return asStep(cluster, 'prune-archive', () =>
        withHeartbeats(async (progress) => pruneArchive(registry, catalog, cluster, progress)),
      );
    },

    /** The archive's size, its oldest needed segment and why, and what a prune would remove. Read-only. */
    async archiveStatus({ cluster }: { cluster: string }): Promise<ArchiveStatus> {
      return asStep(cluster, 'archive-status', async () => statusOfArchive(registry, catalog, cluster));
    },
  };
}

/** The archive directory as this worker sees it, or why it is left alone. */
function archiveOf(services: ClusterServices): { dir?: string; skipped?: string; entry: ClusterEntry } {
  const entry = services.entry;
  if (!entry.walArchive) return { entry, skipped: 'the cluster has no walArchive in the catalog' };
  if (entry.walArchiveRetention?.prune === false)
    return { entry, dir: entry.walArchive, skipped: 'walArchiveRetention.prune is false in the catalog' };
  // A Kubernetes cluster's archive may be inside its pods only (as listBackups reads it).
  if (!existsSync(entry.walArchive))
    return { entry, skipped: `the WAL archive ${entry.walArchive} is not reachable from this worker` };
  return { entry, dir: entry.walArchive };
}

const emptyResult = (archiveDir: string | undefined, skipped: string): ArchivePruneResult => ({
  archiveDir,
  skipped,
  removedSegments: 0,
  removedFiles: 0,
  removedBytes: 0,
  keptSegments: 0,
  keptBytes: 0,
  notes: [],
});

/** The step pruneWalArchive: an interrupted earlier removal finished, then what nothing needs removed. */
async function pruneArchive(
  registry: ClusterRegistry,
  catalog: () => Catalog,
  cluster: string,
  progress: ActivityProgress,
): Promise<ArchivePruneResult> {
  const services = registry.services(cluster);
  const { dir, skipped } = archiveOf(services);
  if (skipped || !dir) return emptyResult(dir, skipped ?? 'no archive');
  const removed: RemovedFiles = { files: 0, segments: 0, bytes: 0 };
  const add = (r: RemovedFiles) => {
    removed.files += r.files;
    removed.segments += r.segments;
    removed.bytes += r.bytes;
    removed.first ??= r.first;
    removed.last = r.last ?? removed.last;
  };
  const onProgress = (detail: string, numbers: Record<string, number>) => progress.report(detail, numbers);
  const pending = readPruneIntent(dir);
  if (pending) {
    progress.report(`finishing the removal ${pending.writtenBy} began at ${pending.writtenAt}`);
    add(await carryOutPruneIntent(dir, pending, { onProgress, signal: progress.signal }));
  }
  const finishedFromEarlierRun = pending ? removed.files : undefined;
  const needs = await whatNeedsWal(registry, catalog, services, dir, progress);
  const plan = planArchivePrune(dir, needs.anchors, needs.rules);
  if (plan.remove.length > 0) {
    const intent = {
      cluster,
      writtenBy: `pruneWalArchive of ${cluster}`,
      writtenAt: new Date().toISOString(),
      files: plan.remove,
    };
    writePruneIntent(dir, intent);
    add(await carryOutPruneIntent(dir, intent, { onProgress, signal: progress.signal }));
  }
  return {
    archiveDir: dir,
    removedSegments: removed.segments,
    removedFiles: removed.files,
    removedBytes: removed.bytes,
    firstRemoved: removed.first,
    lastRemoved: removed.last,
    finishedFromEarlierRun,
    keptSegments: plan.keptSegments,
    keptBytes: plan.keptBytes,
    oldestNeeded: plan.oldestNeeded,
    notes: [...needs.notes, ...plan.notes],
  };
}

/** The step archiveStatus: the archive as it is, and what a prune would do. Read-only. */
async function statusOfArchive(
  registry: ClusterRegistry,
  catalog: () => Catalog,
  cluster: string,
): Promise<ArchiveStatus> {
  const services = registry.services(cluster);
  const entry = services.entry;
  const retention = {
    prune: entry.walArchiveRetention?.prune ?? true,
    keepExtra: entry.walArchiveRetention?.keepExtra,
  };
  const dir = entry.walArchive;
  const base = { cluster, archiveDir: dir, retention, removable: { files: 0, bytes: 0 } };
  if (!dir || !existsSync(dir))
    return {
      ...base,
      skipped: dir
        ? `the WAL archive ${dir} is not reachable from this worker`
        : 'the cluster has no walArchive in the catalog',
      files: 0,
      bytes: 0,
      segments: 0,
      notes: [],
    };
  const size = archiveSize(dir);
  const segments = listArchivedSegments(dir);
  const needs = await whatNeedsWal(registry, catalog, services, dir);
  const plan = planArchivePrune(dir, needs.anchors, needs.rules);
  const pending = readPruneIntent(dir);
  const notes = [...needs.notes, ...plan.notes];
  if (!retention.prune) notes.push('walArchiveRetention.prune is false: backups never remove WAL from it');
  return {
    ...base,
    ...size,
    oldestSegment: segments.reduce<string | undefined>(
      (oldest, s) => (oldest === undefined || s.fileName.slice(8) < oldest.slice(8) ? s.fileName : oldest),
      undefined,
    ),
    newestSegment: segments.at(-1)?.fileName,
    timelines: describeTimelines(readTimelines(dir)),
    oldestNeeded: plan.oldestNeeded,
    removable: { files: plan.remove.length, bytes: plan.removeBytes },
    pendingPrune: pending
      ? { files: pending.files.length, writtenBy: pending.writtenBy, writtenAt: pending.writtenAt }
      : undefined,
    notes,
  };
}
