// Delayed-replica PITR steps (docs/runbooks/delayed-replica-pitr.md), one driver call each, every one safe to repeat.
// Refusals are non-retryable and say what state the replica was left in.
import type { ClusterRegistry } from './clusterRegistry';
import { createPitrPauseSteps } from './pitrPauseSteps';
import { createPitrCheckSteps } from './pitrCheckSteps';
import { createPitrReplaySteps } from './pitrReplaySteps';
import { createPitrRowSteps } from './pitrRowSteps';
import { createPitrFinishSteps } from './pitrFinishSteps';

export type { ReplicaRef } from './replicaRef';

export function createPitrSteps(registry: ClusterRegistry) {
  return {
    ...createPitrPauseSteps(registry),
    ...createPitrCheckSteps(registry),
    ...createPitrReplaySteps(registry),
    ...createPitrRowSteps(registry),
    ...createPitrFinishSteps(registry),
  };
}
