// Resolves a cluster name from workflow input to its catalog entry, drivers and endpoint. The
// catalog is re-read on each lookup (through the source function) so an operator can fix it
// without restarting workers.
import { ApplicationFailure } from '@temporalio/activity';
import type { Catalog, ClusterEntry } from '../config/schema';
import { CatalogError } from '../config/catalog';
import { resolvePgEndpoint } from '../config/credentials';
import type { ClusterDriver } from '../drivers/cluster/types';
import { LocalClusterDriver } from '../drivers/cluster/local';
import { kubernetesDrivers } from '../drivers/kubernetes';
import type { KubernetesClusterDriver } from '../drivers/cluster/kubernetes';
import type { PgEndpoint } from '../drivers/postgres/session';
import { DEFAULT_PG_BIN_DIR } from '../drivers/postgres/binDir';
import { clusterNameProblem } from '../common/names';
import type { SnapshotDriver } from '../drivers/storage/types';
import { LocalSnapshotDriver } from '../drivers/storage/local';
import { RbdSnapshotDriver } from '../drivers/storage/rbd';
import { pauseForTests } from '../drivers/testPause';
import { helperDataDirectory, localDataDirectory, type StoppedDataDirectory } from '../drivers/cluster/dataDirectory';
import { databaseVolumes } from '../drivers/postgres/dataLayout';
import type { DatabaseVolume } from '../contract/backups';
import type { WaitOptions } from '../drivers/cluster/types';
import type { KubernetesTarget, LocalTarget } from '../config/schema';
import { readFileSync } from 'node:fs';

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

  driver(cluster: string): ClusterDriver {
    const target = this.entry(cluster).target;
    return target.kind === 'local' ? new LocalClusterDriver(target) : this.kubernetesDriver(target);
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
    if (storage.kind === 'csi') {
      const target = this.kubernetesTarget(cluster, 'storage kind "csi"');
      const kube = kubernetesDrivers();
      return new kube.CsiSnapshotDriver(cluster, target, storage.volumeSnapshotClass, kube.loadKubeConfig(target));
    }
    const target = this.kubernetesTarget(cluster, 'storage rbd with runner "toolbox"');
    const kube = kubernetesDrivers();
    return new kube.RbdToolboxSnapshotDriver(target, storage, kube.loadKubeConfig(target));
  }

  /** The local target of a cluster whose data directory this worker reaches on its own file system. */
  localTarget(cluster: string, what: string): LocalTarget {
    const target = this.entry(cluster).target;
    if (target.kind !== 'local')
      throw ApplicationFailure.nonRetryable(`cluster "${cluster}": ${what} needs a local target`, 'ConfigurationError');
    return target;
  }

  kubernetesTarget(cluster: string, what: string): KubernetesTarget {
    const target = this.entry(cluster).target;
    if (target.kind !== 'kubernetes')
      throw ApplicationFailure.nonRetryable(
        `cluster "${cluster}": ${what} needs a kubernetes target`,
        'ConfigurationError',
      );
    return target;
  }

  /** The StatefulSet driver of a cluster with a kubernetes target. */
  kubernetesClusterDriver(cluster: string, what: string): KubernetesClusterDriver {
    return this.kubernetesDriver(this.kubernetesTarget(cluster, what));
  }

  private kubernetesDriver(target: KubernetesTarget): KubernetesClusterDriver {
    const kube = kubernetesDrivers();
    return new kube.KubernetesClusterDriver(target, kube.loadKubeConfig(target));
  }

  /** Every volume that holds the database: PGDATA, pg_wal, tablespaces (local); the first pod's claims (Kubernetes). */
  async databaseVolumes(cluster: string): Promise<DatabaseVolume[]> {
    const target = this.entry(cluster).target;
    if (target.kind === 'local') return databaseVolumes(target.pgdata);
    const layout = await this.kubernetesDriver(target).layout();
    return layout.claims.map((c) => ({
      role: c === layout.dataClaim ? ('data' as const) : ('claim' as const),
      path: c === layout.dataClaim ? layout.pgdata : c.mountPath,
      claim: c.claim,
    }));
  }

  /**
   * Runs `use` with the stopped server's data directory: on the worker for a local target,
   * through a helper pod mounting the claims for a Kubernetes one (deleted again afterwards).
   */
  async withStoppedDataDirectory<T>(
    cluster: string,
    use: (dir: StoppedDataDirectory) => Promise<T>,
    opts: WaitOptions = {},
  ): Promise<T> {
    const target = this.entry(cluster).target;
    if (target.kind === 'local') return use(localDataDirectory(target));
    const helper = await this.kubernetesDriver(target).helperPod();
    opts.onProgress?.(`starting helper pod ${helper.name} to reach the data directory`);
    await helper.open(opts);
    try {
      await pauseForTests('helper-pod-open', opts.signal);
      return await use(helperDataDirectory(helper, opts.signal));
    } finally {
      await helper.close(opts);
    }
  }

  /** The server's log lines (local log file, or the first pod's container log), newest last. */
  async serverLog(cluster: string): Promise<string[]> {
    const target = this.entry(cluster).target;
    if (target.kind === 'kubernetes') return this.kubernetesDriver(target).serverLog();
    const file = new LocalClusterDriver(target).logFile;
    try {
      return readFileSync(file, 'utf8').trimEnd().split('\n');
    } catch {
      return [];
    }
  }
}
