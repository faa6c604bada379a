// The workflow types this plugin registers. Their names are the public contract. Each operation's
// workflow comes from the workflows' table (operationWorkflows.ts), beside its input parser.
import { OPERATION_WORKFLOWS as op } from './operationWorkflows';
import type * as registered from './index';
import type { Operations, OperationName, WorkflowType } from '../contract/operations';

export { clusterLockWorkflow } from './clusterLockWorkflow';
export const plannedStopWorkflow = op.plannedStop.workflow;
export const plannedStartWorkflow = op.plannedStart.workflow;
export const delayedReplicaPitrWorkflow = op.pitr.workflow;
export const locateIncidentWorkflow = op.locateIncident.workflow;
export const snapshotBackupWorkflow = op.backup.workflow;
export const rollbackRestoreWorkflow = op.restore.workflow;
export const listBackupsWorkflow = op.listBackups.workflow;
export const deleteBackupWorkflow = op.deleteBackup.workflow;
export const archiveStatusWorkflow = op.archiveStatus.workflow;

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
