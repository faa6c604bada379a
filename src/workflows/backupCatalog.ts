// Listing and deleting backups: listBackupsWorkflow is read-only and takes no lock;
// deleteBackupWorkflow takes the cluster's lock, so it never deletes what a running restore uses.
// A deletion a crash interrupted is listed as "being deleted" and finished by the next delete or prune.
import { longStep, quickStep } from './activityProxies';
import { trackProgress } from './progress';
import { tagWorkflow } from './searchAttributes';
import { withClusterLock } from './clusterLock';
import { checkInputObject } from './inputValidation';
import { lockWaitFromInput, LOCK_INPUT_KEYS } from './lockInput';
import { backupRef, confirmation } from './backupInput';
import type {
  ClusterInput,
  DeleteBackupInput,
  DeleteBackupResult,
  ListBackupsResult,
} from '../contract/operations/backupCatalog';
import { WORKFLOW_TYPES } from '../contract/operations/registry';

export type { DeleteBackupResult, ListBackupsResult };

export async function listBackupsWorkflow(input: ClusterInput): Promise<ListBackupsResult> {
  checkInputObject(WORKFLOW_TYPES.listBackups, input, ['cluster']);
  tagWorkflow(input.cluster, 'listBackups');
  const progress = trackProgress('listBackups', input.cluster);
  progress.step('list', 'reading the backup records kept with the snapshots');
  const listed = await quickStep.listBackups({ cluster: input.cluster });
  const deleting = listed.beingDeleted?.length ? `, ${listed.beingDeleted.length} being deleted` : '';
  progress.step('done', `${listed.backups.length} backup(s)${deleting}`);
  return { cluster: input.cluster, ...listed };
}

export async function deleteBackupWorkflow(input: DeleteBackupInput): Promise<DeleteBackupResult> {
  const TYPE = WORKFLOW_TYPES.deleteBackup;
  const record = checkInputObject(TYPE, input, ['cluster', 'backup', 'confirm', ...LOCK_INPUT_KEYS]);
  const backup = backupRef(TYPE, record, false);
  confirmation(TYPE, record, input.cluster, 'deleting a backup cannot be undone');
  const lockWait = lockWaitFromInput(TYPE, record);
  tagWorkflow(input.cluster, 'deleteBackup');
  const progress = trackProgress('deleteBackup', input.cluster);
  return withClusterLock(input.cluster, TYPE, { ...lockWait, progress }, async () => {
    progress.step('delete', `deleting backup ${backup}: marked as being deleted, then its snapshots, then its record`);
    const outcome = await longStep.deleteBackup({ cluster: input.cluster, backup });
    progress.step('done', `backup ${backup} deleted`);
    return { cluster: input.cluster, ...outcome };
  });
}
