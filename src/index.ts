// temporal-postgres-ops as a library: the worker's building blocks and the public types. The
// workflows are a separate entry point (`temporal-postgres-ops/workflows`), so that a user's own
// workflows file can re-export them (a workflow bundle has one workflows module).
export { createActivities, type PgOpsActivities, type ActivityDeps } from './activities';
export { createPgOpsWorker, ensureSearchAttributes, SEARCH_ATTRIBUTES, type PgOpsWorkerOptions } from './worker';
export { loadCatalog, parseCatalog, CatalogError } from './config/catalog';
export type { Catalog, ClusterEntry } from './config/schema';
export * from './contract/definitions';
export { MUTATING_WORKFLOW_TYPES } from './contract/operations/registry';
// Every operation's input and result (types only; the table's values are the client's WORKFLOW_TYPES).
export type * from './contract/operations';
export type { BackupBeingDeleted, BackupRecord } from './contract/backups';
export { pgOpsPlugin, type PgOpsPluginOptions } from './plugin';
export {
  resolveTemporalConnection,
  type TemporalConnectionChoice,
  type TemporalConnectionSettings,
} from './config/temporalConnection';
export * from './client';
