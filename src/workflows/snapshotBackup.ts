// Snapshot backup (docs/runbooks/snapshot-backup.md). Online: pg_backup_start, flush, storage snapshot,
// pg_backup_stop, all in one session held by one activity; the label is stored with the snapshot.
// Offline: the planned stop's steps, the snapshot, and start again. A cluster found stopped (a
// planned stop) is never started by a backup: it gets an offline snapshot and stays stopped.
import { CancellationScope, patched, workflowInfo } from '@temporalio/workflow';
import { backupIdFor } from '../common/backupIds';
import type { BackupRecord } from '../contract/backups';
import type { SnapshotBackupInput, SnapshotBackupResult } from '../contract/operations/snapshotBackup';
import { bringUpStep, localStep, longStep, quickStep } from './activityProxies';
import { trackProgress } from './progress';
import { tagWorkflow } from './searchAttributes';
import { withClusterLock } from './clusterLock';
import { withBackupSlot } from './backupSlot';
import { parseSnapshotBackupInput } from './backupInput';
import { OPERATION_LABELS, WORKFLOW_TYPES } from '../contract/operations/registry';

export type { SnapshotBackupInput, SnapshotBackupResult };

const TYPE = WORKFLOW_TYPES.backup;

export async function snapshotBackupWorkflow(input: SnapshotBackupInput): Promise<SnapshotBackupResult> {
  const { cluster, mode, keep, label: givenLabel, lockWait } = parseSnapshotBackupInput(input);
  const info = workflowInfo();
  const id = backupIdFor(info.startTime, info.runId);
  const label = givenLabel ?? `pgops ${cluster} ${id}`;

  tagWorkflow(cluster, OPERATION_LABELS.backup);
  const progress = trackProgress(OPERATION_LABELS.backup, cluster);
  progress.step('resolve', 'looking the cluster up in the worker catalog');
  await localStep.resolveCluster({ cluster });

  // Patched: a backup started by an older worker replays without the fleet's backup slot.
  const capped = patched('backup-slots');
  const locked = () =>
    withClusterLock(cluster, TYPE, { ...lockWait, progress }, async () => {
      progress.step('plan', 'checking that every volume of the database can be snapshotted consistently');
      const plan = await quickStep.planSnapshotBackup({ cluster, mode });
      progress.note({ backupId: id, storage: plan.storage });
      const base = { cluster, volumes: plan.volumes };
      let result: SnapshotBackupResult;

      if (!plan.running) {
        progress.step('snapshot', 'the cluster is stopped: snapshotting its quiescent volumes; it stays stopped');
        const backup = await longStep.takeOfflineSnapshot({
          cluster,
          id,
          kind: 'backup',
          label,
          workflowId: info.workflowId,
        });
        result = {
          ...base,
          backup,
          took: 'offline-of-stopped-cluster',
          snapshotMs: backup.snapshotMs,
          note: 'the cluster was stopped (a planned stop?): it got an offline snapshot of its quiescent volumes and was left stopped',
        };
      } else if (mode === 'online') {
        progress.step('backup', 'pg_backup_start, snapshot, pg_backup_stop in one session');
        const backup = await longStep.takeOnlineBackup({ cluster, id, label, workflowId: info.workflowId });
        progress.note({ backupModeMs: backup.backupModeMs ?? 0, stopLsn: backup.stopLsn });
        result = { ...base, backup, took: 'online', backupModeMs: backup.backupModeMs, snapshotMs: backup.snapshotMs };
      } else {
        progress.step('stop', 'stopping the cluster for an offline snapshot');
        let stopped: { replicasBefore: number } | undefined;
        let backup: BackupRecord;
        let started: { readyReplicas: number; msToReady: number } | undefined;
        try {
          // Inside the try: a cancel during the stop (which runs to its end) starts the cluster again too.
          stopped = await longStep.stopCluster({ cluster });
          await localStep.verifyQuiescent({ cluster });
          progress.step('snapshot', 'snapshotting the quiescent volumes');
          backup = await longStep.takeOfflineSnapshot({
            cluster,
            id,
            kind: 'backup',
            label,
            workflowId: info.workflowId,
          });
        } finally {
          // Whatever happened to the snapshot, the cluster comes back: a backup never leaves it down.
          // Without the stop's count (cancelled during the stop), the one it recorded is used.
          const replicas = stopped?.replicasBefore;
          progress.step('start', replicas ? `starting ${replicas} replica(s) again` : 'starting the cluster again');
          started = await CancellationScope.nonCancellable(() => bringUpStep.startCluster({ cluster, replicas }));
        }
        const restarted = { readyReplicas: started.readyReplicas, msToReady: started.msToReady };
        result = { ...base, backup, took: 'offline', snapshotMs: backup.snapshotMs, restarted };
      }

      if (keep) {
        progress.step('prune', 'applying retention');
        result.pruned = await longStep.pruneBackups({ cluster, keep, protect: [id] });
        // Patched: a backup started by an older worker replays without this step.
        if (plan.walArchive && patched('prune-wal-archive')) {
          progress.step('prune-archive', 'removing the WAL segments no kept backup or replica needs');
          result.archivePruned = await longStep.pruneWalArchive({ cluster });
        }
      }
      progress.step('done', `backup ${id} recorded (${result.took})`, { backupId: id });
      return result;
    });
  // The fleet's cap on concurrent backups (catalog fleet.maxConcurrentBackups): a slot before the
  // cluster's lock, so that a backup waiting for one never keeps a restore off its cluster.
  return capped ? withBackupSlot(cluster, progress, locked) : locked();
}
