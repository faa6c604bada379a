// A CSI backup deletion SIGKILLed half-way, against the real API server and the real
// snapshot-controller (kwok, no real node: the csi-snapshotter's part is played by the test, as in
// kubernetes-snapshot). The backups are two VolumeSnapshots each (data and WAL claims) made by the
// driver itself; deleteBackupWorkflow runs on a worker process that is killed with the WAL
// snapshot deleted and the data snapshot, which carries the mark, still there.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { kubeCluster, type KubeCluster } from './harness/kubeCluster';
import { kubernetesTarget, testNamespace, writeCatalog } from './harness/kubeObjects';
import { testEnv } from './harness/testEnv';
import { withWorker, workerProcess, type WorkerProcess } from './harness/workers';
import { failureOf } from './harness/failures';
import { pollUntil } from '../src/drivers/waiting';
import { CSI_ANNOTATIONS, CSI_LABELS, CsiSnapshotDriver } from '../src/drivers/storage/csi';
import type { BackupRecord, DatabaseVolume } from '../src/contract/backups';
import type { KubernetesTarget } from '../src/config/schema';
import type { DeleteBackupResult, ListBackupsResult } from '../src/workflows/backupCatalog';

const SNAPSHOTS = { group: 'snapshot.storage.k8s.io', version: 'v1' };
const DRIVER = 'delete.pgops.test';
const CLAIMS = ['pgdata-pg-0', 'pgwal-pg-0'];
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

interface Snap {
  metadata: { name: string; annotations?: Record<string, string>; deletionTimestamp?: string };
}

describe('CSI: a backup deletion SIGKILLed half-way is listed as being deleted and finished by the next delete', function () {
  this.timeout(240_000);
  let cluster: KubeCluster;
  let ns: string;
  let catalogPath: string;
  let driver: CsiSnapshotDriver;
  let sidecar: NodeJS.Timeout | undefined;
  const taskQueue = `pg-ops-csi-delete-${Math.random().toString(36).slice(2, 8)}`;
  const workers: WorkerProcess[] = [];
  let seq = 0;
  const custom = () => cluster.admin().makeApiClient(CustomObjectsApi);

  before(async function () {
    this.timeout(300_000);
    cluster = await kubeCluster();
    if (!cluster.daemons.some((d) => d.name === 'snapshot-controller')) {
      console.log('      skipped: the snapshot-controller was not built');
      this.skip();
    }
    ns = await testNamespace(cluster, 'csidel');
    const core = cluster.admin().makeApiClient(CoreV1Api);
    const snapshotClass = `${ns}-class`;
    await custom().createClusterCustomObject({
      ...SNAPSHOTS,
      plural: 'volumesnapshotclasses',
      body: {
        apiVersion: 'snapshot.storage.k8s.io/v1',
        kind: 'VolumeSnapshotClass',
        metadata: { name: snapshotClass },
        driver: DRIVER,
        deletionPolicy: 'Delete',
      },
    });
    for (const claim of CLAIMS) {
      await core.createPersistentVolume({
        body: {
          metadata: { name: `${ns}-${claim}` },
          spec: {
            capacity: { storage: '1Gi' },
            accessModes: ['ReadWriteOnce'],
            persistentVolumeReclaimPolicy: 'Retain',
            storageClassName: '',
            csi: { driver: DRIVER, volumeHandle: `${ns}-${claim}` },
            claimRef: { namespace: ns, name: claim },
          },
        },
      });
      await core.createNamespacedPersistentVolumeClaim({
        namespace: ns,
        body: {
          metadata: { name: claim },
          spec: {
            accessModes: ['ReadWriteOnce'],
            storageClassName: '',
            volumeName: `${ns}-${claim}`,
            resources: { requests: { storage: '1Gi' } },
          },
        },
      });
    }
    // The snapshot-controller refuses a claim not bound yet: wait for the PV controller's binding.
    for (const claim of CLAIMS)
      await pollUntil(
        async () => {
          const pvc = await core.readNamespacedPersistentVolumeClaim({ namespace: ns, name: claim });
          return pvc.status?.phase === 'Bound' ? { done: undefined } : { waiting: `${claim} is ${pvc.status?.phase}` };
        },
        { intervalMs: 200, timeoutMs: 60_000, what: `claim ${claim} to be Bound` },
      );
    // The csi-snapshotter's part: a content the controller creates is taken at once; a content
    // being deleted loses its finalizers (the snapshot is gone).
    const answerContents = async () => {
      const contents = (await custom().listClusterCustomObject({ ...SNAPSHOTS, plural: 'volumesnapshotcontents' })) as {
        items: Array<{
          metadata: { name: string; deletionTimestamp?: string; finalizers?: string[] };
          spec: { driver: string };
          status?: { snapshotHandle?: string };
        }>;
      };
      for (const content of contents.items) {
        if (content.spec.driver !== DRIVER) continue;
        const name = content.metadata.name;
        if (content.metadata.deletionTimestamp) {
          if (content.metadata.finalizers?.length)
            await custom().patchClusterCustomObject(
              { ...SNAPSHOTS, plural: 'volumesnapshotcontents', name, body: { metadata: { finalizers: null } } },
              mergePatch,
            );
        } else if (!content.status?.snapshotHandle)
          await custom().patchClusterCustomObjectStatus(
            {
              ...SNAPSHOTS,
              plural: 'volumesnapshotcontents',
              name,
              body: {
                status: {
                  snapshotHandle: name,
                  readyToUse: true,
                  restoreSize: 1024 ** 3,
                  creationTime: Date.now() * 1e6,
                },
              },
            },
            mergePatch,
          );
      }
    };
    const loop = () => {
      sidecar = setTimeout(
        () =>
          void answerContents()
            .catch(() => undefined)
            .finally(loop),
        200,
      );
    };
    loop();
    const target = kubernetesTarget(cluster, ns, 'pg');
    driver = new CsiSnapshotDriver('orders', target as unknown as KubernetesTarget, snapshotClass, cluster.admin());
    catalogPath = await writeCatalog('csi-delete', {
      orders: {
        target,
        postgres: { user: 'postgres', portForward: {} },
        storage: { kind: 'csi', volumeSnapshotClass: snapshotClass },
      },
    });
  });
  after(async () => {
    clearTimeout(sidecar);
    sidecar = undefined;
    for (const w of workers) await w.kill();
  });

  /** A backup as snapshotBackupWorkflow leaves it: one VolumeSnapshot per claim, the record on the data one. */
  async function takeBackup(): Promise<string> {
    const stamp = new Date(Date.now() + seq * 1000)
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z');
    const id = `${stamp}-${randomBytes(4).toString('hex')}`;
    seq++;
    const volumes: DatabaseVolume[] = [
      { role: 'data', path: '/var/lib/postgresql/data', claim: CLAIMS[0] },
      { role: 'claim', path: '/var/lib/postgresql/wal', claim: CLAIMS[1] },
    ];
    const snapshots = await driver.createSnapshots(id, volumes, { online: false });
    const now = new Date().toISOString();
    const record: BackupRecord = {
      id,
      cluster: 'orders',
      kind: 'backup',
      mode: 'offline',
      label: `test ${id}`,
      systemIdentifier: '7300000000000000000',
      pgVersion: 'pg_control 1300',
      timeline: 1,
      startLsn: '0/3000028',
      stopLsn: '0/3000100',
      startedAt: now,
      stoppedAt: now,
      storage: 'csi',
      snapshots,
      workflowId: 'test',
    };
    await driver.saveRecord(record);
    return id;
  }

  const run = async <T>(type: string, input: Record<string, unknown>): Promise<T> => {
    const { client } = await testEnv();
    return withWorker(taskQueue, catalogPath, () =>
      client.workflow.execute(type, { taskQueue, workflowId: `${type}-${Date.now()}-${seq++}`, args: [input] }),
    ) as Promise<T>;
  };

  const snapshotsOf = async (id: string) =>
    (
      (await custom().listNamespacedCustomObject({
        ...SNAPSHOTS,
        namespace: ns,
        plural: 'volumesnapshots',
        labelSelector: `${CSI_LABELS.backup}=${id}`,
      })) as { items: Snap[] }
    ).items;

  async function abandonDeletion(id: string, pause: string): Promise<void> {
    const { client } = await testEnv();
    const worker = await workerProcess(taskQueue, catalogPath, { PGOPS_TEST_PAUSE_AT: `${pause}:30000` });
    workers.push(worker);
    const handle = await client.workflow.start('deleteBackupWorkflow', {
      taskQueue,
      workflowId: `delete-killed-${Date.now()}-${seq++}`,
      args: [{ cluster: 'orders', backup: id, confirm: 'orders' }],
    });
    await worker.waitForOutput(new RegExp(`"pausedAt":"${pause}"`), 120_000);
    await worker.kill('SIGKILL');
    await handle.terminate('the test abandons the deletion its worker was killed in');
  }

  it('keeps the mark on the data snapshot while the WAL snapshot is gone; listed as being deleted, refused by a restore, finished by the next delete of another backup or of the same one', async () => {
    const first = await takeBackup();
    const second = await takeBackup();
    const third = await takeBackup();
    const fourth = await takeBackup();
    await abandonDeletion(first, 'delete-partly-removed');

    const left = await snapshotsOf(first);
    assert.deepEqual(
      left.map((s) => s.metadata.name),
      [`pgops-${first.toLowerCase()}-${CLAIMS[0]}`],
      'the WAL snapshot is deleted, the data snapshot is not',
    );
    const annotations = left[0]!.metadata.annotations ?? {};
    assert.equal(annotations[CSI_ANNOTATIONS.record], undefined, 'no longer a backup record');
    assert.equal(JSON.parse(annotations[CSI_ANNOTATIONS.deleting]!).id, first, 'the mark holds the record');

    const listed = await run<ListBackupsResult>('listBackupsWorkflow', { cluster: 'orders' });
    assert.deepEqual(
      listed.backups.map((b) => b.id),
      [fourth, third, second],
    );
    assert.deepEqual(
      listed.beingDeleted.map((b) => [b.id, b.state]),
      [[first, 'being deleted']],
    );
    assert.match(listed.beingDeleted[0]!.deletion.by, /^delete-killed-/);
    assert.deepEqual(listed.strays, []);
    const refused = await failureOf(
      run('rollbackRestoreWorkflow', { cluster: 'orders', backup: first, confirm: 'orders' }),
    );
    assert.match(refused.message, /is being deleted/);

    // Deleting another backup finishes the interrupted deletion first, and says so.
    const other = await run<DeleteBackupResult>('deleteBackupWorkflow', {
      cluster: 'orders',
      backup: second,
      confirm: 'orders',
    });
    assert.equal(other.resumed, false);
    assert.deepEqual(other.finished, [first]);
    for (const id of [first, second]) assert.deepEqual(await snapshotsOf(id), [], `no VolumeSnapshot of ${id} is left`);

    // A deletion killed right after its mark: deleting the same backup again finishes it.
    await abandonDeletion(third, 'delete-marked');
    assert.deepEqual(
      (await run<ListBackupsResult>('listBackupsWorkflow', { cluster: 'orders' })).beingDeleted.map((b) => b.id),
      [third],
    );
    assert.equal((await snapshotsOf(third)).length, 2, 'marked, nothing deleted yet');
    const again = await run<DeleteBackupResult>('deleteBackupWorkflow', {
      cluster: 'orders',
      backup: third,
      confirm: 'orders',
    });
    assert.equal(again.resumed, true);
    assert.deepEqual(again.finished, []);
    assert.deepEqual(await snapshotsOf(third), []);

    assert.equal((await snapshotsOf(fourth)).length, 2, 'the other backup is untouched');
    const after = await run<ListBackupsResult>('listBackupsWorkflow', { cluster: 'orders' });
    assert.deepEqual(
      after.backups.map((b) => b.id),
      [fourth],
    );
    assert.deepEqual(after.beingDeleted, []);
    assert.deepEqual(after.strays, []);
    // The snapshot-controller deletes their VolumeSnapshotContents too (deletionPolicy Delete).
    const gone = [first, second, third].map((id) => `pgops-${id.toLowerCase()}-`);
    await pollUntil(
      async () => {
        const contents = (await custom().listClusterCustomObject({
          ...SNAPSHOTS,
          plural: 'volumesnapshotcontents',
        })) as {
          items: Array<{ spec: { volumeSnapshotRef: { name: string } } }>;
        };
        const left = contents.items.filter((c) => gone.some((p) => c.spec.volumeSnapshotRef.name.startsWith(p)));
        return left.length === 0 ? { done: undefined } : { waiting: `${left.length} content(s) left` };
      },
      { intervalMs: 200, timeoutMs: 30_000, what: 'the deleted backups’ VolumeSnapshotContents to go' },
    );
  });
});
