// Temporal registers the named exports of the workflows module (index.ts). They are checked here,
// when compiled, against the operations' table (src/contract/operations/registry.ts): one workflow per
// entry, of the entry's input and result, and no export the table does not name (but the lock's own
// workflow and the background flatten). Types only: nothing imports this file, and it adds nothing to the workflow bundle.
import type * as registered from './index';
import type { Operations, OperationName, WorkflowType } from '../contract/operations';

type Exported = Exclude<
  keyof typeof registered,
  'clusterLockWorkflow' | 'flattenVolumesWorkflow' | 'backupSlotsWorkflow'
>;
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
