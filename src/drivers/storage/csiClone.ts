// Scratch clones of a CSI backup: one new claim per VolumeSnapshot of the backup, restored from it
// (dataSource), named <claim>-<scratch id> and labelled with the scratch id and the cluster. The
// StatefulSet's claims and the snapshots are only read. Each clone is mounted in the scratch pod
// at the mount path its claim has in the StatefulSet's pod, so PGDATA, the pg_wal link and every
// path in the data directory stay valid without remapping. Removal goes by label, so it works
// after a crash that lost everything but the scratch id.
import { createHash } from 'node:crypto';
import type { CoreV1Api, CustomObjectsApi, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { StorageV1Api, type KubeConfig } from '@kubernetes/client-node';
import { callKube, isKubeStatus, readIfFound, type KubeCall } from '../kube/apiErrors';
import type { StatefulSetLayout } from '../kube/statefulSetLayout';
import { PermanentDriverError, type WaitOptions } from '../cluster/types';
import { checkScratchId } from '../scratch/scratchId';
import { pollUntil } from '../waiting';
import type { ClonedVolumes, ClonePlacement } from './types';
import type { BackupRecord, SnapshotRef } from '../../contract/backups';

const PREFIX = 'pgops.temporal.io/';
export const CLONE_LABELS = { scratch: `${PREFIX}scratch`, cluster: `${PREFIX}cluster` };
export const CLONE_ANNOTATIONS = {
  cloneOf: `${PREFIX}clone-of`,
  restoredFrom: `${PREFIX}restored-from`,
  mountPath: `${PREFIX}mount-path`,
};
const CLAIM_BOUND_TIMEOUT_MS = 30 * 60_000;
const CLAIM_GONE_TIMEOUT_MS = 300_000;
const MAX_NAME = 63;

export interface CsiCloneContext {
  cluster: string;
  namespace: string;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  kubeConfig: KubeConfig;
  layout(): Promise<StatefulSetLayout>;
}

interface VolumeSnapshotStatus {
  metadata: { deletionTimestamp?: string };
  status?: { readyToUse?: boolean };
}

/**
 * `<claim>-<id>`, kept to 63 characters (a label-sized name fits every CSI driver's volume names):
 * a long claim name is cut and a hash of it keeps two long names apart.
 */
export function cloneClaimName(claim: string, id: string): string {
  const name = `${claim}-${id}`;
  if (name.length <= MAX_NAME) return name;
  const hash = createHash('sha256').update(claim).digest('hex').slice(0, 8);
  const room = MAX_NAME - id.length - hash.length - 2;
  return `${claim.slice(0, room).replace(/[-.]+$/, '')}-${hash}-${id}`;
}

function call(ctx: CsiCloneContext, verb: string, resource: string, name?: string): KubeCall {
  return { verb, resource, group: '', namespace: ctx.namespace, name };
}

function readClaim(ctx: CsiCloneContext, name: string): Promise<V1PersistentVolumeClaim | undefined> {
  return readIfFound(call(ctx, 'get', 'persistentvolumeclaims', name), () =>
    ctx.core.readNamespacedPersistentVolumeClaim({ name, namespace: ctx.namespace }),
  );
}

async function requireReadySnapshot(ctx: CsiCloneContext, record: BackupRecord, ref: SnapshotRef): Promise<void> {
  const snap = (await readIfFound(
    { verb: 'get', resource: 'volumesnapshots', group: 'snapshot.storage.k8s.io', namespace: ctx.namespace },
    () =>
      ctx.custom.getNamespacedCustomObject({
        group: 'snapshot.storage.k8s.io',
        version: 'v1',
        namespace: ctx.namespace,
        plural: 'volumesnapshots',
        name: ref.ref,
      }),
  )) as VolumeSnapshotStatus | undefined;
  if (!snap || snap.metadata.deletionTimestamp)
    throw new PermanentDriverError(`VolumeSnapshot ${ctx.namespace}/${ref.ref} of backup ${record.id} is missing`);
  if (!snap.status?.readyToUse)
    throw new PermanentDriverError(
      `VolumeSnapshot ${ctx.namespace}/${ref.ref} of backup ${record.id} is not ready to use`,
    );
}

/** A new claim restored from each VolumeSnapshot of the backup; a retry reuses the clones already made. */
export async function cloneCsiSnapshots(
  ctx: CsiCloneContext,
  record: BackupRecord,
  place: ClonePlacement,
  opts: WaitOptions = {},
): Promise<ClonedVolumes> {
  checkScratchId(place.id);
  const layout = await ctx.layout();
  const volumes: ClonedVolumes['volumes'] = [];
  const methods: string[] = [];
  const made: string[] = [];
  for (const ref of record.snapshots) {
    const mount = layout.claims.find((c) => c.claim === ref.source);
    if (!mount)
      throw new PermanentDriverError(
        `backup ${record.id} has a snapshot of claim ${ref.source}, which StatefulSet ${ctx.namespace}/${layout.statefulSet} no longer mounts: there is no path to mount its clone at`,
      );
    await requireReadySnapshot(ctx, record, ref);
    const name = cloneClaimName(ref.source, place.id);
    await createCloneClaim(ctx, layout, ref, name, mount.mountPath, place, opts);
    made.push(name);
    volumes.push({ role: ref.role, source: mount.mountPath, clone: name, path: mount.mountPath });
    methods.push(
      `${ref.role} ${ref.source} (at ${mount.mountPath}): claim ${name} restored from VolumeSnapshot ${ref.ref}`,
    );
  }
  if (await bindsImmediately(ctx, made[0], opts)) for (const name of made) await waitForBound(ctx, name, opts);
  return { volumes, methods };
}

/** Creates the clone claim, or keeps the one a retry finds; one being deleted is waited out and made again. */
async function createCloneClaim(
  ctx: CsiCloneContext,
  layout: StatefulSetLayout,
  ref: SnapshotRef,
  name: string,
  mountPath: string,
  place: ClonePlacement,
  opts: WaitOptions,
): Promise<void> {
  const existing = await readClaim(ctx, name);
  if (existing) {
    const ours =
      existing.metadata?.labels?.[CLONE_LABELS.scratch] === place.id && existing.spec?.dataSource?.name === ref.ref;
    if (!ours)
      throw new PermanentDriverError(
        `claim ${ctx.namespace}/${name} exists and is not the clone of VolumeSnapshot ${ref.ref} for scratch instance ${place.id}: it is left alone; remove it or pick another scratch id`,
      );
    if (!existing.metadata?.deletionTimestamp) return;
    await waitForGone(ctx, [name], opts);
  }
  // Class, size and access of the claim the snapshot was taken of (its template if the claim is gone).
  const source = (await readClaim(ctx, ref.source))?.spec;
  const template = layout.templates.get(layout.claims.find((c) => c.claim === ref.source)?.template ?? '')?.spec;
  const spec = source ?? template;
  opts.onProgress?.(`creating claim ${name} from VolumeSnapshot ${ref.ref}`);
  await callKube(call(ctx, 'create', 'persistentvolumeclaims', name), () =>
    ctx.core.createNamespacedPersistentVolumeClaim({
      namespace: ctx.namespace,
      body: {
        metadata: {
          name,
          labels: {
            [CLONE_LABELS.scratch]: place.id,
            [CLONE_LABELS.cluster]: ctx.cluster,
            'app.kubernetes.io/managed-by': 'temporal-postgres-ops',
          },
          annotations: {
            [CLONE_ANNOTATIONS.cloneOf]: ref.source,
            [CLONE_ANNOTATIONS.restoredFrom]: ref.ref,
            [CLONE_ANNOTATIONS.mountPath]: mountPath,
          },
        },
        spec: {
          accessModes: spec?.accessModes ?? ['ReadWriteOnce'],
          storageClassName: spec?.storageClassName,
          volumeMode: spec?.volumeMode,
          resources: { requests: { storage: spec?.resources?.requests?.storage ?? '1Gi' } },
          dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: ref.ref },
        },
      },
    }),
  ).catch((err: unknown) => {
    if (!isKubeStatus(err, 409)) throw err; // made meanwhile: the label check of a retry judges it
  });
}

/**
 * Whether the clones' StorageClass binds a claim before a pod uses it. A WaitForFirstConsumer
 * class binds only once the scratch pod is scheduled: waiting here would wait for ever. When the
 * class cannot be read (no permission for storageclasses), the scratch pod's wait reports instead.
 */
async function bindsImmediately(ctx: CsiCloneContext, claim: string | undefined, opts: WaitOptions): Promise<boolean> {
  const className = claim ? (await readClaim(ctx, claim))?.spec?.storageClassName : undefined;
  if (!className) return false;
  try {
    const storageClass = await ctx.kubeConfig.makeApiClient(StorageV1Api).readStorageClass({ name: className });
    return (storageClass.volumeBindingMode ?? 'Immediate') === 'Immediate';
  } catch {
    opts.onProgress?.(`StorageClass ${className} could not be read: the clones bind when the scratch pod starts`);
    return false;
  }
}

async function waitForBound(ctx: CsiCloneContext, name: string, opts: WaitOptions): Promise<void> {
  await pollUntil<void>(
    async () => {
      const claim = await readClaim(ctx, name);
      if (!claim) throw new Error(`claim ${ctx.namespace}/${name} disappeared while it was being restored`);
      return claim.status?.phase === 'Bound'
        ? { done: undefined }
        : { waiting: `claim ${name}: ${claim.status?.phase ?? 'Pending'}` };
    },
    {
      intervalMs: 250,
      timeoutMs: CLAIM_BOUND_TIMEOUT_MS,
      what: `clone claim ${ctx.namespace}/${name} to be Bound (kubectl describe pvc ${name} shows the provisioner's events)`,
      onProgress: opts.onProgress,
      signal: opts.signal,
    },
  );
}

async function waitForGone(ctx: CsiCloneContext, names: string[], opts: WaitOptions): Promise<void> {
  for (const name of names)
    await pollUntil<void>(
      async () =>
        (await readClaim(ctx, name))
          ? { waiting: `claim ${name} is being deleted (a pod still using it holds it)` }
          : { done: undefined },
      {
        intervalMs: 250,
        timeoutMs: CLAIM_GONE_TIMEOUT_MS,
        what: `clone claim ${ctx.namespace}/${name} to be deleted`,
        onProgress: opts.onProgress,
        signal: opts.signal,
      },
    );
}

/** Deletes every claim labelled with the scratch id and waits until they are gone. Idempotent. */
export async function removeCsiClone(
  ctx: CsiCloneContext,
  place: ClonePlacement,
  opts: WaitOptions = {},
): Promise<void> {
  checkScratchId(place.id);
  const list = await callKube(call(ctx, 'list', 'persistentvolumeclaims'), () =>
    ctx.core.listNamespacedPersistentVolumeClaim({
      namespace: ctx.namespace,
      labelSelector: `${CLONE_LABELS.scratch}=${place.id},${CLONE_LABELS.cluster}=${ctx.cluster}`,
    }),
  );
  const names = list.items.map((c) => c.metadata?.name ?? '').filter(Boolean);
  for (const name of names) {
    opts.onProgress?.(`deleting clone claim ${name}`);
    await callKube(call(ctx, 'delete', 'persistentvolumeclaims', name), () =>
      ctx.core.deleteNamespacedPersistentVolumeClaim({ name, namespace: ctx.namespace }),
    ).catch((err: unknown) => {
      if (!isKubeStatus(err, 404)) throw err;
    });
  }
  await waitForGone(ctx, names, opts);
}
