// A Temporal plugin that adds this package's activities, built from the worker's catalog, to a
// user's existing worker. The workflows are not set by the plugin: a worker has ONE workflows
// module, and a plugin's workflowsPath would replace the user's. As Temporal's own plugins do,
// the user re-exports them from their workflows file:
//   export * from 'temporal-postgres-ops/workflows';
import { SimplePlugin } from '@temporalio/plugin';
import { createActivities } from './activities';
import type { CatalogSource } from './activities/clusterRegistry';
import { catalogPathFromEnv, loadCatalog } from './config/catalog';

export interface PgOpsPluginOptions {
  /** The cluster catalog file (default: PGOPS_CONFIG, else ./pgops.yaml); re-read on every activity. */
  catalogPath?: string;
  /** Or a function returning the catalog (for catalogs kept elsewhere). */
  catalog?: CatalogSource;
}

export function pgOpsPlugin(opts: PgOpsPluginOptions = {}): SimplePlugin {
  const path = opts.catalogPath ?? catalogPathFromEnv();
  const catalog = opts.catalog ?? (() => loadCatalog(path));
  if (!opts.catalog) loadCatalog(path); // a broken catalog fails the worker at start-up, not the first activity
  return new SimplePlugin({ name: 'temporal-postgres-ops', activities: createActivities({ catalog }) });
}
