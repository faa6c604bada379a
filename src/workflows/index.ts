// The workflow types this plugin registers. Their names are the public contract. Each fails with
// the message of the step that refused, at the top of the failure (see surfaceFailure.ts).
import { surfacingActivityFailures as surfaced } from './surfaceFailure';
import * as stop from './plannedStop';
import * as start from './plannedStart';
import * as pitr from './delayedReplicaPitr';
import * as locate from './locateIncident';
import * as backup from './snapshotBackup';
import * as restore from './rollbackRestore';
import * as catalog from './backupCatalog';
import * as archive from './archiveStatus';

export { clusterLockWorkflow } from './clusterLockWorkflow';
export const plannedStopWorkflow = surfaced(stop.plannedStopWorkflow);
export const plannedStartWorkflow = surfaced(start.plannedStartWorkflow);
export const delayedReplicaPitrWorkflow = surfaced(pitr.delayedReplicaPitrWorkflow);
export const locateIncidentWorkflow = surfaced(locate.locateIncidentWorkflow);
export const snapshotBackupWorkflow = surfaced(backup.snapshotBackupWorkflow);
export const rollbackRestoreWorkflow = surfaced(restore.rollbackRestoreWorkflow);
export const listBackupsWorkflow = surfaced(catalog.listBackupsWorkflow);
export const deleteBackupWorkflow = surfaced(catalog.deleteBackupWorkflow);
export const archiveStatusWorkflow = surfaced(archive.archiveStatusWorkflow);
