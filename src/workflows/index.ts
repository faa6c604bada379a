// The workflow types this plugin registers. Their names are the public contract.
export { plannedStopWorkflow } from './plannedStop';
export { plannedStartWorkflow } from './plannedStart';
export { clusterLockWorkflow } from './clusterLockWorkflow';
export { delayedReplicaPitrWorkflow } from './delayedReplicaPitr';
export { locateIncidentWorkflow } from './locateIncident';
export { snapshotBackupWorkflow } from './snapshotBackup';
export { rollbackRestoreWorkflow } from './rollbackRestore';
export { listBackupsWorkflow, deleteBackupWorkflow } from './backupCatalog';
