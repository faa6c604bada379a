// The catalog look-up of a cluster and its describe step: what a lock request asks first
// (lockSteps.ts) and what the stop/start steps offer as steps of their own (clusterSteps.ts).
import { log } from '@temporalio/activity';
import type { ClusterRegistry } from './clusterRegistry';
import { asStep } from './failures';
import { pauseForTests } from '../drivers/testPause';
import type { ClusterSnapshotState } from '../contract/definitions';

export interface ResolvedCluster {
  cluster: string;
  kind: 'local' | 'kubernetes';
  catalogReplicas: number;
  storage?: string;
  replicaOf?: string;
}

/**
 * Confirms the cluster is in the catalog (UnknownCluster, non-retryable, if not); returns what
 * workflows may know (nothing secret). Its own step, or the first half of a lock request.
 */
export async function resolveInCatalog(registry: ClusterRegistry, cluster: string): Promise<ResolvedCluster> {
  log.info('step begins', { cluster, step: 'begin:resolve' });
  await pauseForTests('begin:resolve');
  const entry = registry.entry(cluster);
  return {
    cluster,
    kind: entry.target.kind,
    catalogReplicas: entry.target.kind === 'kubernetes' ? entry.target.replicas : 1,
    storage: entry.storage?.kind,
    replicaOf: entry.replicaOf,
  };
}

/** The describe step: whether the cluster runs, and its replica counts. */
export function describeInCatalog(registry: ClusterRegistry, cluster: string): Promise<ClusterSnapshotState> {
  return asStep(cluster, 'describe', async () => {
    const state = await registry.services(cluster).target().describe();
    return { running: state.running, replicas: state.replicas, readyReplicas: state.readyReplicas };
  });
}
