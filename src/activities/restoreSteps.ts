// Rollback restore steps (docs/runbooks/rollback-restore.md, and the recovery the seed left out): refuse early,
// roll every volume back, write backup_label and the recovery settings, watch recovery, verify
// and clean up. Every step is safe to repeat after a worker crash.
import type { ClusterRegistry } from './clusterRegistry';
import { createRestoreCheckSteps } from './restoreCheckSteps';
import { createRestoreVolumeSteps } from './restoreVolumeSteps';
import { createRestoreRecoverySteps } from './restoreRecoverySteps';

export type { RestorePlan } from './restoreCheckSteps';

export function createRestoreSteps(registry: ClusterRegistry) {
  return {
    ...createRestoreCheckSteps(registry),
    ...createRestoreVolumeSteps(registry),
    ...createRestoreRecoverySteps(registry),
  };
}
