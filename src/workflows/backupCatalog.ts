// Listing and deleting backups: listBackupsWorkflow is read-only and takes no lock;
// deleteBackupWorkflow takes the cluster's lock, so it never deletes what a running restore uses.
import { longStep, quickStep } from './activityProxies';
import { trackProgress } from './progress';
import { tagWorkflow } from './searchAttributes';
import { withClusterLock } from './clusterLock';
import { checkInputObject } from './inputValidation';
import { lockWaitFromInput, LOCK_INPUT_KEYS } from './lockInput';
import { backupRef, confirmation } from './backupInput';
import type { BackupRecord } from '../drivers/storage/types';
import type { BackupCoverage } from '../drivers/postgres/archiveCoverage';

export interface ListBackupsResult {
  cluster: string;
  /** Newest first. */
  backups: BackupRecord[];
  /** Snapshots under a backup id with no record (left by a crash); deleteBackupWorkflow removes them. */
  strays: string[];
  /** Per backup: its timeline, and whether the WAL archive still holds every segment from its start on. */
  archive?: BackupCoverage[];
}

export async function listBackupsWorkflow(input: { cluster: string }): Promise<ListBackupsResult> {
  checkInputObject('listBackupsWorkflow', input, ['cluster']);
  tagWorkflow(input.cluster, 'listBackups');
  const progress = trackProgress('listBackups', input.cluster);
  progress.step('list', 'reading the backup records kept with the snapshots');
  const listed = await quickStep.listBackups({ cluster: input.cluster });
  progress.step('done', `${listed.backups.length} backup(s)`);
  return { cluster: input.cluster, ...listed };
}

export async function deleteBackupWorkflow(input: {
  cluster: string;
  backup: string;
  confirm: string;
  waitForLock?: boolean | string | number;
}): Promise<{ cluster: string; deleted: BackupRecord }> {
  const TYPE = 'deleteBackupWorkflow';
  const record = checkInputObject(TYPE, input, ['cluster', 'backup', 'confirm', ...LOCK_INPUT_KEYS]);
  const backup = backupRef(TYPE, record, false);
  confirmation(TYPE, record, input.cluster, 'deleting a backup cannot be undone');
  const lockWait = lockWaitFromInput(TYPE, record);
  tagWorkflow(input.cluster, 'deleteBackup');
  const progress = trackProgress('deleteBackup', input.cluster);
  return withClusterLock(input.cluster, TYPE, { ...lockWait, progress }, async () => {
    progress.step('delete', `deleting backup ${backup}: its record, then its snapshots`);
    const { deleted } = await longStep.deleteBackup({ cluster: input.cluster, backup });
    progress.step('done', `backup ${backup} deleted`);
    return { cluster: input.cluster, deleted };
  });
}
