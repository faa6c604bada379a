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
import type * as registered from './index';
import type { Operations, OperationName, WorkflowType } from '../contract/operations';

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

// Temporal registers this module's named exports. They are checked against the operations' table
// (src/contract/operations/registry.ts) at compile time: one workflow per entry, of the entry's
// input and result, and no export the table does not name (but the lock's own workflow).
type Exported = Exclude<keyof typeof registered, 'clusterLockWorkflow'>;
type WorkflowOf = {
  [K in OperationName as Operations[K]['type']]: (input: Operations[K]['input']) => Promise<Operations[K]['result']>;
};
export type RegisteredWorkflows = [Exclude<WorkflowType, Exported>, Exclude<Exported, WorkflowType>] extends [
  never,
  never,
]
  ? Pick<typeof registered, WorkflowType>
  : { missing: Exclude<WorkflowType, Exported>; notInTheTable: Exclude<Exported, WorkflowType> };
type Conforms<Want, Got extends Want> = Got;
/** Does not compile when a workflow is missing, extra, or takes or returns other types than its entry. */
export type WorkflowsMatchTheTable = Conforms<WorkflowOf, RegisteredWorkflows>;
