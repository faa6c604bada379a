// The operations' table and their inputs and results: the contract of the client, the CLI and the library.
export * from './registry';
export type * from './plannedStop';
export type * from './plannedStart';
export type * from './delayedReplicaPitr';
export type * from './snapshotBackup';
export type * from './rollbackRestore';
export type * from './backupCatalog';
export type * from './archiveStatus';
export type * from './lockWait';
export type * from './scratchRestores';
export type * from '../scratch';
