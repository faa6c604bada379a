// The workflow types this plugin registers. Their names are the public contract. Each operation's
// workflow comes from the workflows' table (operationWorkflows.ts), beside its input parser.
import { OPERATION_WORKFLOWS as op } from './operationWorkflows';

export { clusterLockWorkflow } from './clusterLockWorkflow';
export { backupSlotsWorkflow } from './backupSlotsWorkflow';
export { flattenVolumesWorkflow } from './flattenVolumes';
export const plannedStopWorkflow = op.plannedStop.workflow;
export const plannedStartWorkflow = op.plannedStart.workflow;
export const delayedReplicaPitrWorkflow = op.pitr.workflow;
export const locateIncidentWorkflow = op.locateIncident.workflow;
export const snapshotBackupWorkflow = op.backup.workflow;
export const rollbackRestoreWorkflow = op.restore.workflow;
export const listBackupsWorkflow = op.listBackups.workflow;
export const deleteBackupWorkflow = op.deleteBackup.workflow;
export const archiveStatusWorkflow = op.archiveStatus.workflow;
export const verifyBackupWorkflow = op.verifyBackup.workflow;
export const recoverRowsWorkflow = op.recoverRows.workflow;
export const openScratchWorkflow = op.openScratch.workflow;
export const listScratchWorkflow = op.listScratch.workflow;
export const scratchGcWorkflow = op.scratchGc.workflow;

// Checked against the operations' table when compiled: registrationCheck.ts.
