// All activities, built from their dependencies (the catalog source). Workflows import only the
// type of this object.
import { ClusterRegistry, type CatalogSource } from './clusterRegistry';
import { createClusterSteps } from './clusterSteps';
import { createLockSteps } from './lockSteps';
import { createPitrSteps } from './pitrSteps';
import { createBackupSteps } from './backupSteps';
import { createRestoreSteps } from './restoreSteps';

export interface ActivityDeps {
  catalog: CatalogSource;
}

export function createActivities(deps: ActivityDeps) {
  const registry = new ClusterRegistry(deps.catalog);
  return {
    ...createClusterSteps(registry),
    ...createLockSteps(),
    ...createPitrSteps(registry),
    ...createBackupSteps(registry),
    ...createRestoreSteps(registry),
  };
}

export type PgOpsActivities = ReturnType<typeof createActivities>;
