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
import type { SnapshotDriver } from '../drivers/storage/types';
import { LocalSnapshotDriver } from '../drivers/storage/local';
import { RbdSnapshotDriver } from '../drivers/storage/rbd';
import { localDataDirectory, type DataDirectoryFiles } from '../drivers/cluster/dataDirectory';
import type { LocalTarget } from '../config/schema';

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

  /** The storage driver that snapshots this cluster's volumes (catalog `storage`). */
  snapshotDriver(cluster: string): SnapshotDriver {
    const entry = this.entry(cluster);
    const storage = entry.storage;
    if (!storage)
      throw ApplicationFailure.nonRetryable(
        `cluster "${cluster}" has no storage section in the catalog: add storage: { kind: local | rbd | csi } to back it up or restore it. Nothing was changed.`,
        'ConfigurationError',
      );
    if (storage.kind === 'local')
      return new LocalSnapshotDriver(this.localTarget(cluster, 'storage kind "local"'), storage);
    if (storage.kind === 'rbd' && storage.runner === 'local')
      return new RbdSnapshotDriver(storage, this.localTarget(cluster, 'storage runner "local"').pgdata);
    throw ApplicationFailure.nonRetryable(
      `cluster "${cluster}": storage ${storage.kind}${storage.kind === 'rbd' ? ' with runner "toolbox"' : ''} on Kubernetes is not available in this version (local and rbd runner "local" are). Nothing was changed.`,
      'ConfigurationError',
    );
  }

  /** The local target of a cluster whose data directory this worker reaches on its own file system. */
  localTarget(cluster: string, what: string): LocalTarget {
    const target = this.entry(cluster).target;
    if (target.kind !== 'local')
      throw ApplicationFailure.nonRetryable(`cluster "${cluster}": ${what} needs a local target`, 'ConfigurationError');
    return target;
  }

  /** Files in the (stopped) server's data directory. */
  dataDirectory(cluster: string): DataDirectoryFiles {
    return localDataDirectory(this.localTarget(cluster, 'writing recovery files').pgdata);
  }
}
