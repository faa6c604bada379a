// Listing, deleting and pruning backups. A deletion is resumable: the storage driver marks the
// record as being deleted before anything goes, so a worker killed half-way leaves a backup that
// every listing shows as "being deleted" and that the next prune or delete of its cluster
// finishes (before its own work), whoever began it.
import { existsSync } from 'node:fs';
import { archiveCoverage } from '../drivers/postgres/archive/archiveCoverage';
import { type BackupCoverage } from '../contract/backups';
import { activityInfo, log } from '@temporalio/activity';
import type { ClusterRegistry } from './clusterRegistry';
import { asStep, preconditionFailed } from './failures';
import { withHeartbeats, type ActivityProgress } from './heartbeat';
import type { SnapshotDriver } from '../drivers/storage/types';
import type { BackupBeingDeleted, BackupRecord } from '../contract/backups';

export interface RetentionRule {
  count?: number;
  ageMs?: number;
}

export interface BackupListing {
  /** Complete, restorable backups, newest first. */
  backups: BackupRecord[];
  /** Backups whose deletion began and did not finish: not restorable; the next prune or delete finishes them. */
  beingDeleted: BackupBeingDeleted[];
  /** Snapshots under a backup id with neither record nor deletion mark (a crashed backup). */
  strays: string[];
  /** Per backup: its timeline, and whether the WAL archive still holds every segment from its start on. */
  archive?: BackupCoverage[];
  /** Where the backups live, when a DBA should know (rbd: images set aside by clone-swap restores). */
  storage?: string[];
}

export interface PruneOutcome {
  /** Deleted by this retention (a retry after a crash reports those it still found). */
  deleted: string[];
  kept: string[];
  /** Deletions begun earlier by another workflow and interrupted, finished first. */
  finished: string[];
}

export interface DeleteOutcome {
  deleted: BackupRecord;
  /** The backup was already being deleted (an interrupted deletion), and this finished it. */
  resumed: boolean;
  /** Other interrupted deletions of the cluster, finished first. */
  finished: string[];
}

/** Who deletes: kept in the deletion mark, so a retry of the same workflow knows its own. */
function deletingWorkflow(): string {
  return activityInfo().workflowExecution?.workflowId ?? 'unknown';
}

/** The record as it was before its deletion began. */
function plainRecord(r: BackupRecord | BackupBeingDeleted): BackupRecord {
  if (!('deletion' in r)) return r;
  const { state: _state, deletion: _deletion, ...record } = r;
  return record;
}

export function createBackupCatalogSteps(registry: ClusterRegistry) {
  return {
    async listBackups({ cluster }: { cluster: string }): Promise<BackupListing> {
      return asStep(cluster, 'list-backups', async () => listingOf(registry, cluster));
    },

    /** Deletes one backup, or finishes its deletion; other interrupted deletions of the cluster first. */
    async deleteBackup({ cluster, backup }: { cluster: string; backup: string }): Promise<DeleteOutcome> {
      return asStep(cluster, 'delete-backup', () =>
        withHeartbeats(async (progress) => deleteOneBackup(registry, cluster, backup, progress)),
      );
    },

    /**
     * Retention: a backup goes when it is past the newest `count` AND older than `age` (each
     * rule that is given must let it go). Never the ones in `protect`; a pre-restore safety
     * snapshot only once its own keepUntil has passed. Interrupted deletions of the cluster are
     * finished first.
     */
    async pruneBackups(input: { cluster: string; keep: RetentionRule; protect: string[] }): Promise<PruneOutcome> {
      const { cluster } = input;
      return asStep(cluster, 'prune', () =>
        withHeartbeats(async (progress) => pruneByRetention(registry, input, progress)),
      );
    },
  };
}

/** The cluster's interrupted deletions, each finished; `except` is left to the caller. */
async function finishInterrupted(
  cluster: string,
  storage: SnapshotDriver,
  pending: BackupBeingDeleted[],
  progress: ActivityProgress,
): Promise<string[]> {
  const by = deletingWorkflow();
  for (const r of pending) {
    progress.report(`finishing the deletion of backup ${r.id} (begun ${r.deletion.since} by ${r.deletion.by})`);
    log.info('finishing an interrupted deletion', { cluster, id: r.id, begunBy: r.deletion.by });
    await storage.deleteBackup(r.id, { by, signal: progress.signal });
  }
  return pending.map((r) => r.id);
}

async function beingDeletedOf(cluster: string, storage: SnapshotDriver): Promise<BackupBeingDeleted[]> {
  return (await storage.listBeingDeleted()).filter((r) => r.cluster === cluster);
}

/** The step listBackups: the cluster's backups, those being deleted, strays, and the archive's coverage. */
async function listingOf(registry: ClusterRegistry, cluster: string): Promise<BackupListing> {
  const services = registry.services(cluster);
  const storage = services.storage();
  const backups = (await storage.listRecords()).filter((r) => r.cluster === cluster);
  const walArchive = services.archive.walArchive;
  // The archive as the worker sees it (a Kubernetes cluster's may be inside its pods only).
  const archive = walArchive && existsSync(walArchive) ? archiveCoverage(walArchive, backups) : undefined;
  const layout = (await storage.describeLayout?.()) ?? [];
  return {
    backups,
    beingDeleted: await beingDeletedOf(cluster, storage),
    strays: await storage.strayIds(),
    archive,
    ...(layout.length ? { storage: layout } : {}),
  };
}

/** The step deleteBackup. */
async function deleteOneBackup(
  registry: ClusterRegistry,
  cluster: string,
  backup: string,
  progress: ActivityProgress,
): Promise<DeleteOutcome> {
  const storage = registry.services(cluster).storage();
  const by = deletingWorkflow();
  const pending = await beingDeletedOf(cluster, storage);
  const half = pending.find((r) => r.id === backup);
  const record = half ?? (await storage.listRecords()).find((r) => r.id === backup);
  if (!record)
    throw preconditionFailed(
      cluster,
      'delete-backup',
      `there is no backup "${backup}" (listBackupsWorkflow lists them)`,
    );
  if (record.cluster !== cluster)
    throw preconditionFailed(cluster, 'delete-backup', `backup "${backup}" belongs to cluster "${record.cluster}"`);
  const others = pending.filter((r) => r.id !== backup);
  const finished = await finishInterrupted(cluster, storage, others, progress);
  progress.report(half ? `finishing the deletion of backup ${backup}` : `deleting backup ${backup}`);
  await storage.deleteBackup(backup, { by, signal: progress.signal, onProgress: (d) => progress.report(d) });
  return { deleted: plainRecord(record), resumed: half !== undefined && half.deletion.by !== by, finished };
}

/** The step pruneBackups: interrupted deletions finished, then what the rules let go deleted. */
async function pruneByRetention(
  registry: ClusterRegistry,
  input: { cluster: string; keep: RetentionRule; protect: string[] },
  progress: ActivityProgress,
): Promise<PruneOutcome> {
  const { cluster } = input;
  const storage = registry.services(cluster).storage();
  const by = deletingWorkflow();
  // This workflow's own (an attempt killed half-way) count as deleted by this prune.
  const pending = await beingDeletedOf(cluster, storage);
  const mine = pending.filter((r) => r.deletion.by === by);
  const finished = await finishInterrupted(
    cluster,
    storage,
    pending.filter((r) => r.deletion.by !== by),
    progress,
  );
  const records = (await storage.listRecords()).filter((r) => r.cluster === cluster);
  const doomed = doomedRecords(records, input.keep, input.protect);
  for (const r of [...mine, ...doomed]) {
    progress.report(`deleting backup ${r.id}`);
    await storage.deleteBackup(r.id, { by, signal: progress.signal });
  }
  const deleted = [...mine, ...doomed].map((r) => r.id);
  return { deleted, kept: records.map((r) => r.id).filter((id) => !deleted.includes(id)), finished };
}

/** The records `keep` lets go, never those in `protect`; a safety snapshot once its keepUntil has passed. */
function doomedRecords(records: BackupRecord[], keep: RetentionRule, protect: string[]): BackupRecord[] {
  const now = Date.now();
  const regular = records.filter((r) => r.kind === 'backup');
  return records.filter((r) => {
    if (protect.includes(r.id)) return false;
    if (r.kind === 'pre-restore') return r.keepUntil !== undefined && Date.parse(r.keepUntil) < now;
    // A retry sees a subset of the first attempt's records: positions only move up, nothing kept is doomed.
    const beyondCount = keep.count === undefined || regular.indexOf(r) >= keep.count;
    const tooOld = keep.ageMs === undefined || now - Date.parse(r.stoppedAt) > keep.ageMs;
    return (keep.count !== undefined || keep.ageMs !== undefined) && beyondCount && tooOld;
  });
}
