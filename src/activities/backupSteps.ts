// Snapshot backup steps (docs/runbooks/snapshot-backup.md). The online backup is ONE activity: pg_backup_start,
// the storage snapshot and pg_backup_stop in one PostgreSQL session that the activity holds open
// and heartbeats over. If the worker dies, the session dies and PostgreSQL aborts the backup; the
// retry deletes the snapshot the dead attempt may have made and takes a fresh one, so a snapshot
// is never kept without its label.
import { log } from '@temporalio/activity';
import type { ClusterRegistry } from './clusterRegistry';
import { asStep, preconditionFailed } from './failures';
import { withHeartbeats, type ActivityProgress } from './heartbeat';
import { pauseForTests } from '../drivers/testPause';
import { openBackupSession } from '../drivers/postgres/backupMode';
import { withSession } from '../drivers/postgres/session';
import { readArchiveMode } from '../drivers/postgres/archive/archiving';
import type { SnapshotDriver } from '../drivers/storage/types';
import type { ClusterEntry } from '../config/schema';
import type { BackupKind, BackupRecord } from '../contract/backups';

export interface BackupPlan {
  running: boolean;
  storage: BackupRecord['storage'];
  volumes: string[];
  walArchive: boolean;
}

export function createBackupSteps(registry: ClusterRegistry) {
  return {
    /** Checks, touching nothing, that every volume can be snapshotted consistently; says how. */
    async planSnapshotBackup({ cluster, mode }: { cluster: string; mode: 'online' | 'offline' }): Promise<BackupPlan> {
      return asStep(cluster, 'plan-backup', async () => planBackup(registry, cluster, mode));
    },

    async takeOnlineBackup(input: {
      cluster: string;
      id: string;
      label: string;
      workflowId: string;
    }): Promise<BackupRecord> {
      const { cluster } = input;
      return asStep(cluster, 'online-backup', () =>
        withHeartbeats(async (progress) => onlineBackup(registry, input, progress)),
      );
    },

    /** A snapshot of a stopped cluster's volumes: consistent without backup mode. */
    async takeOfflineSnapshot(input: {
      cluster: string;
      id: string;
      kind: BackupKind;
      label: string;
      workflowId: string;
    }): Promise<BackupRecord> {
      const { cluster } = input;
      return asStep(cluster, input.kind === 'pre-restore' ? 'safety-snapshot' : 'offline-snapshot', () =>
        withHeartbeats(async (progress) => offlineSnapshot(registry, input, progress)),
      );
    },
  };
}

async function existingRecord(storage: SnapshotDriver, id: string): Promise<BackupRecord | undefined> {
  return (await storage.listRecords()).find((r) => r.id === id);
}

/** The step planSnapshotBackup: how each volume is snapshotted; an online backup needs WAL archiving. */
async function planBackup(registry: ClusterRegistry, cluster: string, mode: 'online' | 'offline'): Promise<BackupPlan> {
  const services = registry.services(cluster);
  const entry = services.entry;
  const storage = services.storage();
  const plan = await storage.plan(await services.databaseVolumes());
  const { running } = await services.target().describe();
  if (mode === 'online' && running) {
    if (!entry.walArchive)
      throw preconditionFailed(
        cluster,
        'plan-backup',
        'an online backup can only be restored with the WAL written during it, and this cluster has no WAL archive in the catalog (walArchive). Configure archiving and walArchive, or take an offline backup ("mode": "offline"). Nothing was changed.',
      );
    const archiveMode = await withSession(await services.endpoint(), readArchiveMode);
    if (archiveMode === 'off')
      throw preconditionFailed(
        cluster,
        'plan-backup',
        `archive_mode is off on the server, so the WAL of an online backup would never reach ${entry.walArchive}. Turn archiving on, or take an offline backup. Nothing was changed.`,
      );
  }
  return { running, storage: storage.kind, volumes: plan.methods, walArchive: entry.walArchive !== undefined };
}

/**
 * The step takeOnlineBackup: pg_backup_start, the snapshots and pg_backup_stop in one session, and
 * the record once the WAL is archived. A snapshot whose label was not stored is deleted.
 */
async function onlineBackup(
  registry: ClusterRegistry,
  input: { cluster: string; id: string; label: string; workflowId: string },
  progress: ActivityProgress,
): Promise<BackupRecord> {
  const { cluster, id } = input;
  const services = registry.services(cluster);
  const storage = services.storage();
  const done = await existingRecord(storage, id);
  if (done) return done; // an earlier attempt finished; only its answer was lost
  await storage.recoverFromCrash();
  const volumes = await services.databaseVolumes();
  const session = await openBackupSession(await services.endpoint(), progress.signal);
  let snapshotted = false;
  try {
    progress.report('pg_backup_start (fast checkpoint)');
    const started = await session.start(input.label);
    const inBackupModeAt = Date.now();
    log.info('backup mode started', { cluster, id, step: 'in-backup-mode', startLsn: started.startLsn });
    await pauseForTests('in-backup-mode', progress.signal);
    const snapshotStarted = Date.now();
    const snapshots = await storage.createSnapshots(id, volumes, {
      online: true,
      onProgress: (d) => progress.report(d),
      signal: progress.signal,
    });
    snapshotted = true;
    const snapshotMs = Date.now() - snapshotStarted;
    log.info('snapshot taken', { cluster, id, step: 'snapshot-taken', snapshotMs });
    await pauseForTests('after-snapshot', progress.signal);
    progress.report('pg_backup_stop');
    const stopped = await session.stop();
    const backupModeMs = Date.now() - inBackupModeAt;
    // The backup exists only once the WAL it needs is archived: its record is written after.
    const archived = await session.waitForArchived(stopped.stopLsn, (d) => progress.report(d));
    const record: BackupRecord = {
      id,
      cluster,
      kind: 'backup',
      mode: 'online',
      label: input.label,
      systemIdentifier: started.systemIdentifier,
      pgVersion: started.pgVersion,
      timeline: started.timeline,
      startLsn: started.startLsn,
      stopLsn: stopped.stopLsn,
      labelfile: stopped.labelfile,
      spcmapfile: stopped.spcmapfile || undefined,
      startedAt: started.startedAt,
      stoppedAt: stopped.stoppedAt,
      backupModeMs,
      snapshotMs,
      archiveWaitMs: archived.ms,
      databaseSizeBytes: started.databaseSizeBytes,
      storage: storage.kind,
      snapshots,
      workflowId: input.workflowId,
    };
    await storage.saveRecord(record);
    log.info('backup recorded', { cluster, id, step: 'backup-recorded', backupModeMs, snapshotMs });
    return record;
  } catch (err) {
    // Never keep a snapshot whose label was not stored: it could not be restored correctly.
    if (snapshotted) await storage.deleteBackup(id).catch(() => undefined);
    throw err;
  } finally {
    await session.close();
  }
}

/** The step takeOfflineSnapshot: the volumes of the stopped cluster snapshotted, and its record. */
async function offlineSnapshot(
  registry: ClusterRegistry,
  input: { cluster: string; id: string; kind: BackupKind; label: string; workflowId: string },
  progress: ActivityProgress,
): Promise<BackupRecord> {
  const { cluster, id } = input;
  const services = registry.services(cluster);
  const storage = services.storage();
  const done = await existingRecord(storage, id);
  if (done) return done;
  if ((await services.target().describe()).running)
    throw preconditionFailed(
      cluster,
      'offline-snapshot',
      'the server is running: an offline snapshot needs it stopped',
    );
  await storage.recoverFromCrash();
  const volumes = await services.databaseVolumes();
  await storage.plan(volumes);
  const control = await services.withStoppedDataDirectory((dir) => dir.controlData(), {
    onProgress: (d) => progress.report(d),
    signal: progress.signal,
  });
  const startedAt = new Date().toISOString();
  const snapshotStarted = Date.now();
  log.info('offline snapshot', { cluster, id, step: 'offline-snapshot-begin' });
  const snapshots = await storage.createSnapshots(id, volumes, {
    online: false,
    onProgress: (d) => progress.report(d),
    signal: progress.signal,
  });
  const record: BackupRecord = {
    id,
    cluster,
    kind: input.kind,
    mode: 'offline',
    label: input.label,
    systemIdentifier: control.systemIdentifier,
    pgVersion: `pg_control ${control.pgVersion}`,
    timeline: control.timeline,
    startLsn: control.redoLsn,
    stopLsn: control.checkpointLsn,
    startedAt,
    stoppedAt: new Date().toISOString(),
    snapshotMs: Date.now() - snapshotStarted,
    cleanShutdown: control.cleanShutdown,
    storage: storage.kind,
    snapshots,
    keepUntil: input.kind === 'pre-restore' ? keepUntil(services.entry) : undefined,
    workflowId: input.workflowId,
  };
  await storage.saveRecord(record);
  return record;
}

/** A safety snapshot's retention: the catalog's storage.preRestoreRetentionDays (default 7). */
function keepUntil(entry: ClusterEntry): string {
  const days = entry.storage?.preRestoreRetentionDays ?? 7;
  return new Date(Date.now() + days * 86_400_000).toISOString();
}
