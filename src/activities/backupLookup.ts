// A restore's backup by id ('latest': the cluster's newest regular backup), refused with the
// backups there are when it is not there or is being deleted.
import { preconditionFailed } from './failures';
import type { ClusterServices } from '../drivers/clusterServices';
import type { BackupRecord } from '../contract/backups';

export async function findBackup(services: ClusterServices, id: string, step = 'check-restore'): Promise<BackupRecord> {
  const cluster = services.name;
  const storage = services.storage();
  const records = await storage.listRecords();
  const record =
    id === 'latest'
      ? records.find((r) => r.cluster === cluster && r.kind === 'backup')
      : records.find((r) => r.id === id);
  if (!record) {
    const deleting = id === 'latest' ? undefined : (await storage.listBeingDeleted()).find((r) => r.id === id);
    if (deleting)
      throw preconditionFailed(
        cluster,
        step,
        `backup "${id}" is being deleted (begun ${deleting.deletion.since} by ${deleting.deletion.by}, interrupted): its snapshots may be partly gone, so it cannot be restored. The next prune or deleteBackupWorkflow of this cluster finishes the deletion; listBackupsWorkflow lists the backups that can be restored. Nothing was changed.`,
      );
    const mine = records.filter((r) => r.cluster === cluster).slice(0, 10);
    throw preconditionFailed(
      cluster,
      step,
      `${id === 'latest' ? 'there is no backup of this cluster' : `there is no backup "${id}"`}; ${mine.length ? `backups: ${mine.map((r) => `${r.id} (${r.kind}, ${r.mode}, ${r.stoppedAt})`).join(', ')}` : 'none are recorded'}. Nothing was changed.`,
    );
  }
  return record;
}
