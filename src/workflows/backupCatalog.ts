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
import type { BackupBeingDeleted, BackupRecord } from '../contract/backups';
import type { BackupCoverage } from '../contract/backups';

export interface ListBackupsResult {
  cluster: string;
  /** Complete, restorable backups, newest first. */
  backups: BackupRecord[];
  /**
   * Backups whose deletion began and was interrupted (state "being deleted"): not restorable; the
   * next deleteBackupWorkflow or prune of the cluster finishes them.
   */
  beingDeleted: BackupBeingDeleted[];
  /** Snapshots under a backup id with neither record nor deletion mark (left by a crashed backup). */
  strays: string[];
  /** Per backup: its timeline, and whether the WAL archive still holds every segment from its start on. */
  archive?: BackupCoverage[];
}

export interface DeleteBackupResult {
  cluster: string;
  /** The record of the backup deleted. */
  deleted: BackupRecord;
  /** The backup was being deleted already (an interrupted deletion): this run finished it. */
  resumed: boolean;
  /** Other interrupted deletions of the cluster, finished first. */
  finished: string[];
}

export async function listBackupsWorkflow(input: { cluster: string }): Promise<ListBackupsResult> {
  checkInputObject('listBackupsWorkflow', input, ['cluster']);
  tagWorkflow(input.cluster, 'listBackups');
  const progress = trackProgress('listBackups', input.cluster);
  progress.step('list', 'reading the backup records kept with the snapshots');
  const listed = await quickStep.listBackups({ cluster: input.cluster });
  const deleting = listed.beingDeleted?.length ? `, ${listed.beingDeleted.length} being deleted` : '';
  progress.step('done', `${listed.backups.length} backup(s)${deleting}`);
  return { cluster: input.cluster, ...listed };
}

export async function deleteBackupWorkflow(input: {
  cluster: string;
  backup: string;
  confirm: string;
  waitForLock?: boolean | string | number;
}): Promise<DeleteBackupResult> {
  const TYPE = 'deleteBackupWorkflow';
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
