// All activities, built from their dependencies (the catalog source). Workflows import only the
// type of this object.
import { ClusterRegistry, type CatalogSource } from './clusterRegistry';
import { createClusterSteps } from './clusterSteps';
import { createLockSteps } from './lockSteps';
import { createBackupSlotSteps } from './backupSlotSteps';
import { guardMutatingSteps } from './lockGuard';
import { createPitrSteps } from './pitrSteps';
import { createBackupSteps } from './backupSteps';
import { createBackupCatalogSteps } from './backupCatalogSteps';
import { createRestoreSteps } from './restoreSteps';
import { createReplicaSteps } from './replicaSteps';
import { createArchiveSteps } from './archiveSteps';
import { createScratchPlanSteps } from './scratchPlanSteps';
import { createScratchSteps } from './scratchSteps';
import { createScratchDrillSteps } from './scratchDrillSteps';
import { createScratchRowSteps } from './scratchRowSteps';
import { keepAlive } from './heartbeat';

export interface ActivityDeps {
  catalog: CatalogSource;
}

export function createActivities(deps: ActivityDeps) {
  const registry = new ClusterRegistry(deps.catalog);
  return keptAlive(
    guardMutatingSteps({
      ...createClusterSteps(registry),
      ...createLockSteps(registry),
      ...createBackupSlotSteps(registry),
      ...createPitrSteps(registry),
      ...createBackupSteps(registry),
      ...createBackupCatalogSteps(registry),
      ...createRestoreSteps(registry),
      ...createReplicaSteps(registry),
      ...createArchiveSteps(registry, deps.catalog),
      ...createScratchPlanSteps(registry),
      ...createScratchSteps(registry),
      ...createScratchDrillSteps(registry),
      ...createScratchRowSteps(registry),
    }),
  );
}

// Every activity heartbeats while it runs (see keepAlive): the workflows may give any step a
// heartbeat timeout, which is what bounds the time to notice a crashed worker.
function keptAlive<T extends object>(steps: T): T {
  return Object.fromEntries(
    Object.entries(steps).map(([name, fn]) => [name, keepAlive(fn as (...args: unknown[]) => Promise<unknown>)]),
  ) as unknown as T;
}

export type PgOpsActivities = ReturnType<typeof createActivities>;
