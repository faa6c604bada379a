// Listing and deleting backups: listBackupsWorkflow is read-only and takes no lock;
// deleteBackupWorkflow takes the cluster's lock, so it never deletes what a running restore uses.
// A deletion a crash interrupted is listed as "being deleted" and finished by the next delete or prune.
import { longStep, quickStep } from './activityProxies';
import { trackProgress } from './progress';
import { tagWorkflow } from './searchAttributes';
import { withClusterLock } from './clusterLock';
import { parseDeleteBackupInput, parseListBackupsInput } from './backupInput';
import type {
  ClusterInput,
  DeleteBackupInput,
  DeleteBackupResult,
  ListBackupsResult,
} from '../contract/operations/backupCatalog';
import { OPERATION_LABELS, WORKFLOW_TYPES } from '../contract/operations/registry';

export type { DeleteBackupResult, ListBackupsResult };

export async function listBackupsWorkflow(input: ClusterInput): Promise<ListBackupsResult> {
  const { cluster } = parseListBackupsInput(input);
  tagWorkflow(cluster, OPERATION_LABELS.listBackups);
  const progress = trackProgress(OPERATION_LABELS.listBackups, cluster);
  progress.step('list', 'reading the backup records kept with the snapshots');
  const listed = await quickStep.listBackups({ cluster });
  const deleting = listed.beingDeleted?.length ? `, ${listed.beingDeleted.length} being deleted` : '';
  progress.step('done', `${listed.backups.length} backup(s)${deleting}`);
  return { cluster, ...listed };
}

export async function deleteBackupWorkflow(input: DeleteBackupInput): Promise<DeleteBackupResult> {
  const { cluster, backup, lockWait } = parseDeleteBackupInput(input);
  tagWorkflow(cluster, OPERATION_LABELS.deleteBackup);
  const progress = trackProgress(OPERATION_LABELS.deleteBackup, cluster);
  return withClusterLock(cluster, WORKFLOW_TYPES.deleteBackup, { ...lockWait, progress }, async () => {
    progress.step('delete', `deleting backup ${backup}: marked as being deleted, then its snapshots, then its record`);
    const outcome = await longStep.deleteBackup({ cluster, backup });
    progress.step('done', `backup ${backup} deleted`);
    return { cluster, ...outcome };
  });
}
