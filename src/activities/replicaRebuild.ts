// Rebuilding a replica that has diverged from its restored primary, on either kind of target:
// pg_basebackup on the worker into a local PGDATA (localReplicaRebuild.ts), or in a helper pod on
// the replica's own volumes (kubernetesReplicaRebuild.ts), its own configuration kept either way.
import type { ClusterRegistry } from './clusterRegistry';
import type { ClusterServices } from '../drivers/clusterServices';
import { rebuildInProgress, rebuildLocalReplica } from '../drivers/cluster/localReplicaRebuild';
import { kubernetesRebuildInProgress, rebuildKubernetesReplica } from '../drivers/cluster/kubernetesReplicaRebuild';

export interface ReplicaRebuilder {
  /** A rebuild began and did not finish (a worker died in it): the replica is stopped, half built. */
  inProgress(): Promise<boolean>;
  rebuild(opts: {
    onProgress: (detail: string) => void;
    signal: AbortSignal;
  }): Promise<{ ms: number; keptFiles: string[] }>;
}

export function replicaRebuilder(registry: ClusterRegistry, services: ClusterServices): ReplicaRebuilder {
  const primary = services.entry.replicaOf!;
  const target = services.entry.target;
  if (target.kind === 'local')
    return {
      inProgress: async () => rebuildInProgress(target),
      rebuild: async (opts) => rebuildLocalReplica(target, await registry.services(primary).endpoint(), opts),
    };
  const driver = services.kubernetes('a replica rebuild');
  return {
    inProgress: () => kubernetesRebuildInProgress(driver),
    rebuild: async (opts) => {
      const primaryServices = registry.services(primary);
      const endpoint = await primaryServices.endpoint();
      return rebuildKubernetesReplica(
        driver,
        primary,
        { ...(await addressInCluster(primaryServices)), user: endpoint.user, password: endpoint.password },
        opts,
      );
    },
  };
}

const isLoopback = (host: string) => host === 'localhost' || host.startsWith('127.') || host === '::1';

/**
 * Where a pod reaches the primary: the catalog's host and port when they are a network address
 * (a Service), else the primary's first pod by IP on the port its PostgreSQL listens on.
 */
async function addressInCluster(services: ClusterServices): Promise<{ host: string; port: number }> {
  const primary = services.name;
  const entry = services.entry;
  const access = entry.postgres;
  if (access?.host && !isLoopback(access.host)) return { host: access.host, port: access.port ?? 5432 };
  if (entry.target.kind !== 'kubernetes')
    throw new Error(
      `the primary "${primary}" is reached at ${access?.host ?? 'localhost'}, which a pod cannot reach: give it a network address in the catalog (postgres.host)`,
    );
  const address = await services.kubernetes('a replica rebuild').podAddress(0);
  if (!address) throw new Error(`the primary "${primary}"'s first pod has no IP address yet`);
  return { host: address, port: access?.portForward?.port ?? 5432 };
}
