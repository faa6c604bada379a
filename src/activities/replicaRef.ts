// What every PITR step is given (a replica by its cluster name), and the replica's primary.
import type { ClusterRegistry } from './clusterRegistry';
import type { LockedStepInput } from './lockGuard';
import type { ClusterServices } from '../drivers/clusterServices';
import type { PgEndpoint } from '../drivers/postgres/session';

/** A replica by its cluster name; `lockGrantedAt` as for every step (lockGuard.ts). */
export type ReplicaRef = LockedStepInput;

/** How to reach the replica's primary (its catalog replicaOf), if it names one. */
export async function primaryEndpoint(
  registry: ClusterRegistry,
  replica: ClusterServices,
): Promise<PgEndpoint | undefined> {
  const primary = replica.entry.replicaOf;
  return primary ? registry.services(primary).endpoint() : undefined;
}
