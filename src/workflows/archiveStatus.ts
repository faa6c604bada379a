// The WAL archive of a cluster as retention sees it: its size, the oldest segment something still
// needs and what, and what a prune would remove now. Read-only, no lock (as listBackupsWorkflow).
import { quickStep } from './activityProxies';
import { trackProgress } from './progress';
import { tagWorkflow } from './searchAttributes';
import { parseArchiveStatusInput } from './backupInput';
import type { ArchiveStatus } from '../contract/archive';
import type { ClusterInput } from '../contract/operations/backupCatalog';
import { OPERATION_LABELS } from '../contract/operations/registry';

export async function archiveStatusWorkflow(input: ClusterInput): Promise<ArchiveStatus> {
  const { cluster } = parseArchiveStatusInput(input);
  tagWorkflow(cluster, OPERATION_LABELS.archiveStatus);
  const progress = trackProgress(OPERATION_LABELS.archiveStatus, cluster);
  progress.step('read', 'reading the WAL archive, the backup records and where each replica would restart');
  const status = await quickStep.archiveStatus({ cluster });
  progress.step('done', `${status.segments} segment(s), ${status.bytes} bytes`);
  return status;
}
