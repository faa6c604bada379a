// One cluster's services, built from its catalog entry: the target driver (local or Kubernetes),
// the snapshot driver of its storage kind, how to reach its PostgreSQL, its WAL archive, its
// database volumes and server log. The one door from the activities into the drivers: an
// activity step asks for a cluster's services once and uses what they give.
import { readFileSync } from 'node:fs';
import { isAbsolute, relative } from 'node:path';
import type { ClusterEntry, KubernetesTarget, LocalTarget, StorageConfig } from '../config/schema';
import { DEFAULT_PG_BIN_DIR } from '../config/binDir';
import type { ClusterDriver, WaitOptions } from './cluster/types';
import { LocalClusterDriver } from './cluster/local';
import type { KubernetesClusterDriver } from './cluster/kubernetes';
import { helperDataDirectory, localDataDirectory, type StoppedDataDirectory } from './cluster/dataDirectory';
import { kubernetesDrivers } from './kubernetes';
import { resolvePgEndpoint } from './postgres/endpoint';
import type { PgEndpoint } from './postgres/session';
import { databaseVolumes } from './postgres/dataLayout';
import type { SnapshotDriver } from './storage/types';
import { LocalSnapshotDriver } from './storage/local';
import { RbdSnapshotDriver } from './storage/rbd';
import { pauseForTests } from './testPause';
import type { ScratchSpace } from './scratch/types';
import { LocalScratchSpace } from './scratch/localScratchSpace';
import type { DatabaseVolume, StorageKind } from '../contract/backups';

/**
 * The catalog entry does not fit what was asked of it (no storage section, a storage kind that
 * needs the other kind of target). Retrying cannot fix it: the registry makes it non-retryable.
 */
export class ClusterConfigurationError extends Error {
  override readonly name = 'ClusterConfigurationError';
}

/** Where the cluster's WAL archive is, and the PostgreSQL programs (pg_waldump, pg_dump) that read it. */
export interface ArchiveAccess {
  /** The catalog's walArchive: the directory this worker reads archived WAL from, if any. */
  walArchive?: string;
  /** Where this worker runs PostgreSQL's programs for the cluster. */
  pgBinDir: string;
}

export interface ClusterServices {
  readonly name: string;
  readonly entry: ClusterEntry;
  readonly archive: ArchiveAccess;
  /** The driver that stops and starts the cluster: pg_ctl (local) or its StatefulSet (Kubernetes). */
  target(): ClusterDriver;
  /** The StatefulSet driver; throws ClusterConfigurationError for a local target (`what` says who needs it). */
  kubernetes(what: string): KubernetesClusterDriver;
  /** The storage driver that snapshots this cluster's volumes (catalog `storage`), by its kind. */
  storage(): SnapshotDriver;
  /** How to reach the cluster's PostgreSQL, credentials resolved on this worker. */
  endpoint(): Promise<PgEndpoint>;
  /** Every volume that holds the database: PGDATA, pg_wal, tablespaces (local); the first pod's claims (Kubernetes). */
  databaseVolumes(): Promise<DatabaseVolume[]>;
  /**
   * Runs `use` with the stopped server's data directory: on the worker for a local target,
   * through a helper pod mounting the claims for a Kubernetes one (deleted again afterwards).
   */
  withStoppedDataDirectory<T>(use: (dir: StoppedDataDirectory) => Promise<T>, opts?: WaitOptions): Promise<T>;
  /** The server's log lines (local log file, or the first pod's container log), newest last. */
  serverLog(): Promise<string[]>;
  /** Where scratch instances of its backups are cloned and run (catalog `scratch`). */
  scratch(): ScratchSpace;
}

type StorageFactory<K extends StorageKind> = (
  cluster: string,
  entry: ClusterEntry,
  storage: Extract<StorageConfig, { kind: K }>,
) => SnapshotDriver;

/** The snapshot driver of each storage kind. A new kind: one entry here, its driver, and the schema. */
const STORAGE_DRIVERS: { [K in StorageKind]: StorageFactory<K> } = {
  local: (cluster, entry, storage) =>
    new LocalSnapshotDriver(localTarget(cluster, entry, 'storage kind "local"'), storage),
  rbd: (cluster, entry, storage) => {
    if (storage.runner === 'local')
      return new RbdSnapshotDriver(storage, localTarget(cluster, entry, 'storage runner "local"').pgdata);
    const target = kubernetesTarget(cluster, entry, 'storage rbd with runner "toolbox"');
    const kube = kubernetesDrivers();
    return new kube.RbdToolboxSnapshotDriver(target, storage, kube.loadKubeConfig(target));
  },
  csi: (cluster, entry, storage) => {
    const target = kubernetesTarget(cluster, entry, 'storage kind "csi"');
    const kube = kubernetesDrivers();
    return new kube.CsiSnapshotDriver(cluster, target, storage.volumeSnapshotClass, kube.loadKubeConfig(target));
  },
};

export function clusterServices(name: string, entry: ClusterEntry): ClusterServices {
  const target = entry.target;
  const kubernetesDriver = (t: KubernetesTarget): KubernetesClusterDriver => {
    const kube = kubernetesDrivers();
    return new kube.KubernetesClusterDriver(t, kube.loadKubeConfig(t));
  };
  const storage = (): SnapshotDriver => {
    const section = entry.storage;
    if (!section)
      throw new ClusterConfigurationError(
        `cluster "${name}" has no storage section in the catalog: add storage: { kind: ${Object.keys(STORAGE_DRIVERS).join(' | ')} } to back it up or restore it. Nothing was changed.`,
      );
    return (STORAGE_DRIVERS[section.kind] as StorageFactory<StorageKind>)(name, entry, section);
  };
  return {
    name,
    entry,
    archive: {
      walArchive: entry.walArchive,
      pgBinDir: target.kind === 'local' ? target.binDir : DEFAULT_PG_BIN_DIR,
    },
    target: () => (target.kind === 'local' ? new LocalClusterDriver(target) : kubernetesDriver(target)),
    kubernetes: (what) => kubernetesDriver(kubernetesTarget(name, entry, what)),
    storage,
    endpoint: () => resolvePgEndpoint(name, entry),
    async databaseVolumes() {
      if (target.kind === 'local') return databaseVolumes(target.pgdata);
      const layout = await kubernetesDriver(target).layout();
      return layout.claims.map((c) => ({
        role: c === layout.dataClaim ? ('data' as const) : ('claim' as const),
        path: c === layout.dataClaim ? layout.pgdata : c.mountPath,
        claim: c.claim,
      }));
    },
    async withStoppedDataDirectory<T>(use: (dir: StoppedDataDirectory) => Promise<T>, opts: WaitOptions = {}) {
      if (target.kind === 'local') return use(localDataDirectory(target));
      const helper = await kubernetesDriver(target).helperPod();
      opts.onProgress?.(`starting helper pod ${helper.name} to reach the data directory`);
      await helper.open(opts);
      try {
        await pauseForTests('helper-pod-open', opts.signal);
        return await use(helperDataDirectory(helper, opts.signal));
      } finally {
        await helper.close(opts);
      }
    },
    scratch() {
      const config = entry.scratch ?? { listenAddresses: 'localhost', sharedBuffers: '128MB' };
      if (target.kind === 'local')
        return new LocalScratchSpace(
          name,
          target,
          storage,
          config,
          entry.scratch?.dir ?? defaultScratchDir(entry, target),
        );
      const kube = kubernetesDrivers();
      return new kube.KubernetesScratchSpace(name, target, entry, storage(), kube.loadKubeConfig(target));
    },
    async serverLog() {
      if (target.kind === 'kubernetes') return kubernetesDriver(target).serverLog();
      const file = new LocalClusterDriver(target).logFile;
      try {
        return readFileSync(file, 'utf8').trimEnd().split('\n');
      } catch {
        return [];
      }
    },
  };
}

/** Beside PGDATA (local storage), or beside the mount point of the RBD image that holds it: never inside a database volume. */
function defaultScratchDir(entry: ClusterEntry, target: LocalTarget): string {
  const storage = entry.storage;
  if (storage?.kind === 'rbd' && storage.volumes) {
    const image = storage.volumes.find((v) => {
      const rel = relative(v.mountpoint, target.pgdata);
      return !rel.startsWith('..') && !isAbsolute(rel);
    });
    if (image) return `${image.mountpoint}.pgops-scratch`;
  }
  return `${target.pgdata}.pgops-scratch`;
}

/** The local target of a cluster whose data directory this worker reaches on its own file system. */
function localTarget(cluster: string, entry: ClusterEntry, what: string): LocalTarget {
  if (entry.target.kind !== 'local')
    throw new ClusterConfigurationError(`cluster "${cluster}": ${what} needs a local target`);
  return entry.target;
}

function kubernetesTarget(cluster: string, entry: ClusterEntry, what: string): KubernetesTarget {
  if (entry.target.kind !== 'kubernetes')
    throw new ClusterConfigurationError(`cluster "${cluster}": ${what} needs a kubernetes target`);
  return entry.target;
}
