// Resolves a cluster name from workflow input to its catalog entry, drivers and endpoint. The
// catalog is re-read on each lookup (through the source function) so an operator can fix it
// without restarting workers.
import { ApplicationFailure } from '@temporalio/activity';
import type { Catalog, ClusterEntry } from '../config/schema';
import { CatalogError } from '../config/catalog';
import { resolvePgEndpoint } from '../config/credentials';
import type { ClusterDriver } from '../drivers/cluster/types';
import { LocalClusterDriver } from '../drivers/cluster/local';
import { KubernetesClusterDriver, loadKubeConfig } from '../drivers/cluster/kubernetes';
import type { PgEndpoint } from '../drivers/postgres/session';
import { DEFAULT_PG_BIN_DIR } from '../drivers/postgres/binDir';
import { clusterNameProblem } from '../common/names';

export type CatalogSource = () => Catalog;

export class ClusterRegistry {
  constructor(private readonly catalog: CatalogSource) {}

  entry(cluster: string): ClusterEntry {
    const problem = clusterNameProblem(cluster);
    if (problem) throw ApplicationFailure.nonRetryable(problem, 'InvalidInput');
    let catalog: Catalog;
    try {
      catalog = this.catalog();
    } catch (err) {
      if (err instanceof CatalogError) throw ApplicationFailure.nonRetryable(err.message, 'ConfigurationError');
      throw err;
    }
    const entry = catalog.clusters[cluster];
    if (!entry) {
      const known = Object.keys(catalog.clusters);
      throw ApplicationFailure.nonRetryable(
        `unknown cluster "${cluster}": the worker's catalog has ${known.length ? known.map((k) => `"${k}"`).join(', ') : 'no clusters'}. Check the name, or add it to the catalog (PGOPS_CONFIG). Nothing was changed.`,
        'UnknownCluster',
      );
    }
    return entry;
  }

  driver(cluster: string): ClusterDriver {
    const target = this.entry(cluster).target;
    return target.kind === 'local'
      ? new LocalClusterDriver(target)
      : new KubernetesClusterDriver(target, loadKubeConfig(target));
  }

  /** Where this worker runs PostgreSQL's programs for the cluster (pg_waldump, pg_dump). */
  pgBinDir(cluster: string): string {
    const target = this.entry(cluster).target;
    return target.kind === 'local' ? target.binDir : DEFAULT_PG_BIN_DIR;
  }

  endpoint(cluster: string): Promise<PgEndpoint> {
    return resolvePgEndpoint(cluster, this.entry(cluster));
  }
}
