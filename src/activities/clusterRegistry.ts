// Resolves a cluster name from workflow input to its catalog entry and its services (the drivers,
// drivers/clusterServices.ts). The catalog is re-read on each lookup (through the source function)
// so an operator can fix it without restarting workers.
import { ApplicationFailure } from '@temporalio/activity';
import type { Catalog, ClusterEntry } from '../config/schema';
import { CatalogError } from '../config/catalog';
import { clusterNameProblem } from '../common/names';
import { ClusterConfigurationError, clusterServices, type ClusterServices } from '../drivers/clusterServices';

export type CatalogSource = () => Catalog;

export class ClusterRegistry {
  constructor(private readonly catalog: CatalogSource) {}

  /** The whole catalog as it is now (a configuration error is retryable, as for entry()). */
  catalogNow(): Catalog {
    try {
      return this.catalog();
    } catch (err) {
      if (err instanceof CatalogError) throw ApplicationFailure.retryable(err.message, 'ConfigurationError');
      throw err;
    }
  }

  entry(cluster: string): ClusterEntry {
    const problem = clusterNameProblem(cluster);
    if (problem) throw ApplicationFailure.nonRetryable(problem, 'InvalidInput');
    let catalog: Catalog;
    try {
      catalog = this.catalog();
    } catch (err) {
      // Retryable by nature (see failures.ts): ordinary steps refuse it by policy, bring-up steps retry.
      if (err instanceof CatalogError) throw ApplicationFailure.retryable(err.message, 'ConfigurationError');
      throw err;
    }
    const entry = catalog.clusters[cluster];
    if (!entry) {
      const known = Object.keys(catalog.clusters);
      throw ApplicationFailure.retryable(
        `unknown cluster "${cluster}": the worker's catalog has ${known.length ? known.map((k) => `"${k}"`).join(', ') : 'no clusters'}. Check the name, or add it to the catalog (PGOPS_CONFIG). Nothing was changed.`,
        'UnknownCluster',
      );
    }
    return entry;
  }

  /** The catalog's replicas of `primary` (entries whose replicaOf names it), by name. */
  replicasOf(primary: string): string[] {
    return Object.entries(this.catalog().clusters)
      .filter(([, entry]) => entry.replicaOf === primary)
      .map(([name]) => name);
  }

  /**
   * The cluster's services, from its catalog entry as it is now (the lookup's failures as for
   * entry()). A catalog entry that does not fit what a step asks of it (no storage section, a
   * storage kind on the wrong kind of target) fails the step for good: ConfigurationError.
   */
  services(cluster: string): ClusterServices {
    const services = clusterServices(cluster, this.entry(cluster));
    return {
      ...services,
      storage: () => refusingMisfit(() => services.storage()),
      kubernetes: (what) => refusingMisfit(() => services.kubernetes(what)),
      scratch: () => refusingMisfit(() => services.scratch()),
    };
  }
}

function refusingMisfit<T>(build: () => T): T {
  try {
    return build();
  } catch (err) {
    if (err instanceof ClusterConfigurationError)
      throw ApplicationFailure.nonRetryable(err.message, 'ConfigurationError');
    throw err;
  }
}
