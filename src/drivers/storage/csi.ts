// CSI VolumeSnapshots (snapshot.storage.k8s.io/v1) of a StatefulSet's claims. One VolumeSnapshot
// per claim of the first pod, named pgops-<backup id>-<claim> and labelled with the cluster and
// the backup id; the backup record is an annotation on the data claim's snapshot (as
// CloudNativePG keeps its backup facts), so it lives and dies with the snapshots. A rollback
// replaces each claim by a new one with the same name restored from its snapshot (dataSource);
// the replaced volume is kept (reclaim policy Retain) until the restore has succeeded. A deletion
// moves the record to the annotation pgops.temporal.io/deleting first (one patch) and deletes the
// snapshot that carries it last.
import { createHash } from 'node:crypto';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1PersistentVolumeClaim,
} from '@kubernetes/client-node';
import type { KubernetesTarget } from '../../config/schema';
import { callKube, isKubeStatus, readIfFound, type KubeCall } from '../kube/apiErrors';
import { statefulSetLayout, type StatefulSetLayout } from '../kube/statefulSetLayout';
import { PermanentDriverError, type WaitOptions } from '../cluster/types';
import { pollUntil } from '../waiting';
import { pauseForTests } from '../testPause';
import type {
  DeleteOptions,
  RollbackOptions,
  SnapshotDriver,
  SnapshotOptions,
  SnapshotPlan,
  ClonedVolumes,
  ClonePlacement,
  VolumeRestoreMethod,
} from './types';
import type { BackupBeingDeleted, BackupRecord, DatabaseVolume, SnapshotRef } from '../../contract/backups';
import { newestFirst } from './recordOrder';
import { beingDeleted, markForDeletion, type MarkedRecord } from './deletionMark';
import { cloneCsiSnapshots, removeCsiClone, type CsiCloneContext } from './csiClone';

const GROUP = 'snapshot.storage.k8s.io';
const VERSION = 'v1';
const PREFIX = 'pgops.temporal.io/';
export const CSI_LABELS = { cluster: `${PREFIX}cluster`, backup: `${PREFIX}backup` };
export const CSI_ANNOTATIONS = {
  record: `${PREFIX}backup-record`,
  /** The record of a backup being deleted, with who began the deletion. */
  deleting: `${PREFIX}deleting`,
  claim: `${PREFIX}claim`,
  restoreId: `${PREFIX}restore-id`,
  restoredFrom: `${PREFIX}restored-from`,
  previousVolume: `${PREFIX}previous-volume`,
  replacedBy: `${PREFIX}replaced-by-restore`,
  reclaimBefore: `${PREFIX}reclaim-policy-before`,
};
const SNAPSHOT_READY_TIMEOUT_MS = 30 * 60_000;
const CLAIM_BOUND_TIMEOUT_MS = 30 * 60_000;
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

interface VolumeSnapshot {
  metadata: {
    name: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
  };
  spec: { volumeSnapshotClassName?: string; source: { persistentVolumeClaimName?: string } };
  status?: { readyToUse?: boolean; restoreSize?: string | number; error?: { message?: string } };
}

/** pgops-<id>-<claim>, a valid object name (lower case; long names end in a hash instead). */
export function snapshotName(id: string, claim: string): string {
  const name = `pgops-${id.toLowerCase()}-${claim}`;
  if (name.length <= 253) return name;
  return `pgops-${id.toLowerCase()}-${createHash('sha256').update(claim).digest('hex').slice(0, 16)}`;
}

function backupOf(snap: VolumeSnapshot): string {
  return snap.metadata.labels?.[CSI_LABELS.backup] ?? '';
}

export class CsiSnapshotDriver implements SnapshotDriver {
  readonly kind = 'csi' as const;
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly namespace: string;

  constructor(
    private readonly cluster: string,
    private readonly target: KubernetesTarget,
    private readonly snapshotClass: string,
    private readonly kubeConfig: KubeConfig,
  ) {
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.apps = kubeConfig.makeApiClient(AppsV1Api);
    this.namespace = target.namespace;
  }

  private call(verb: string, resource: string, group: string, name?: string, clusterScoped = false): KubeCall {
    return { verb, resource, group, namespace: clusterScoped ? '(cluster)' : this.namespace, name };
  }

  async layout(): Promise<StatefulSetLayout> {
    const sts = await callKube(this.call('get', 'statefulsets', 'apps', this.target.statefulSet), () =>
      this.apps.readNamespacedStatefulSet({ name: this.target.statefulSet, namespace: this.namespace }),
    );
    return statefulSetLayout(sts, this.target);
  }

  private async listSnapshots(labelSelector: string): Promise<VolumeSnapshot[]> {
    const list = (await callKube(this.call('list', 'volumesnapshots', GROUP), () =>
      this.custom.listNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: this.namespace,
        plural: 'volumesnapshots',
        labelSelector,
      }),
    )) as { items: VolumeSnapshot[] };
    return list.items;
  }

  private async readSnapshot(name: string): Promise<VolumeSnapshot | undefined> {
    return (await readIfFound(this.call('get', 'volumesnapshots', GROUP, name), () =>
      this.custom.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: this.namespace,
        plural: 'volumesnapshots',
        name,
      }),
    )) as VolumeSnapshot | undefined;
  }

  private async patchSnapshotAnnotations(name: string, annotations: Record<string, string | null>): Promise<void> {
    await callKube(this.call('patch', 'volumesnapshots', GROUP, name), () =>
      this.custom.patchNamespacedCustomObject(
        {
          group: GROUP,
          version: VERSION,
          namespace: this.namespace,
          plural: 'volumesnapshots',
          name,
          body: { metadata: { annotations } },
        },
        mergePatch,
      ),
    );
  }

  private async readClaim(name: string): Promise<V1PersistentVolumeClaim | undefined> {
    return readIfFound(this.call('get', 'persistentvolumeclaims', '', name), () =>
      this.core.readNamespacedPersistentVolumeClaim({ name, namespace: this.namespace }),
    );
  }

  async plan(volumes: DatabaseVolume[]): Promise<SnapshotPlan> {
    const snapshotClass = (await callKube(
      this.call('get', 'volumesnapshotclasses', GROUP, this.snapshotClass, true),
      () =>
        this.custom.getClusterCustomObject({
          group: GROUP,
          version: VERSION,
          plural: 'volumesnapshotclasses',
          name: this.snapshotClass,
        }),
    ).catch((err: unknown) => {
      if (isKubeStatus(err, 404))
        throw new PermanentDriverError(
          `VolumeSnapshotClass "${this.snapshotClass}" (catalog storage.volumeSnapshotClass) does not exist: kubectl get volumesnapshotclass lists those there are`,
        );
      throw err;
    })) as { driver?: string };
    const methods: string[] = [];
    for (const volume of volumes) {
      if (!volume.claim)
        throw new PermanentDriverError(`the ${volume.role} volume ${volume.path} is not a PersistentVolumeClaim`);
      const claim = await this.readClaim(volume.claim);
      if (!claim)
        throw new PermanentDriverError(`PersistentVolumeClaim ${this.namespace}/${volume.claim} does not exist`);
      if (claim.status?.phase !== 'Bound' || !claim.spec?.volumeName)
        throw new PermanentDriverError(
          `PersistentVolumeClaim ${this.namespace}/${volume.claim} is ${claim.status?.phase ?? 'not bound'}: only a bound claim can be snapshotted`,
        );
      const pv = await callKube(this.call('get', 'persistentvolumes', '', claim.spec.volumeName, true), () =>
        this.core.readPersistentVolume({ name: claim.spec!.volumeName! }),
      );
      const driver = pv.spec?.csi?.driver;
      if (!driver)
        throw new PermanentDriverError(
          `PersistentVolumeClaim ${this.namespace}/${volume.claim} is on PersistentVolume ${claim.spec.volumeName}, which is not a CSI volume: a VolumeSnapshot cannot be taken of it`,
        );
      if (snapshotClass.driver && snapshotClass.driver !== driver)
        throw new PermanentDriverError(
          `VolumeSnapshotClass "${this.snapshotClass}" is for CSI driver ${snapshotClass.driver}, but claim ${volume.claim} is on ${driver}: name a class of ${driver} in storage.volumeSnapshotClass`,
        );
      methods.push(
        `${volume.role} ${volume.claim} (at ${volume.path}): VolumeSnapshot of class ${this.snapshotClass} (${driver})`,
      );
    }
    return { volumes, methods };
  }

  async createSnapshots(id: string, volumes: DatabaseVolume[], opts: SnapshotOptions): Promise<SnapshotRef[]> {
    const existing = await this.listSnapshots(`${CSI_LABELS.backup}=${id}`);
    if (existing.some((s) => s.metadata.annotations?.[CSI_ANNOTATIONS.record]))
      throw new Error(`backup ${id} already exists with its record; refusing to overwrite it`);
    // A half-made set left by a crashed attempt: it was taken outside the backup that failed.
    await this.deleteSnapshots(existing, opts);
    const refs: SnapshotRef[] = [];
    for (const volume of volumes) {
      const claim = volume.claim!;
      const name = snapshotName(id, claim);
      opts.onProgress?.(`creating VolumeSnapshot ${name} of claim ${claim}`);
      await callKube(this.call('create', 'volumesnapshots', GROUP, name), () =>
        this.custom.createNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace: this.namespace,
          plural: 'volumesnapshots',
          body: {
            apiVersion: `${GROUP}/${VERSION}`,
            kind: 'VolumeSnapshot',
            metadata: {
              name,
              labels: { [CSI_LABELS.cluster]: this.cluster, [CSI_LABELS.backup]: id },
              annotations: { [CSI_ANNOTATIONS.claim]: claim },
            },
            spec: { volumeSnapshotClassName: this.snapshotClass, source: { persistentVolumeClaimName: claim } },
          },
        }),
      );
      refs.push({ role: volume.role, source: claim, method: 'csi', ref: name });
    }
    for (const ref of refs) await this.waitReady(ref.ref, opts);
    return refs;
  }

  private async waitReady(name: string, opts: WaitOptions): Promise<void> {
    await pollUntil<void>(
      async () => {
        const snap = await this.readSnapshot(name);
        if (!snap) throw new Error(`VolumeSnapshot ${this.namespace}/${name} disappeared while it was being taken`);
        if (snap.status?.readyToUse) return { done: undefined };
        if (snap.status?.error?.message)
          throw new Error(`VolumeSnapshot ${this.namespace}/${name} failed: ${snap.status.error.message}`);
        return { waiting: `VolumeSnapshot ${name}: not ready to use yet` };
      },
      {
        intervalMs: 250,
        timeoutMs: SNAPSHOT_READY_TIMEOUT_MS,
        what: `VolumeSnapshot ${this.namespace}/${name} to be readyToUse`,
        onProgress: opts.onProgress,
        signal: opts.signal,
      },
    );
  }

  async recoverFromCrash(): Promise<void> {
    // Nothing is frozen: PostgreSQL's backup mode makes a crash-consistent CSI snapshot restorable.
  }

  async saveRecord(record: BackupRecord): Promise<void> {
    const data = record.snapshots.find((s) => s.role === 'data') ?? record.snapshots[0];
    if (!data) throw new Error(`backup ${record.id} has no snapshot to keep its record on`);
    await this.patchSnapshotAnnotations(data.ref, { [CSI_ANNOTATIONS.record]: JSON.stringify(record) });
  }

  async listRecords(): Promise<BackupRecord[]> {
    const snaps = await this.listSnapshots(`${CSI_LABELS.cluster}=${this.cluster}`);
    const deleting = new Set(snaps.filter((s) => s.metadata.annotations?.[CSI_ANNOTATIONS.deleting]).map(backupOf));
    return snaps
      .filter((s) => !s.metadata.deletionTimestamp && !deleting.has(backupOf(s)))
      .map((s) => s.metadata.annotations?.[CSI_ANNOTATIONS.record])
      .filter((r): r is string => r !== undefined)
      .map((r) => JSON.parse(r) as BackupRecord)
      .sort(newestFirst);
  }

  async listBeingDeleted(): Promise<BackupBeingDeleted[]> {
    return (await this.listSnapshots(`${CSI_LABELS.cluster}=${this.cluster}`))
      .map((s) => s.metadata.annotations?.[CSI_ANNOTATIONS.deleting])
      .filter((r): r is string => r !== undefined)
      .map((r) => beingDeleted(JSON.parse(r) as MarkedRecord))
      .sort(newestFirst);
  }

  async strayIds(): Promise<string[]> {
    const snaps = await this.listSnapshots(`${CSI_LABELS.cluster}=${this.cluster}`);
    const annotated = (s: VolumeSnapshot, key: string) => s.metadata.annotations?.[key] !== undefined;
    const recorded = new Set(
      snaps
        .filter(
          (s) =>
            annotated(s, CSI_ANNOTATIONS.deleting) ||
            (annotated(s, CSI_ANNOTATIONS.record) && !s.metadata.deletionTimestamp),
        )
        .map(backupOf),
    );
    return [...new Set(snaps.map(backupOf).filter((id) => id && !recorded.has(id)))];
  }

  async deleteBackup(id: string, opts: DeleteOptions = {}): Promise<void> {
    const snaps = await this.listSnapshots(`${CSI_LABELS.backup}=${id}`);
    let marked = snaps.find((s) => s.metadata.annotations?.[CSI_ANNOTATIONS.deleting]);
    const recorded = snaps.find((s) => s.metadata.annotations?.[CSI_ANNOTATIONS.record]);
    if (recorded) {
      // One patch moves the record to the mark; a mark already there keeps who began the deletion.
      const record = JSON.parse(recorded.metadata.annotations![CSI_ANNOTATIONS.record]!) as BackupRecord;
      await this.patchSnapshotAnnotations(recorded.metadata.name, {
        [CSI_ANNOTATIONS.record]: null,
        ...(marked ? {} : { [CSI_ANNOTATIONS.deleting]: JSON.stringify(markForDeletion(record, opts.by)) }),
      });
      marked ??= recorded;
    }
    await pauseForTests('delete-marked', opts.signal);
    // The snapshot carrying the mark goes last, once every other one is gone.
    const others = snaps.filter((s) => s.metadata.name !== marked?.metadata.name);
    await this.deleteSnapshots(others, opts);
    // A crash test kills the worker here: some VolumeSnapshots deleted, the mark still there.
    if (others.length > 0) await pauseForTests('delete-partly-removed', opts.signal);
    if (marked) await this.deleteSnapshots([marked], opts);
  }

  private async deleteSnapshots(snaps: VolumeSnapshot[], opts: WaitOptions): Promise<void> {
    for (const snap of snaps) {
      opts.onProgress?.(`deleting VolumeSnapshot ${snap.metadata.name}`);
      await callKube(this.call('delete', 'volumesnapshots', GROUP, snap.metadata.name), () =>
        this.custom.deleteNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace: this.namespace,
          plural: 'volumesnapshots',
          name: snap.metadata.name,
        }),
      ).catch((err: unknown) => {
        if (!isKubeStatus(err, 404)) throw err;
      });
    }
    for (const snap of snaps)
      await pollUntil<void>(
        async () => ((await this.readSnapshot(snap.metadata.name)) ? { waiting: 'still there' } : { done: undefined }),
        {
          intervalMs: 250,
          timeoutMs: 300_000,
          what: `VolumeSnapshot ${this.namespace}/${snap.metadata.name} to be deleted`,
          onProgress: opts.onProgress,
          signal: opts.signal,
        },
      );
  }

  restoreMethodProblem(method: VolumeRestoreMethod): string | undefined {
    return method === 'clone-swap'
      ? `storage kind "csi" restores by its own method (new claims restored from the VolumeSnapshots): restoreMethod "clone-swap" is for storage kind "rbd" with runner "local"`
      : undefined;
  }

  async rollback(record: BackupRecord, opts: RollbackOptions): Promise<{ ms: number; methods: string[] }> {
    const started = Date.now();
    const layout = await this.layout();
    const methods: string[] = [];
    for (const ref of record.snapshots) {
      const snap = await this.readSnapshot(ref.ref);
      if (!snap || snap.metadata.deletionTimestamp)
        throw new PermanentDriverError(`VolumeSnapshot ${this.namespace}/${ref.ref} of backup ${record.id} is missing`);
      if (!snap.status?.readyToUse)
        throw new PermanentDriverError(
          `VolumeSnapshot ${this.namespace}/${ref.ref} of backup ${record.id} is not ready to use`,
        );
      if (!layout.claims.some((c) => c.claim === ref.source))
        throw new PermanentDriverError(
          `backup ${record.id} has a snapshot of claim ${ref.source}, which StatefulSet ${this.namespace}/${layout.statefulSet} no longer has`,
        );
    }
    for (const ref of record.snapshots) {
      await this.restoreClaim(layout, ref, opts);
      methods.push(`claim ${ref.source} restored from VolumeSnapshot ${ref.ref}`);
    }
    return { ms: Date.now() - started, methods };
  }

  /** Replaces one claim by a new one restored from the snapshot; a retry finishes what a crash left. */
  private async restoreClaim(layout: StatefulSetLayout, ref: SnapshotRef, opts: RollbackOptions): Promise<void> {
    const name = ref.source;
    let current = await this.readClaim(name);
    let previousVolume: string | undefined;
    if (current && current.metadata?.annotations?.[CSI_ANNOTATIONS.restoreId] !== opts.restoreId) {
      previousVolume = current.spec?.volumeName;
      await this.deleteClaimKeepingVolume(name, current, previousVolume, opts);
      current = await this.readClaim(name);
      await pauseForTests('csi-claim-deleted', opts.signal);
    }
    if (!current) await this.createRestoredClaim(layout, ref, opts, previousVolume);
    await this.waitForRestoredClaim(ref, opts);
  }

  /** Deletes the claim a restore replaces, its volume kept (Retain), and waits until it is gone. */
  private async deleteClaimKeepingVolume(
    name: string,
    current: V1PersistentVolumeClaim,
    previousVolume: string | undefined,
    opts: RollbackOptions,
  ): Promise<void> {
    if (previousVolume) await this.keepVolume(previousVolume, opts.restoreId);
    opts.onProgress?.(`deleting claim ${name} (its volume ${previousVolume ?? '-'} is kept)`);
    if (!current.metadata?.deletionTimestamp)
      await callKube(this.call('delete', 'persistentvolumeclaims', '', name), () =>
        this.core.deleteNamespacedPersistentVolumeClaim({
          name,
          namespace: this.namespace,
          body: { preconditions: { uid: current.metadata?.uid } },
        }),
      ).catch((err: unknown) => {
        if (!isKubeStatus(err, 404) && !isKubeStatus(err, 409)) throw err;
      });
    await pollUntil<void>(
      async () => {
        const claim = await this.readClaim(name);
        if (!claim || claim.metadata?.uid !== current.metadata?.uid) return { done: undefined };
        return { waiting: `claim ${name} is being deleted (a pod still using it holds it)` };
      },
      {
        intervalMs: 250,
        timeoutMs: 300_000,
        what: `claim ${this.namespace}/${name} to be deleted`,
        onProgress: opts.onProgress,
        signal: opts.signal,
      },
    );
  }

  /** Creates the claim `ref.source` from the VolumeSnapshot, as the StatefulSet's template has it. */
  private async createRestoredClaim(
    layout: StatefulSetLayout,
    ref: SnapshotRef,
    opts: RollbackOptions,
    previousVolume: string | undefined,
  ): Promise<void> {
    const name = ref.source;
    const template = layout.templates.get(layout.claims.find((c) => c.claim === name)?.template ?? '');
    opts.onProgress?.(`creating claim ${name} from VolumeSnapshot ${ref.ref}`);
    await callKube(this.call('create', 'persistentvolumeclaims', '', name), () =>
      this.core.createNamespacedPersistentVolumeClaim({
        namespace: this.namespace,
        body: {
          metadata: {
            name,
            labels: template?.metadata?.labels,
            annotations: {
              [CSI_ANNOTATIONS.restoreId]: opts.restoreId,
              [CSI_ANNOTATIONS.restoredFrom]: ref.ref,
              ...(previousVolume ? { [CSI_ANNOTATIONS.previousVolume]: previousVolume } : {}),
            },
          },
          spec: {
            accessModes: template?.spec?.accessModes ?? ['ReadWriteOnce'],
            storageClassName: template?.spec?.storageClassName,
            volumeMode: template?.spec?.volumeMode,
            resources: template?.spec?.resources ?? { requests: { storage: '1Gi' } },
            dataSource: { apiGroup: GROUP, kind: 'VolumeSnapshot', name: ref.ref },
          },
        },
      }),
    ).catch((err: unknown) => {
      if (!isKubeStatus(err, 409)) throw err;
    });
  }

  /** Waits until the restored claim is Bound; fails if another restore (or anyone) replaced it. */
  private async waitForRestoredClaim(ref: SnapshotRef, opts: RollbackOptions): Promise<void> {
    const name = ref.source;
    await pollUntil<void>(
      async () => {
        const claim = await this.readClaim(name);
        if (claim?.metadata?.annotations?.[CSI_ANNOTATIONS.restoreId] !== opts.restoreId)
          throw new Error(`claim ${this.namespace}/${name} was replaced by someone else during the restore`);
        return claim.status?.phase === 'Bound'
          ? { done: undefined }
          : { waiting: `claim ${name} restored from ${ref.ref}: ${claim.status?.phase ?? 'Pending'}` };
      },
      {
        intervalMs: 250,
        timeoutMs: CLAIM_BOUND_TIMEOUT_MS,
        what: `claim ${this.namespace}/${name} restored from VolumeSnapshot ${ref.ref} to be Bound`,
        onProgress: opts.onProgress,
        signal: opts.signal,
      },
    );
  }

  /** Reclaim policy Retain on the volume a restore replaces, remembering what it was. */
  private async keepVolume(pvName: string, restoreId: string): Promise<void> {
    const pv = await callKube(this.call('get', 'persistentvolumes', '', pvName, true), () =>
      this.core.readPersistentVolume({ name: pvName }),
    );
    const annotations = pv.metadata?.annotations ?? {};
    if (annotations[CSI_ANNOTATIONS.replacedBy] === restoreId) return;
    await callKube(this.call('patch', 'persistentvolumes', '', pvName, true), () =>
      this.core.patchPersistentVolume(
        {
          name: pvName,
          body: {
            metadata: {
              annotations: {
                [CSI_ANNOTATIONS.replacedBy]: restoreId,
                [CSI_ANNOTATIONS.reclaimBefore]:
                  annotations[CSI_ANNOTATIONS.reclaimBefore] ?? pv.spec?.persistentVolumeReclaimPolicy ?? 'Delete',
              },
            },
            spec: { persistentVolumeReclaimPolicy: 'Retain' },
          },
        },
        mergePatch,
      ),
    );
  }

  async releaseReplaced(restoreId: string): Promise<string[]> {
    const layout = await this.layout();
    const released: string[] = [];
    for (const { claim } of layout.claims) {
      const pvc = await this.readClaim(claim);
      const annotations = pvc?.metadata?.annotations ?? {};
      const pvName = annotations[CSI_ANNOTATIONS.previousVolume];
      if (annotations[CSI_ANNOTATIONS.restoreId] !== restoreId || !pvName) continue;
      const pv = await readIfFound(this.call('get', 'persistentvolumes', '', pvName, true), () =>
        this.core.readPersistentVolume({ name: pvName }),
      );
      const before = pv?.metadata?.annotations?.[CSI_ANNOTATIONS.reclaimBefore];
      if (!pv || pv.metadata?.annotations?.[CSI_ANNOTATIONS.replacedBy] !== restoreId || before === undefined) continue;
      await callKube(this.call('patch', 'persistentvolumes', '', pvName, true), () =>
        this.core.patchPersistentVolume(
          {
            name: pvName,
            body: {
              metadata: { annotations: { [CSI_ANNOTATIONS.reclaimBefore]: null } },
              spec: { persistentVolumeReclaimPolicy: before },
            },
          },
          mergePatch,
        ),
      );
      released.push(`${pvName} (reclaim policy ${before})`);
    }
    return released;
  }

  /** A claim restored from each VolumeSnapshot of the backup, beside the StatefulSet's (csiClone.ts). */
  cloneSnapshots(record: BackupRecord, place: ClonePlacement, opts: WaitOptions = {}): Promise<ClonedVolumes> {
    return cloneCsiSnapshots(this.cloneContext(), record, place, opts);
  }

  removeClone(place: ClonePlacement, opts: WaitOptions = {}): Promise<void> {
    return removeCsiClone(this.cloneContext(), place, opts);
  }

  private cloneContext(): CsiCloneContext {
    return {
      cluster: this.cluster,
      namespace: this.namespace,
      core: this.core,
      custom: this.custom,
      kubeConfig: this.kubeConfig,
      layout: () => this.layout(),
    };
  }
}
