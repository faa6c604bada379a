// A restore that failed after its rollback began (a recovery that ended before its target, WAL
// missing, a server that would not start) puts the safety snapshot back, so the cluster is left
// as it was before the restore, running if it was running. Without a safety snapshot it is left
// stopped with recovery.signal removed, so nothing retries the failed recovery by itself.
import { isCancellation, workflowInfo } from '@temporalio/workflow';
import type { BackupRecord } from '../contract/backups';
import { localStep, longStep, quickStep } from './activityProxies';
import type { ProgressReporter } from './progress';
import { startBackgroundFlatten } from './flattenVolumes';

export interface UndoOutcome {
  /** The safety snapshot was put back (and the cluster started again if it was running). */
  undone: boolean;
  /** What was done, for the top of the failure. */
  said: string;
}

export async function undoFailedRestore(input: {
  cluster: string;
  restored: BackupRecord;
  safetySnapshot?: BackupRecord;
  wasRunning: boolean;
  progress: ProgressReporter;
}): Promise<UndoOutcome> {
  const { cluster, restored, safetySnapshot, wasRunning, progress } = input;
  const info = workflowInfo();
  const restoreId = `${info.workflowId}/${info.runId}`;
  try {
    progress.step(
      'undo',
      safetySnapshot
        ? `the restore failed: putting safety snapshot ${safetySnapshot.id} back`
        : 'the restore failed: stopping the cluster and removing recovery.signal (no safety snapshot was taken)',
    );
    if ((await localStep.describeCluster({ cluster })).running) await longStep.stopCluster({ cluster });
    if (!safetySnapshot) {
      // The restored data directory stays; only what would start recovery again goes.
      await longStep.writeRecoveryFiles({ cluster, backup: restored.id, inclusive: false, action: 'promote' });
      return {
        undone: false,
        said: 'The cluster is left STOPPED on the data of the restored backup (no safety snapshot was taken: "safetySnapshot": false), with recovery.signal and the recovery settings removed so nothing retries the recovery. Restore a backup with a reachable target, or check the data directory before starting it by hand.',
      };
    }
    const undoId = `${restoreId}/undo`;
    const rollback = await longStep.rollbackVolumes({ cluster, backup: safetySnapshot.id, restoreId: undoId });
    await longStep.writeRecoveryFiles({ cluster, backup: safetySnapshot.id, inclusive: false, action: 'promote' });
    if (wasRunning) await longStep.startCluster({ cluster });
    for (const id of [restoreId, undoId])
      await quickStep.releaseReplacedVolumes({ cluster, restoreId: id }).catch((err: unknown) => {
        if (isCancellation(err)) throw err;
      });
    // The clones of an undone clone-swap are flattened in the background too.
    if (rollback.flatten?.length && rollback.flattenByDefault !== 'never')
      await startBackgroundFlatten(cluster, rollback.flatten, undoId);
    progress.step('undone', `safety snapshot ${safetySnapshot.id} is back: the cluster is as before the restore`);
    return {
      undone: true,
      said: `Nothing was changed: the safety snapshot ${safetySnapshot.id} was put back${wasRunning ? ' and the cluster is running again' : ' (the cluster was stopped before the restore and stays stopped)'}, as it was before the restore.`,
    };
  } catch (err) {
    if (isCancellation(err)) throw err;
    return {
      undone: false,
      said: `Putting the cluster back as it was failed too (${err instanceof Error ? err.message : String(err)}): it may be left stopped.${safetySnapshot ? ` Nothing is lost: run rollbackRestoreWorkflow with {"cluster": "${cluster}", "backup": "${safetySnapshot.id}", "confirm": "${cluster}", "safetySnapshot": false}.` : ''}`,
    };
  }
}
