// Planned start: scale back (or pg_ctl start), wait for Ready and for a query to succeed.
// With no replica count given, the one recorded by the last planned stop is used, else the
// catalog's.
import type { PlannedStartInput, PlannedStartResult } from '../contract/operations/plannedStart';
import { longStep } from './activityProxies';
import { trackProgress } from './progress';
import { tagWorkflow } from './searchAttributes';
import { resolveWithLockOrBefore, withClusterLock } from './clusterLock';
import { parsePlannedStartInput } from './stopStartInput';
import { OPERATION_LABELS, WORKFLOW_TYPES } from '../contract/operations/registry';

export type { PlannedStartInput, PlannedStartResult };

const TYPE = WORKFLOW_TYPES.plannedStart;

export async function plannedStartWorkflow(input: PlannedStartInput): Promise<PlannedStartResult> {
  const { cluster, replicas, lockWait } = parsePlannedStartInput(input);

  tagWorkflow(cluster, OPERATION_LABELS.plannedStart);
  const progress = trackProgress(OPERATION_LABELS.plannedStart, cluster);
  const resolveWithLock = await resolveWithLockOrBefore(cluster, progress);

  return withClusterLock(cluster, TYPE, { ...lockWait, progress, resolveFirst: resolveWithLock }, async (lock) => {
    progress.step('start', replicas ? `starting ${replicas} replica(s)` : 'starting the recorded replica count');
    const started = await longStep.startCluster({ cluster, replicas, lockGrantedAt: lock.grantedAt });
    progress.step('done', `cluster running with ${started.readyReplicas} ready replica(s), accepting queries`, {
      msToReady: started.msToReady,
    });
    return { cluster, ...started };
  });
}
