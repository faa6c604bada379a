// temporal-postgres-ops as a library: the worker's building blocks and the public types. The
// workflows are a separate entry point (`temporal-postgres-ops/workflows`), so that a user's own
// workflows file can re-export them (a workflow bundle has one workflows module).
export { createActivities, type PgOpsActivities, type ActivityDeps } from './activities';
export { createPgOpsWorker, ensureSearchAttributes, SEARCH_ATTRIBUTES, type PgOpsWorkerOptions } from './worker';
export { loadCatalog, parseCatalog, CatalogError } from './config/catalog';
export type { Catalog, ClusterEntry } from './config/schema';
export * from './contract/definitions';
export type { PlannedStopInput, PlannedStopResult } from './workflows/plannedStop';
export type { PlannedStartInput, PlannedStartResult } from './workflows/plannedStart';
export type { DelayedReplicaPitrResult } from './workflows/delayedReplicaPitr';
export type { SnapshotBackupInput, SnapshotBackupResult } from './workflows/snapshotBackup';
export type { RollbackRestoreInput, RollbackRestoreResult } from './workflows/rollbackRestore';
export type { DeleteBackupResult, ListBackupsResult } from './workflows/backupCatalog';
export type { BackupBeingDeleted, BackupRecord } from './contract/backups';
export { pgOpsPlugin, type PgOpsPluginOptions } from './plugin';
export {
  resolveTemporalConnection,
  type TemporalConnectionChoice,
  type TemporalConnectionSettings,
} from './config/temporalConnection';
export * from './client';
