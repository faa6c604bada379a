// Snapshot backup and rollback restore of a StatefulSet on the real node whose claim is an RBD
// image of the test Ceph (a PersistentVolume as ceph-csi writes one: spec.csi.volumeAttributes
// pool and imageName), with storage kind "rbd", runner "toolbox": `rbd` runs in a Rook-toolbox-like
// pod on the real node (host network, the test Ceph's ceph.conf), exec'd through the real API.
import assert from 'node:assert/strict';
import { dirname } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { closeAllPortForwards } from '../src/drivers/kube/portForward';
import { pollUntil } from '../src/drivers/waiting';
import type { KubeCluster } from './harness/kubeCluster';
import { POSTGRES_GID, POSTGRES_IMAGE, POSTGRES_UID, realNodePod } from './harness/kube/realNode';
import { RBD_STORAGE_CLASS, csiHostpath } from './harness/kube/csiHostpath';
import { kubeBackupFixture, type KubeBackupFixture } from './harness/kubeBackupFixture';
import { commitStatements } from './harness/sampleData';
import { testCeph, type TestCeph } from './harness/ceph';
import { realNodeOrSkip } from './harness/kube/realNodeSuite';

describe('backup and rollback restore on Kubernetes with RBD snapshots through the Rook toolbox pod (real node, real Ceph)', function () {
  this.timeout(300_000);
  let cluster: KubeCluster;
  let ceph: TestCeph;
  let fx: KubeBackupFixture;

  before(async function () {
    const started = await realNodeOrSkip(this);
    cluster = started.cluster;
    const node = started.node;
    ceph = await testCeph();
    const csi = await csiHostpath(cluster, node, { uid: POSTGRES_UID, gid: POSTGRES_GID });
    await csi.enableRbd(ceph);
    fx = await kubeBackupFixture(
      cluster,
      'rbdtb',
      RBD_STORAGE_CLASS,
      (ns) => ({ kind: 'rbd', runner: 'toolbox', toolbox: { namespace: ns, labelSelector: 'app=rook-ceph-tools' } }),
      () => `CSI driver: ${csi.log.join('\n')}`,
    );
    // The toolbox: ceph-common in the node image, the host's network (the test Ceph listens on
    // 127.0.0.1) and the test Ceph's configuration directory.
    const core = cluster.admin().makeApiClient(CoreV1Api);
    const confDir = dirname(ceph.conf);
    await core.createNamespacedPod({
      namespace: fx.ns,
      body: {
        metadata: { name: 'rook-ceph-tools', labels: { app: 'rook-ceph-tools' } },
        spec: {
          ...realNodePod,
          hostNetwork: true,
          terminationGracePeriodSeconds: 0,
          containers: [
            {
              name: 'rook-ceph-tools',
              image: POSTGRES_IMAGE,
              imagePullPolicy: 'Never',
              command: ['sleep', 'infinity'],
              env: [{ name: 'CEPH_CONF', value: ceph.conf }],
              volumeMounts: [{ name: 'ceph', mountPath: confDir }],
            },
          ],
          volumes: [{ name: 'ceph', hostPath: { path: confDir, type: 'Directory' } }],
        },
      },
    });
    await pollUntil(
      async () => {
        const pod = await core.readNamespacedPod({ name: 'rook-ceph-tools', namespace: fx.ns });
        return (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
          ? { done: true }
          : { waiting: pod.status?.phase ?? 'pending' };
      },
      { intervalMs: 200, timeoutMs: 60_000, what: 'the toolbox pod to be Ready' },
    );
  });
  after(async function () {
    this.timeout(90_000);
    await closeAllPortForwards();
    await fx?.teardown();
  });

  it("snapshots the claim's RBD image through the toolbox with the record in its metadata, and rolls it back", async () => {
    const before = await fx.checksum();
    const taken = await fx.backup();
    assert.equal(taken.took, 'online');
    assert.equal(taken.backup.storage, 'rbd');
    const [snap, walSnap] = taken.backup.snapshots;
    assert.equal(snap?.source, 'pgdata-pg-0');
    assert.equal(walSnap?.source, 'pgwal-pg-0', 'the separate pg_wal volume has its own image and snapshot');
    assert.match(snap?.ref ?? '', new RegExp(`^${ceph.pool}/csi-vol-[0-9a-f-]+@pgops-${taken.backup.id}$`));
    const image = snap!.ref.slice(0, snap!.ref.indexOf('@'));
    // Seen from the worker host's own rbd: the snapshot and the record are really in Ceph.
    assert.ok((await ceph.rbd.listSnapshots(image)).some((s) => s.name === `pgops-${taken.backup.id}`));
    assert.ok(`pgops.backup.${taken.backup.id}` in (await ceph.rbd.listMetadata(image)));

    const late = await commitStatements(await fx.endpoint(), ['DELETE FROM orders WHERE id % 3 = 0']);
    assert.ok(late.xid);
    const restored = await fx.restore({ backup: taken.backup.id });
    assert.equal(restored.safetySnapshot?.storage, 'rbd');
    assert.match(restored.rollback.methods.join(), /rbd snap rollback .*\(toolbox\)/);
    assert.equal(restored.verified.inRecovery, false);
    assert.equal(await fx.checksum(), before);
    assert.equal(await fx.helperPods(), 0);
  });

  it('replays archived WAL forward after the rollback to a recovery target', async () => {
    const { restored, good } = await fx.restoreToJustBeforeDamage();
    assert.equal(restored.recovery?.state, 'promoted');
    assert.equal(await fx.checksum(), good);
    const listed = await fx.run<{ backups: Array<{ id: string }>; strays: string[] }>('listBackupsWorkflow', {
      cluster: 'orders',
    });
    assert.deepEqual(listed.strays, [], 'no stray snapshot');
  });
});
