// The operations of pg-ops, one entry each: the one table the worker registration (checked in
// src/workflows/index.ts), the lock guard (src/activities/lockGuard.ts), the typed client, the CLI and
// the lock's list of mutating workflows are derived from. Adding an operation is an entry here, its
// types in OperationIo below and a file beside this one, its workflow and input parser (an entry in
// src/workflows/operationWorkflows.ts), and its CLI command: each of them missing is a type error. Pure data: the workflows bundle it too.
import type { ArchiveStatus } from '../archive';
import type { ClusterInput, DeleteBackupInput, DeleteBackupResult, ListBackupsResult } from './backupCatalog';
import type {
  DelayedReplicaPitrInput,
  DelayedReplicaPitrResult,
  LocateIncidentInput,
  LocateIncidentResult,
} from './delayedReplicaPitr';
import type { PlannedStartInput, PlannedStartResult } from './plannedStart';
import type { PlannedStopInput, PlannedStopResult } from './plannedStop';
import type { RollbackRestoreInput, RollbackRestoreResult } from './rollbackRestore';
import type { SnapshotBackupInput, SnapshotBackupResult } from './snapshotBackup';
import type {
  ListScratchResult,
  OpenScratchInput,
  OpenScratchResult,
  RecoverRowsInput,
  RecoverRowsResult,
  ScratchGcInput,
  ScratchGcResult,
  VerifyBackupInput,
  VerifyBackupResult,
} from './scratchRestores';

export type OperationSpec = {
  /** The registered workflow type: public, never renamed. */
  workflowType: `${string}Workflow`;
  /** `pgops <verb>`. */
  cliVerb: string;
  /** One line: the CLI's help. */
  summary: string;
} & (
  | {
      /** Takes the cluster's lock. */
      takesLock: true;
      /** Its activities that change the cluster, its volumes or its backups: run only by the lock's holder (lockGuard.ts). */
      mutatingSteps: readonly string[];
    }
  // Read-only: no lock, and so no mutating step.
  | { takesLock: false; mutatingSteps: readonly [] }
);

/** Keyed by the typed client's operation name (`PgOpsClient.start('plannedStop', …)`). */
export const OPERATIONS = {
  plannedStop: {
    workflowType: 'plannedStopWorkflow',
    cliVerb: 'stop',
    summary: 'planned stop: scale to 0 / pg_ctl stop, volumes kept',
    takesLock: true,
    mutatingSteps: ['stopCluster', 'startCluster'],
  },
  plannedStart: {
    workflowType: 'plannedStartWorkflow',
    cliVerb: 'start',
    summary: 'planned start: the recorded replica count, Ready and a query',
    takesLock: true,
    mutatingSteps: ['startCluster'],
  },
  pitr: {
    workflowType: 'delayedReplicaPitrWorkflow',
    cliVerb: 'pitr',
    summary: 'delayed-replica PITR: pause, replay to just before the target, then export, pause or promote',
    takesLock: true,
    mutatingSteps: [
      'applyPitrTarget',
      'restartReplicaIfPending',
      'restartAndWaitForReplayTarget',
      'insertMissingRowsIntoPrimary',
      'promoteReplica',
      'clearPitrTarget',
    ],
  },
  locateIncident: {
    workflowType: 'locateIncidentWorkflow',
    cliVerb: 'locate',
    summary: 'find the transactions that deleted, truncated or dropped in a time window (WAL archive)',
    takesLock: false,
    mutatingSteps: [],
  },
  backup: {
    workflowType: 'snapshotBackupWorkflow',
    cliVerb: 'backup',
    summary: 'snapshot backup (online by default: pg_backup_start, snapshot, pg_backup_stop)',
    takesLock: true,
    mutatingSteps: [
      'stopCluster',
      'startCluster',
      'takeOnlineBackup',
      'takeOfflineSnapshot',
      'pruneBackups',
      'pruneWalArchive',
    ],
  },
  restore: {
    workflowType: 'rollbackRestoreWorkflow',
    cliVerb: 'restore',
    summary: 'rollback restore, with a safety snapshot first; optionally replay WAL to a target',
    takesLock: true,
    mutatingSteps: [
      'stopCluster',
      'takeOfflineSnapshot',
      'rollbackVolumes',
      'writeRecoveryFiles',
      'startCluster',
      'releaseReplacedVolumes',
      'reconcileReplicas',
    ],
  },
  listBackups: {
    workflowType: 'listBackupsWorkflow',
    cliVerb: 'backups',
    summary: 'list backups, newest first',
    takesLock: false,
    mutatingSteps: [],
  },
  deleteBackup: {
    workflowType: 'deleteBackupWorkflow',
    cliVerb: 'delete-backup',
    summary: 'delete a backup, or finish a deletion a crash interrupted ("being deleted")',
    takesLock: true,
    mutatingSteps: ['deleteBackup'],
  },
  archiveStatus: {
    workflowType: 'archiveStatusWorkflow',
    cliVerb: 'archive status',
    summary: 'size of the WAL archive, its oldest needed segment and why, what a prune would remove',
    takesLock: false,
    mutatingSteps: [],
  },
  verifyBackup: {
    workflowType: 'verifyBackupWorkflow',
    cliVerb: 'verify',
    summary: 'restore drill: clone a backup, recover it on a scratch server, pg_amcheck, pg_checksums, archive check',
    takesLock: false,
    mutatingSteps: [],
  },
  recoverRows: {
    workflowType: 'recoverRowsWorkflow',
    cliVerb: 'recover',
    summary: 'rows or databases as of a moment, from a backup on a scratch server; optionally back into the primary',
    takesLock: true,
    mutatingSteps: ['insertRecoveredRows', 'restoreDatabaseAs'],
  },
  openScratch: {
    workflowType: 'openScratchWorkflow',
    cliVerb: 'scratch open',
    summary: 'a read-only scratch server of the database as of a moment, kept open until closed or its ttl',
    takesLock: false,
    mutatingSteps: [],
  },
  listScratch: {
    workflowType: 'listScratchWorkflow',
    cliVerb: 'scratch list',
    summary: 'the scratch servers there are, their owners and when they expire',
    takesLock: false,
    mutatingSteps: [],
  },
  scratchGc: {
    workflowType: 'scratchGcWorkflow',
    cliVerb: 'scratch gc',
    summary: 'remove scratch servers whose workflow is gone or whose time is up',
    takesLock: false,
    mutatingSteps: [],
  },
} as const satisfies Record<string, OperationSpec>;

type Table = typeof OPERATIONS;
export type OperationName = keyof Table;

/**
 * Each operation's input and result, under the same key as its entry above (a type beside the table,
 * not in it: the table is values the activities' lock guard and the CLI read; these are types only,
 * declared in this folder, down to the step results they carry: restoreSteps.ts, pitrSteps.ts).
 */
export interface OperationIo {
  plannedStop: { input: PlannedStopInput; result: PlannedStopResult };
  plannedStart: { input: PlannedStartInput; result: PlannedStartResult };
  pitr: { input: DelayedReplicaPitrInput; result: DelayedReplicaPitrResult };
  locateIncident: { input: LocateIncidentInput; result: LocateIncidentResult };
  backup: { input: SnapshotBackupInput; result: SnapshotBackupResult };
  restore: { input: RollbackRestoreInput; result: RollbackRestoreResult };
  listBackups: { input: ClusterInput; result: ListBackupsResult };
  deleteBackup: { input: DeleteBackupInput; result: DeleteBackupResult };
  archiveStatus: { input: ClusterInput; result: ArchiveStatus };
  verifyBackup: { input: VerifyBackupInput; result: VerifyBackupResult };
  recoverRows: { input: RecoverRowsInput; result: RecoverRowsResult };
  openScratch: { input: OpenScratchInput; result: OpenScratchResult };
  listScratch: { input: { cluster?: string }; result: ListScratchResult };
  scratchGc: { input: ScratchGcInput; result: ScratchGcResult };
}
type Conforms<Want, Got extends Want> = Got;
/** Types without an entry do not compile (an entry without types fails where `Operations` reads them). */
export type EveryIoHasAnEntry = Conforms<OperationName, keyof OperationIo>;

/** Each operation: its workflow type, input and result. */
export type Operations = {
  [K in OperationName]: {
    type: Table[K]['workflowType'];
    input: OperationIo[K]['input'];
    result: OperationIo[K]['result'];
  };
};
export type WorkflowType = Table[OperationName]['workflowType'];
export type MutatingWorkflowType = {
  [K in OperationName]: Table[K]['takesLock'] extends true ? Table[K]['workflowType'] : never;
}[OperationName];
/** Every activity some operation declares as mutating. */
export type MutatingStep = Table[OperationName]['mutatingSteps'][number];

const entries = Object.entries(OPERATIONS) as [OperationName, Table[OperationName]][];

export const WORKFLOW_TYPES = Object.fromEntries(entries.map(([name, op]) => [name, op.workflowType])) as {
  [K in OperationName]: Table[K]['workflowType'];
};

/** The workflow type without "Workflow": the PgOperation search attribute and the `progress` query's operation. */
export type OperationLabel<K extends OperationName = OperationName> =
  Table[K]['workflowType'] extends `${infer Label}Workflow` ? Label : never;

/** Each operation's label (OperationLabel), derived from its workflow type. */
export const OPERATION_LABELS = Object.fromEntries(
  entries.map(([name, op]) => [name, op.workflowType.slice(0, -'Workflow'.length)]),
) as { [K in OperationName]: OperationLabel<K> };

/** Workflow types that take a cluster's lock (the read-only ones do not). */
export const MUTATING_WORKFLOW_TYPES = entries
  .filter(([, op]) => op.takesLock)
  .map(([, op]) => op.workflowType) as readonly MutatingWorkflowType[];

/** Activities that change a cluster, its volumes or its backups, in the order the table first names them. */
export const MUTATING_STEPS: readonly MutatingStep[] = [
  ...new Set(entries.flatMap(([, op]): readonly MutatingStep[] => op.mutatingSteps)),
];
