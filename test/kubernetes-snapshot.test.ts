// VolumeSnapshots in the test cluster: the real CRDs (external-snapshotter's client module) and
// the real snapshot-controller. No CSI driver is available here (none builds from the Go module
// proxy), so the test plays the CSI side: it answers the VolumeSnapshotContent the controller
// creates, as the csi-snapshotter sidecar would after the driver took the snapshot.
import assert from 'node:assert/strict';
import { ApiException, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { pollUntil } from '../src/drivers/waiting';
import { kubeCluster, type KubeCluster } from './harness/kubeCluster';
import { testNamespace } from './harness/kubeObjects';

const SNAPSHOTS = { group: 'snapshot.storage.k8s.io', version: 'v1' };
const DRIVER = 'hostpath.pgops.test';

interface SnapshotStatus {
  boundVolumeSnapshotContentName?: string;
  readyToUse?: boolean;
  error?: { message?: string };
}

describe('VolumeSnapshots: the real CRDs and snapshot-controller, the CSI side played by the test', function () {
  this.timeout(60_000);
  let cluster: KubeCluster;
  let ns: string;
  let custom: CustomObjectsApi;

  before(async function () {
    this.timeout(180_000);
    cluster = await kubeCluster();
    if (!cluster.daemons.some((d) => d.name === 'snapshot-controller')) this.skip(); // build.sh could not build it
    ns = await testNamespace(cluster, 'snap');
    custom = cluster.admin().makeApiClient(CustomObjectsApi);
  });

  it('the server validates a VolumeSnapshot with the CRD schema: a source is required', async () => {
    const err = await custom
      .createNamespacedCustomObject({
        ...SNAPSHOTS,
        namespace: ns,
        plural: 'volumesnapshots',
        body: { apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshot', metadata: { name: 'bad' }, spec: {} },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    assert.ok(err instanceof ApiException, String(err));
    assert.equal(err.code, 422);
    assert.match(
      String(err.body),
      /VolumeSnapshot.snapshot.storage.k8s.io \\"bad\\" is invalid: spec.source: Required value/,
    );
  });

  it('a VolumeSnapshot of a claim on a CSI volume gets a VolumeSnapshotContent; once the CSI side answers, it is ready', async () => {
    const core = cluster.admin().makeApiClient(CoreV1Api);
    await custom.createClusterCustomObject({
      ...SNAPSHOTS,
      plural: 'volumesnapshotclasses',
      body: {
        apiVersion: 'snapshot.storage.k8s.io/v1',
        kind: 'VolumeSnapshotClass',
        metadata: { name: `${ns}-class` },
        driver: DRIVER,
        deletionPolicy: 'Delete',
      },
    });
    await core.createPersistentVolume({
      body: {
        metadata: { name: `${ns}-data` },
        spec: {
          capacity: { storage: '1Gi' },
          accessModes: ['ReadWriteOnce'],
          persistentVolumeReclaimPolicy: 'Retain',
          storageClassName: '',
          csi: { driver: DRIVER, volumeHandle: `${ns}-volume` },
          claimRef: { namespace: ns, name: 'data' },
        },
      },
    });
    await core.createNamespacedPersistentVolumeClaim({
      namespace: ns,
      body: {
        metadata: { name: 'data' },
        spec: { accessModes: ['ReadWriteOnce'], storageClassName: '', resources: { requests: { storage: '1Gi' } } },
      },
    });
    await custom.createNamespacedCustomObject({
      ...SNAPSHOTS,
      namespace: ns,
      plural: 'volumesnapshots',
      body: {
        apiVersion: 'snapshot.storage.k8s.io/v1',
        kind: 'VolumeSnapshot',
        metadata: { name: 'data-snap' },
        spec: { volumeSnapshotClassName: `${ns}-class`, source: { persistentVolumeClaimName: 'data' } },
      },
    });
    const snapshotStatus = async () =>
      (
        (await custom.getNamespacedCustomObject({
          ...SNAPSHOTS,
          namespace: ns,
          plural: 'volumesnapshots',
          name: 'data-snap',
        })) as { status?: SnapshotStatus }
      ).status ?? {};

    const contentName = await pollUntil<string>(
      async () => {
        const status = await snapshotStatus();
        const bound = status.boundVolumeSnapshotContentName;
        return bound ? { done: bound } : { waiting: status.error?.message ?? 'no content yet' };
      },
      { intervalMs: 100, timeoutMs: 30_000, what: 'the snapshot-controller to create a VolumeSnapshotContent' },
    );
    const content = (await custom.getClusterCustomObject({
      ...SNAPSHOTS,
      plural: 'volumesnapshotcontents',
      name: contentName,
    })) as { spec: { driver: string; source: { volumeHandle?: string }; volumeSnapshotRef: { name: string } } };
    assert.equal(content.spec.driver, DRIVER);
    assert.equal(content.spec.source.volumeHandle, `${ns}-volume`);
    assert.equal(content.spec.volumeSnapshotRef.name, 'data-snap');
    assert.equal((await snapshotStatus()).readyToUse ?? false, false, 'not ready before the CSI side answers');

    // The csi-snapshotter sidecar's part: the driver took the snapshot.
    await custom.patchClusterCustomObjectStatus(
      {
        ...SNAPSHOTS,
        plural: 'volumesnapshotcontents',
        name: contentName,
        body: {
          status: {
            snapshotHandle: `${ns}-volume@snap-1`,
            readyToUse: true,
            restoreSize: 1024 ** 3,
            creationTime: Date.now() * 1_000_000,
          },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await pollUntil(async () => ((await snapshotStatus()).readyToUse ? { done: true } : { waiting: 'not ready' }), {
      intervalMs: 100,
      timeoutMs: 30_000,
      what: 'the VolumeSnapshot to be readyToUse',
    });
  });
});
