// The CSI side of the test cluster, played by the harness: no CSI driver builds from the Go
// module proxy (csi-driver-host-path, external-provisioner, ceph-csi are refused), so this file
// is the driver, through the real API and the real kubelet:
// - a CSI node plugin (gRPC on a unix socket, registered with the real kubelet through its
//   plugins_registry the way node-driver-registrar does) that bind-mounts a volume directory
//   into the pod's volume path: the real kubelet mounts it, containerd hands it to PostgreSQL;
// - the external-provisioner's part: a claim of the StorageClass gets a volume directory and a
//   PersistentVolume (empty, or a copy of a snapshot when the claim has a dataSource), and a
//   released volume whose reclaim policy is Delete is deleted;
// - the csi-snapshotter's part: a VolumeSnapshotContent the real snapshot-controller creates
//   gets a copy of the volume directory and readyToUse.
// Volumes and snapshots are plain directories under the cluster's directory; copies, not
// copy-on-write (said in the README).
import { existsSync, mkdirSync, chownSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  StorageV1Api,
  setHeaderOptions,
  type V1PersistentVolumeClaim,
} from '@kubernetes/client-node';
import { runCommand } from '../../../src/drivers/exec';
import { copyTree } from '../../../src/drivers/storage/fileSystem';
import { pollUntil } from '../../../src/drivers/waiting';
import type { KubeCluster } from '../kubeCluster';
import { registerTeardown } from '../testEnv';
import { REAL_NODE } from './realNodeConfig';
import type { RealNode } from './realNode';
import type { TestCeph } from '../ceph';
import { attachRbdVolume, detachRbdVolume, type RbdLocalVolume } from '../../../src/drivers/storage/rbdLocalAttach';

export const CSI_DRIVER = 'csi.pgops.test';
export const CSI_STORAGE_CLASS = 'pgops-csi';
export const CSI_SNAPSHOT_CLASS = 'pgops-csi-snap';
/** Claims of this class are RBD images of the test Ceph, with PersistentVolumes as ceph-csi makes them. */
export const RBD_STORAGE_CLASS = 'pgops-rbd';
const RBD_HANDLE_PREFIX = 'rbd-';
const SNAPSHOTS = { group: 'snapshot.storage.k8s.io', version: 'v1' };
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export interface CsiHostpath {
  volumesDir: string;
  /** The directory behind a claim's volume (for tests that look at it). */
  volumeDirOf(namespace: string, claim: string): Promise<string | undefined>;
  /** What the driver did, in order (for failure messages). */
  log: string[];
  /** Serves claims of RBD_STORAGE_CLASS from RBD images of `ceph` (mapped on the node while a pod uses them). */
  enableRbd(ceph: TestCeph): Promise<void>;
}

let csiPromise: Promise<CsiHostpath> | undefined;

/** A claim's requested size in MiB (Mi and Gi requests; 1 GiB otherwise). */
function sizeMB(pvc: V1PersistentVolumeClaim): number {
  const request = String(pvc.spec?.resources?.requests?.storage ?? '1Gi');
  const match = /^(\d+)(Mi|Gi)$/.exec(request);
  if (!match) return 1024;
  return Number(match[1]) * (match[2] === 'Gi' ? 1024 : 1);
}

/** The run's CSI driver on the real node, started on first use and stopped when the run ends. */
export function csiHostpath(
  cluster: KubeCluster,
  node: RealNode,
  owner: { uid: number; gid: number },
): Promise<CsiHostpath> {
  if (!csiPromise) csiPromise = startCsiHostpath(cluster, node, owner);
  return csiPromise;
}

function loadService(file: string, pkg: string[], service: string): grpc.ServiceDefinition {
  const definition = protoLoader.loadSync(join(__dirname, 'csi', file), { keepCase: false, defaults: true });
  let node: unknown = grpc.loadPackageDefinition(definition);
  for (const part of pkg) node = (node as Record<string, unknown>)[part];
  return (node as Record<string, { service: grpc.ServiceDefinition }>)[service]!.service;
}

function mounted(path: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[1] === path);
}

type Handler<Req, Res> = (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => void;
function unary<Req, Res>(body: (request: Req) => Promise<Res> | Res): Handler<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => body(call.request))
      .then(
        (response) => callback(null, response),
        (err: unknown) =>
          callback({ code: grpc.status.INTERNAL, details: err instanceof Error ? err.message : String(err) }),
      );
  };
}

async function startCsiHostpath(
  cluster: KubeCluster,
  node: RealNode,
  owner: { uid: number; gid: number },
): Promise<CsiHostpath> {
  const root = join(cluster.dir, 'csi');
  const volumesDir = join(root, 'volumes');
  const snapshotsDir = join(root, 'snapshots');
  mkdirSync(volumesDir, { recursive: true });
  mkdirSync(snapshotsDir, { recursive: true });
  const log: string[] = [];
  let rbd: { ceph: TestCeph } | undefined;
  const rbdVolume = (handle: string): RbdLocalVolume => ({
    pool: rbd!.ceph.pool,
    image: handle.slice(RBD_HANDLE_PREFIX.length),
    mountpoint: join(root, 'rbd-staging', handle.slice(RBD_HANDLE_PREFIX.length)),
  });
  const say = (line: string) => log.push(`${new Date().toISOString().slice(11, 23)} ${line}`);

  // The node plugin.
  const csiSocket = join(root, 'csi.sock');
  const server = new grpc.Server();
  server.addService(loadService('csi.proto', ['csi', 'v1'], 'Identity'), {
    GetPluginInfo: unary(() => ({ name: CSI_DRIVER, vendorVersion: '0.1.0' })),
    GetPluginCapabilities: unary(() => ({})),
    Probe: unary(() => ({})),
  });
  server.addService(loadService('csi.proto', ['csi', 'v1'], 'Node'), {
    NodeGetInfo: unary(() => ({ nodeId: REAL_NODE, maxVolumesPerNode: 0 })),
    NodeGetCapabilities: unary(() => ({})),
    NodePublishVolume: unary(async (req: { volumeId: string; targetPath: string; readonly: boolean }) => {
      // An RBD volume is mapped and mounted on the node first (ceph-csi's NodeStageVolume).
      if (req.volumeId.startsWith(RBD_HANDLE_PREFIX))
        await attachRbdVolume(rbd!.ceph.storage([]), rbdVolume(req.volumeId));
      const source = req.volumeId.startsWith(RBD_HANDLE_PREFIX)
        ? rbdVolume(req.volumeId).mountpoint
        : join(volumesDir, req.volumeId);
      if (!/^[a-z0-9-]+$/.test(req.volumeId) || !existsSync(source))
        throw new Error(`no volume ${req.volumeId} (looked for ${source})`);
      mkdirSync(req.targetPath, { recursive: true });
      if (!mounted(req.targetPath)) {
        const result = await runCommand('mount', [
          '--bind',
          ...(req.readonly ? ['-o', 'ro'] : []),
          source,
          req.targetPath,
        ]);
        if (result.code !== 0) throw new Error(`mount --bind ${source} ${req.targetPath}: ${result.stderr.trim()}`);
      }
      say(`published ${req.volumeId} at ${req.targetPath}`);
      return {};
    }),
    NodeUnpublishVolume: unary(async (req: { volumeId: string; targetPath: string }) => {
      if (mounted(req.targetPath)) {
        const result = await runCommand('umount', [req.targetPath]);
        if (result.code !== 0) throw new Error(`umount ${req.targetPath}: ${result.stderr.trim()}`);
      }
      if (existsSync(req.targetPath)) rmdirSync(req.targetPath); // empty once unmounted; never a recursive delete
      if (req.volumeId.startsWith(RBD_HANDLE_PREFIX)) await detachRbdVolume(rbd!.ceph.rbd, rbdVolume(req.volumeId));
      say(`unpublished ${req.volumeId} from ${req.targetPath}`);
      return {};
    }),
  });
  const registry = new grpc.Server();
  registry.addService(loadService('pluginregistration.proto', ['pluginregistration'], 'Registration'), {
    GetInfo: unary(() => ({ type: 'CSIPlugin', name: CSI_DRIVER, endpoint: csiSocket, supportedVersions: ['1.0.0'] })),
    NotifyRegistrationStatus: unary((status: { pluginRegistered: boolean; error: string }) => {
      say(`kubelet registration: ${status.pluginRegistered ? 'registered' : `refused: ${status.error}`}`);
      return {};
    }),
  });
  const bind = (srv: grpc.Server, path: string) =>
    new Promise<void>((resolve, reject) => {
      rmSync(path, { force: true });
      srv.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      );
    });
  await bind(server, csiSocket);
  const registrationDir = join(node.kubeletRoot, 'plugins_registry');
  mkdirSync(registrationDir, { recursive: true });
  await bind(registry, join(registrationDir, `${CSI_DRIVER}-reg.sock`));

  // The cluster objects a CSI driver installs.
  const kc = cluster.admin();
  const core = kc.makeApiClient(CoreV1Api);
  const storage = kc.makeApiClient(StorageV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const ignoreExists = (err: unknown) => {
    if ((err as { code?: number }).code !== 409) throw err;
  };
  await storage
    .createCSIDriver({
      body: {
        metadata: { name: CSI_DRIVER },
        spec: {
          attachRequired: false,
          podInfoOnMount: false,
          fsGroupPolicy: 'None',
          volumeLifecycleModes: ['Persistent'],
        },
      },
    })
    .catch(ignoreExists);
  const storageClass = (name: string) =>
    storage
      .createStorageClass({
        body: { metadata: { name }, provisioner: CSI_DRIVER, reclaimPolicy: 'Delete', volumeBindingMode: 'Immediate' },
      })
      .catch(ignoreExists);
  await storageClass(CSI_STORAGE_CLASS);
  await custom
    .createClusterCustomObject({
      ...SNAPSHOTS,
      plural: 'volumesnapshotclasses',
      body: {
        apiVersion: 'snapshot.storage.k8s.io/v1',
        kind: 'VolumeSnapshotClass',
        metadata: { name: CSI_SNAPSHOT_CLASS },
        driver: CSI_DRIVER,
        deletionPolicy: 'Delete',
      },
    })
    .catch(ignoreExists);
  await pollUntil(
    async () => {
      const csiNode = await storage.readCSINode({ name: REAL_NODE }).catch(() => undefined);
      return (csiNode?.spec.drivers ?? []).some((d) => d.name === CSI_DRIVER)
        ? { done: true }
        : { waiting: `not registered yet; ${log.join('; ')}` };
    },
    { intervalMs: 200, timeoutMs: 60_000, what: `the kubelet to register CSI driver ${CSI_DRIVER}` },
  );

  // The controller side, one pass every 200 ms.
  const provision = async (pvc: V1PersistentVolumeClaim) => {
    const uid = pvc.metadata!.uid!;
    const handle = `pvc-${uid}`;
    const dir = join(volumesDir, handle);
    const source = pvc.spec?.dataSource;
    if (!existsSync(dir)) {
      const staging = `${dir}.partial`;
      rmSync(staging, { recursive: true, force: true });
      if (source?.kind === 'VolumeSnapshot') {
        const snap = (await custom.getNamespacedCustomObject({
          ...SNAPSHOTS,
          namespace: pvc.metadata!.namespace!,
          plural: 'volumesnapshots',
          name: source.name,
        })) as { status?: { boundVolumeSnapshotContentName?: string; readyToUse?: boolean } };
        const content = snap.status?.boundVolumeSnapshotContentName;
        if (!content || !snap.status?.readyToUse) return; // not ready yet: the next pass
        await copyTree(join(snapshotsDir, content), staging);
        say(`provisioned ${handle} from snapshot ${source.name} (${content})`);
      } else {
        mkdirSync(staging);
        chownSync(staging, owner.uid, owner.gid);
        say(`provisioned ${handle} (empty)`);
      }
      await runCommand('mv', ['-T', staging, dir]);
    }
    await core
      .createPersistentVolume({
        body: {
          metadata: { name: handle, annotations: { 'pv.kubernetes.io/provisioned-by': CSI_DRIVER } },
          spec: {
            capacity: { storage: pvc.spec?.resources?.requests?.storage ?? '1Gi' },
            accessModes: pvc.spec?.accessModes ?? ['ReadWriteOnce'],
            persistentVolumeReclaimPolicy: 'Delete',
            storageClassName: CSI_STORAGE_CLASS,
            csi: { driver: CSI_DRIVER, volumeHandle: handle },
            claimRef: {
              kind: 'PersistentVolumeClaim',
              namespace: pvc.metadata!.namespace!,
              name: pvc.metadata!.name!,
              uid,
            },
          },
        },
      })
      .catch(ignoreExists);
  };

  /** An RBD image with ext4 on it, owned by PostgreSQL's user, left unmapped; its PV as ceph-csi writes one. */
  const provisionRbd = async (pvc: V1PersistentVolumeClaim) => {
    const { ceph } = rbd!;
    const image = `csi-vol-${pvc.metadata!.uid!}`;
    const handle = `${RBD_HANDLE_PREFIX}${image}`;
    const volume = rbdVolume(handle);
    if (
      !(await ceph.rbd.listMetadata(`${ceph.pool}/${image}`).then(
        () => true,
        () => false,
      ))
    ) {
      await ceph.createVolume(image, sizeMB(pvc), volume.mountpoint);
      chownSync(volume.mountpoint, owner.uid, owner.gid);
      await detachRbdVolume(ceph.rbd, volume);
      say(`provisioned RBD image ${ceph.pool}/${image}`);
    }
    await core
      .createPersistentVolume({
        body: {
          metadata: { name: image, annotations: { 'pv.kubernetes.io/provisioned-by': CSI_DRIVER } },
          spec: {
            capacity: { storage: `${sizeMB(pvc)}Mi` },
            accessModes: pvc.spec?.accessModes ?? ['ReadWriteOnce'],
            persistentVolumeReclaimPolicy: 'Delete',
            storageClassName: RBD_STORAGE_CLASS,
            csi: { driver: CSI_DRIVER, volumeHandle: handle, volumeAttributes: { pool: ceph.pool, imageName: image } },
            claimRef: {
              kind: 'PersistentVolumeClaim',
              namespace: pvc.metadata!.namespace!,
              name: pvc.metadata!.name!,
              uid: pvc.metadata!.uid!,
            },
          },
        },
      })
      .catch(ignoreExists);
  };

  const pass = async () => {
    for (const pvc of (await core.listPersistentVolumeClaimForAllNamespaces()).items) {
      if (pvc.spec?.volumeName || pvc.metadata?.deletionTimestamp) continue;
      if (pvc.spec?.storageClassName === CSI_STORAGE_CLASS) await provision(pvc);
      else if (pvc.spec?.storageClassName === RBD_STORAGE_CLASS && rbd) await provisionRbd(pvc);
    }
    for (const pv of (await core.listPersistentVolume()).items) {
      if (pv.spec?.csi?.driver !== CSI_DRIVER) continue;
      if (pv.status?.phase === 'Released' && pv.spec.persistentVolumeReclaimPolicy === 'Delete') {
        if (pv.spec.csi.volumeHandle.startsWith(RBD_HANDLE_PREFIX))
          // As ceph-csi: an image with snapshots (pgops backups) cannot be removed; it stays.
          await runCommand('rbd', [
            '-c',
            rbd!.ceph.conf,
            'rm',
            '--no-progress',
            `${rbd!.ceph.pool}/${pv.spec.csi.volumeAttributes?.imageName}`,
          ]);
        else rmSync(join(volumesDir, pv.spec.csi.volumeHandle), { recursive: true, force: true });
        await core.deletePersistentVolume({ name: pv.metadata!.name! }).catch(() => undefined);
        say(`deleted released volume ${pv.metadata!.name}`);
      }
    }
    const contents = (await custom.listClusterCustomObject({ ...SNAPSHOTS, plural: 'volumesnapshotcontents' })) as {
      items: Array<{
        metadata: { name: string; deletionTimestamp?: string; finalizers?: string[] };
        spec: { driver: string; source: { volumeHandle?: string } };
        status?: { snapshotHandle?: string };
      }>;
    };
    for (const content of contents.items) {
      if (content.spec.driver !== CSI_DRIVER) continue;
      const dir = join(snapshotsDir, content.metadata.name);
      if (content.metadata.deletionTimestamp) {
        // The csi-snapshotter's part of a deletion: the snapshot goes, then the finalizer.
        rmSync(dir, { recursive: true, force: true });
        if (content.metadata.finalizers?.length)
          await custom
            .patchClusterCustomObject(
              {
                ...SNAPSHOTS,
                plural: 'volumesnapshotcontents',
                name: content.metadata.name,
                body: { metadata: { finalizers: null } },
              },
              mergePatch,
            )
            .catch(() => undefined);
        continue;
      }
      const volume = content.spec.source.volumeHandle;
      if (content.status?.snapshotHandle || !volume) continue;
      const staging = `${dir}.partial`;
      rmSync(staging, { recursive: true, force: true });
      await copyTree(join(volumesDir, volume), staging);
      await runCommand('mv', ['-T', staging, dir]);
      const size = Number((await runCommand('du', ['-sb', dir])).stdout.split('\t')[0]) || 1;
      await custom.patchClusterCustomObjectStatus(
        {
          ...SNAPSHOTS,
          plural: 'volumesnapshotcontents',
          name: content.metadata.name,
          body: {
            status: {
              snapshotHandle: content.metadata.name,
              readyToUse: true,
              restoreSize: size,
              creationTime: Date.now() * 1_000_000,
            },
          },
        },
        mergePatch,
      );
      say(`snapshot ${content.metadata.name} of ${volume}: ${size} bytes`);
    }
  };
  /**
   * Pods off the real node while the plugin still answers the kubelet's unpublish calls (which
   * unmap RBD volumes), then whatever is still mapped is unmapped here: an RBD image left mapped
   * through rbd-fuse after the test Ceph stops hangs every later loop-device call on the machine.
   */
  const emptyTheNode = async () => {
    for (const pod of (await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${REAL_NODE}` })).items)
      await core
        .deleteNamespacedPod({ name: pod.metadata!.name!, namespace: pod.metadata!.namespace!, gracePeriodSeconds: 0 })
        .catch(() => undefined);
    const staging = join(root, 'rbd-staging');
    await pollUntil(
      async () => {
        const mounts = readFileSync('/proc/self/mounts', 'utf8');
        return mounts.includes('kubernetes.io~csi') || mounts.includes(staging)
          ? { waiting: 'volumes still mounted' }
          : { done: true };
      },
      { intervalMs: 200, timeoutMs: 60_000, what: 'the kubelet to unpublish the CSI volumes' },
    ).catch(() => undefined);
    if (rbd && existsSync(staging))
      for (const entry of readdirSync(staging).filter((e) => !e.endsWith('.rbd-fuse')))
        await detachRbdVolume(rbd.ceph.rbd, rbdVolume(`${RBD_HANDLE_PREFIX}${entry}`)).catch((err: unknown) =>
          say(`could not unmap ${entry}: ${String(err)}`),
        );
  };
  let stopped = false;
  let running = Promise.resolve();
  const loop = async () => {
    while (!stopped) {
      try {
        await pass();
      } catch (err) {
        say(`pass failed: ${err instanceof Error ? err.message : String(err)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  running = loop();
  /** Ends the provisioning loop: once the test Ceph stops, each of its `rbd` calls would hang. */
  const stopLoop = async () => {
    stopped = true;
    await running;
  };
  registerTeardown(async () => {
    await stopLoop();
    if (!rbd) await emptyTheNode(); // else done before the test Ceph stopped
    registry.forceShutdown();
    server.forceShutdown();
  });

  return {
    volumesDir,
    log,
    async enableRbd(ceph) {
      if (rbd) return;
      rbd = { ceph };
      // Registered after the test Ceph started, so it runs before the Ceph stops (teardowns run last first).
      registerTeardown(async () => {
        await stopLoop();
        await emptyTheNode();
      });
      await storageClass(RBD_STORAGE_CLASS);
    },
    async volumeDirOf(namespace, claim) {
      const pvc = await core.readNamespacedPersistentVolumeClaim({ name: claim, namespace }).catch(() => undefined);
      const pv = pvc?.spec?.volumeName;
      return pv ? join(volumesDir, pv) : undefined;
    },
  };
}
