// Ceph RBD snapshots of a StatefulSet's claims with `rbd` in the Rook toolbox pod (docs/runbooks/snapshot-backup.md's
// `kubectl exec <toolbox> -- rbd snap create replicapool/<image>@<snap>`), through pods/exec with
// argument arrays. The image behind each claim is found as ceph-csi records it: PVC → PV →
// spec.csi.volumeAttributes pool / imageName. The StatefulSet is at 0 during a rollback, so
// ceph-csi has unmapped the image; the rollback still waits until `rbd status` shows no client.
// The file system cannot be frozen from the toolbox (it is mounted on a node): an online
// snapshot is crash-consistent, which PostgreSQL's backup mode and WAL replay make restorable.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { KubernetesTarget, RbdStorageConfig } from '../../config/schema';
import { callKube, isKubeStatus } from '../kube/apiErrors';
import { execInPod } from '../kube/podExec';
import { PermanentDriverError, type WaitOptions } from '../cluster/types';
import { KubernetesClusterDriver } from '../cluster/kubernetes';
import { pollUntil } from '../waiting';
import { RbdCli } from './rbdCli';
import { RbdImageSet, type RbdImageOf } from './rbdImageSet';
import type {
  DeleteOptions,
  SnapshotDriver,
  SnapshotOptions,
  SnapshotPlan,
  ClonedVolumes,
  ClonePlacement,
  VolumeRestoreMethod,
} from './types';
import type { VolumesRolledBack } from '../../contract/operations/restoreSteps';
import type { BackupBeingDeleted, BackupRecord, DatabaseVolume, SnapshotRef } from '../../contract/backups';

const RBD_NAME = /^[A-Za-z0-9_.-]{1,100}$/;
const NO_CLIENT_TIMEOUT_MS = 300_000;
/**
 * Why the toolbox runner never clone-swaps: ceph-csi keeps each volume's RBD image id in its journal
 * (omap csi.volume.<uuid>, key csi.imageid). A clone under the same name has a new id, which ceph-csi's
 * later DeleteVolume, expansion and snapshots would not find (or would find the image set aside).
 */
const CEPH_CSI_KEEPS_THE_ID =
  "ceph-csi keeps each volume's RBD image id in its journal, and a clone under the same name has another id; the toolbox runner restores by rbd snap rollback";

interface ClaimImage extends RbdImageOf {
  claim: string;
}

export class RbdToolboxSnapshotDriver implements SnapshotDriver {
  readonly kind = 'rbd' as const;
  private readonly core: CoreV1Api;
  private readonly toolbox: NonNullable<RbdStorageConfig['toolbox']>;
  private readonly rbd: RbdCli;
  private imageSet?: RbdImageSet;

  constructor(
    private readonly target: KubernetesTarget,
    storage: RbdStorageConfig,
    private readonly kubeConfig: KubeConfig,
  ) {
    if (!storage.toolbox)
      throw new PermanentDriverError('storage runner "toolbox" needs toolbox: { namespace, labelSelector }');
    this.toolbox = storage.toolbox;
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.rbd = new RbdCli(async (args, signal) => {
      const pod = await this.toolboxPod();
      return execInPod(this.kubeConfig, { namespace: this.toolbox.namespace, ...pod }, ['rbd', ...args], {
        signal,
        timeoutMs: 600_000,
      });
    });
  }

  /** A running, ready toolbox pod (its name changes with each rollout, so it is looked up by label). */
  private async toolboxPod(): Promise<{ pod: string; container: string }> {
    const { namespace, labelSelector } = this.toolbox;
    const pods = await callKube({ verb: 'list', resource: 'pods', group: '', namespace }, () =>
      this.core.listNamespacedPod({ namespace, labelSelector }),
    );
    const ready = pods.items.find(
      (p) =>
        !p.metadata?.deletionTimestamp &&
        p.status?.phase === 'Running' &&
        (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
    );
    if (!ready)
      throw new Error(
        `no ready Rook toolbox pod in namespace ${namespace} matches ${labelSelector} (${pods.items.length} pod(s) found): deploy the toolbox (rook-ceph-tools) or fix storage.toolbox`,
      );
    return { pod: ready.metadata!.name!, container: ready.spec!.containers[0]!.name };
  }

  /** The RBD image of every claim of the first pod, data first. */
  private async claimImages(): Promise<ClaimImage[]> {
    const layout = await new KubernetesClusterDriver(this.target, this.kubeConfig).layout();
    const images: ClaimImage[] = [];
    for (const mount of layout.claims) {
      images.push({ ...(await this.imageOf(mount.claim)), role: mount === layout.dataClaim ? 'data' : 'claim' });
    }
    return images;
  }

  private async imageOf(claim: string): Promise<Omit<ClaimImage, 'role'>> {
    const { namespace } = this.target;
    const pvc = await callKube(
      { verb: 'get', resource: 'persistentvolumeclaims', group: '', namespace, name: claim },
      () => this.core.readNamespacedPersistentVolumeClaim({ name: claim, namespace }),
    ).catch((err: unknown) => {
      if (isKubeStatus(err, 404))
        throw new PermanentDriverError(`PersistentVolumeClaim ${namespace}/${claim} does not exist`);
      throw err;
    });
    const pvName = pvc.spec?.volumeName;
    if (!pvName) throw new PermanentDriverError(`PersistentVolumeClaim ${namespace}/${claim} is not bound`);
    const pv = await callKube(
      { verb: 'get', resource: 'persistentvolumes', group: '', namespace: '(cluster)', name: pvName },
      () => this.core.readPersistentVolume({ name: pvName }),
    );
    const attrs = pv.spec?.csi?.volumeAttributes ?? {};
    const pool = attrs.pool;
    const image = attrs.imageName;
    if (!pool || !image)
      throw new PermanentDriverError(
        `claim ${namespace}/${claim} is on PersistentVolume ${pvName}, which is not a ceph-csi RBD volume (no spec.csi.volumeAttributes pool and imageName): use storage kind "csi" for it`,
      );
    if (!RBD_NAME.test(pool) || !RBD_NAME.test(image))
      throw new PermanentDriverError(
        `PersistentVolume ${pvName} names RBD image ${pool}/${image}, which is not a plain name`,
      );
    return { claim, spec: `${pool}/${image}` };
  }

  private async set(): Promise<RbdImageSet> {
    if (!this.imageSet) {
      const images = await this.claimImages();
      this.imageSet = new RbdImageSet(this.rbd, images[0]!.spec, async () => images.map((i) => i.spec));
    }
    return this.imageSet;
  }

  async plan(volumes: DatabaseVolume[]): Promise<SnapshotPlan> {
    const images = await this.claimImages();
    await this.toolboxPod();
    const methods = volumes.map((volume) => {
      const image = images.find((i) => i.claim === volume.claim);
      if (!image)
        throw new PermanentDriverError(`the ${volume.role} volume ${volume.path} is not a claim of the StatefulSet`);
      return `${volume.role} ${volume.claim} (at ${volume.path}): rbd snapshot of ${image.spec} in the toolbox pod`;
    });
    return { volumes, methods };
  }

  async createSnapshots(id: string, volumes: DatabaseVolume[], opts: SnapshotOptions): Promise<SnapshotRef[]> {
    const images = (await this.claimImages()).filter((i) => volumes.some((v) => v.claim === i.claim));
    const set = await this.set();
    await set.prepare(id, images, opts.signal);
    await set.snapshot(id, images, opts.onProgress, opts.signal);
    return set.verify(id, images, (image) => (image as ClaimImage).claim);
  }

  async recoverFromCrash(): Promise<void> {
    // Nothing is frozen by this runner.
  }

  async saveRecord(record: BackupRecord): Promise<void> {
    await (await this.set()).saveRecord(record);
  }

  async listRecords(): Promise<BackupRecord[]> {
    return (await this.set()).listRecords();
  }

  async listBeingDeleted(): Promise<BackupBeingDeleted[]> {
    return (await this.set()).listBeingDeleted();
  }

  async strayIds(): Promise<string[]> {
    return (await this.set()).strayIds();
  }

  async deleteBackup(id: string, opts: DeleteOptions = {}): Promise<void> {
    await (await this.set()).deleteBackup(id, opts);
  }

  restoreMethodProblem(method: VolumeRestoreMethod): string | undefined {
    return method === 'clone-swap'
      ? `restoreMethod "clone-swap" cannot be used with runner "toolbox": ${CEPH_CSI_KEEPS_THE_ID}`
      : undefined;
  }

  async rollback(record: BackupRecord, opts: WaitOptions = {}): Promise<VolumesRolledBack> {
    const started = Date.now();
    const snaps = await (await this.set()).snapshotsOf(record);
    const moved = snaps.find(({ spec, holder }) => spec !== holder);
    if (moved)
      throw new PermanentDriverError(
        `snapshot ${moved.snap} of ${moved.spec} is on ${moved.holder}, an image set aside by a clone-swap: rbd snap rollback cannot reach it from the toolbox`,
      );
    for (const { spec } of snaps)
      await pollUntil<void>(
        async () => {
          const clients = await this.rbd.watchers(spec);
          return clients === 0
            ? { done: undefined }
            : { waiting: `${spec} is still open by ${clients} client(s) (mapped on a node)` };
        },
        {
          intervalMs: 500,
          timeoutMs: NO_CLIENT_TIMEOUT_MS,
          what: `RBD image ${spec} to be unmapped by every node (the StatefulSet is at 0, so ceph-csi should unstage it)`,
          onProgress: opts.onProgress,
          signal: opts.signal,
        },
      );
    for (const { spec, snap } of snaps) {
      opts.onProgress?.(`rbd snap rollback ${spec}@${snap}`);
      await this.rbd.rollback(spec, snap, opts.signal);
    }
    return {
      ms: Date.now() - started,
      method: 'rollback',
      methodNote: `runner toolbox: ${CEPH_CSI_KEEPS_THE_ID}`,
      methods: snaps.map(({ spec, snap }) => `rbd snap rollback ${spec}@${snap} (toolbox)`),
    };
  }

  // Not built: an `rbd clone` in the toolbox would need a static ceph-csi PersistentVolume for the
  // scratch pod (driver, clusterID and node-stage secret copied from the claim's volume), and a
  // live clone keeps its parent snapshot from being deleted with the backup.
  async cloneSnapshots(record: BackupRecord, _place: ClonePlacement): Promise<ClonedVolumes> {
    throw new PermanentDriverError(
      `scratch clones of backup ${record.id} are not supported on storage kind "rbd" with runner "toolbox" yet: ` +
        'use storage kind "csi" with ceph-csi\'s VolumeSnapshotClass for restore drills and scratch restores on Kubernetes',
    );
  }

  async removeClone(_place: ClonePlacement): Promise<void> {
    // Nothing is ever cloned on this storage kind yet.
  }
}
