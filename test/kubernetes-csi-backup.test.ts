// Snapshot backup and rollback restore of a StatefulSet on the real node, with storage kind
// "csi": real VolumeSnapshots handled by the real snapshot-controller, real claims restored
// through dataSource, PostgreSQL 15 in real containers mounting CSI volumes through the real
// kubelet, recovery files written by a helper pod through pods/exec, WAL replayed from an
// archive the pod writes. The CSI driver itself is played by the harness (csiHostpath.ts).
import assert from 'node:assert/strict';
import { chownSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { parseCatalog } from '../src/config/catalog';
import { resolvePgEndpoint } from '../src/config/credentials';
import { closeAllPortForwards } from '../src/drivers/kube/portForward';
import { withSession } from '../src/drivers/postgres/session';
import { pollUntil } from '../src/drivers/waiting';
import { CSI_ANNOTATIONS, CSI_LABELS } from '../src/drivers/storage/csi';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';
import type { ListBackupsResult } from '../src/workflows/backupCatalog';
import { binDir, kubeCluster, type KubeCluster } from './harness/kubeCluster';
import {
  kubernetesTarget,
  statefulSetObject,
  testNamespace,
  waitForReadyReplicas,
  writeCatalog,
} from './harness/kubeObjects';
import {
  POSTGRES_GID,
  POSTGRES_IMAGE,
  POSTGRES_UID,
  realNode,
  realNodePod,
  realNodeProblem,
} from './harness/kube/realNode';
import { CSI_SNAPSHOT_CLASS, CSI_STORAGE_CLASS, csiHostpath, type CsiHostpath } from './harness/kube/csiHostpath';
import { commitStatements, createOrders } from './harness/sampleData';
import { failureOf } from './harness/failures';
import { testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';

const PGDATA = '/var/lib/pgdata/data';

describe('backup and rollback restore on Kubernetes with CSI VolumeSnapshots (real node, real snapshot-controller)', function () {
  this.timeout(300_000);
  let cluster: KubeCluster;
  let csi: CsiHostpath;
  let ns: string;
  let catalogPath: string;
  const taskQueue = `pg-ops-csi-${Math.random().toString(36).slice(2, 8)}`;
  let seq = 0;
  const entry = () => parseCatalog(readFileSync(catalogPath, 'utf8'), catalogPath).clusters.orders!;
  const endpoint = async () => resolvePgEndpoint('orders', entry());
  const sql = async <T = Record<string, unknown>>(text: string): Promise<T[]> =>
    withSession(await endpoint(), async (c) => (await c.query(text)).rows as T[]);
  const checksum = async () =>
    (
      await sql<{ h: string }>(`SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) AS h FROM orders t`)
    )[0]!.h;
  const run = async <T>(type: string, input: Record<string, unknown>): Promise<T> => {
    const { client } = await testEnv();
    return withWorker(taskQueue, catalogPath, () =>
      client.workflow.execute(type, { taskQueue, workflowId: `csi-${type}-${Date.now()}-${seq++}`, args: [input] }),
    ) as Promise<T>;
  };
  const backup = (extra: Record<string, unknown> = {}) =>
    run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: 'orders', ...extra });
  const restore = (extra: Record<string, unknown>) =>
    run<RollbackRestoreResult>('rollbackRestoreWorkflow', { cluster: 'orders', confirm: 'orders', ...extra });
  const core = () => cluster.admin().makeApiClient(CoreV1Api);
  const archiveNow = async () => {
    const wal = (await sql<{ f: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS f'))[0]!.f;
    await sql('SELECT pg_switch_wal()');
    await pollUntil(
      async () =>
        (await sql<{ ok: boolean }>(`SELECT last_archived_wal >= '${wal}' AS ok FROM pg_stat_archiver`))[0]!.ok
          ? { done: true }
          : { waiting: 'not archived' },
      { intervalMs: 100, timeoutMs: 30_000, what: `WAL ${wal} to be archived` },
    );
  };
  const helperPods = async () =>
    (await core().listNamespacedPod({ namespace: ns, labelSelector: 'pgops.temporal.io/helper-for' })).items.length;

  before(async function () {
    const problem = realNodeProblem();
    if (problem) {
      console.log(`      skipped: ${problem}`);
      this.skip();
    }
    cluster = await kubeCluster();
    if (!cluster.daemons.some((d) => d.name === 'snapshot-controller')) {
      console.log('      skipped: the snapshot-controller was not built');
      this.skip();
    }
    const node = await realNode(cluster, binDir());
    csi = await csiHostpath(cluster, node, { uid: POSTGRES_UID, gid: POSTGRES_GID });
    ns = await testNamespace(cluster, 'csi');
    const archive = join(cluster.dir, 'archives', ns);
    mkdirSync(archive, { recursive: true });
    chownSync(archive, POSTGRES_UID, POSTGRES_GID);
    const sts = statefulSetObject({ namespace: ns, name: 'pg', replicas: 1, volumeClaimTemplates: ['pgdata'] });
    sts.spec!.volumeClaimTemplates![0]!.spec!.storageClassName = CSI_STORAGE_CLASS;
    sts.spec!.template.spec = {
      ...realNodePod,
      terminationGracePeriodSeconds: 20,
      securityContext: { runAsUser: POSTGRES_UID, runAsGroup: POSTGRES_GID },
      containers: [
        {
          name: 'postgres',
          image: POSTGRES_IMAGE,
          imagePullPolicy: 'Never',
          env: [{ name: 'PGDATA', value: PGDATA }],
          command: [
            'bash',
            '-ec',
            '[ -f $PGDATA/PG_VERSION ] || initdb -D $PGDATA -U postgres --auth=trust >/dev/null; ' +
              "exec postgres -D $PGDATA -c listen_addresses='*' -c unix_socket_directories=/tmp " +
              "-c wal_level=replica -c archive_mode=on -c 'archive_command=cp %p /archive/%f' -c track_commit_timestamp=on",
          ],
          ports: [{ name: 'postgres', containerPort: 5432 }],
          readinessProbe: { exec: { command: ['pg_isready', '-h', '127.0.0.1', '-U', 'postgres'] }, periodSeconds: 1 },
          volumeMounts: [
            { name: 'pgdata', mountPath: '/var/lib/pgdata' },
            { name: 'archive', mountPath: '/archive' },
          ],
        },
      ],
      volumes: [{ name: 'archive', hostPath: { path: archive, type: 'Directory' } }],
    };
    await cluster.admin().makeApiClient(AppsV1Api).createNamespacedStatefulSet({ namespace: ns, body: sts });
    await waitForReadyReplicas(cluster, ns, 'pg', 1, 180_000).catch((err: unknown) => {
      throw new Error(`${String(err)}\nCSI driver: ${csi.log.join('\n')}`);
    });
    catalogPath = await writeCatalog('csi-catalog', {
      orders: {
        target: kubernetesTarget(cluster, ns, 'pg', { readyTimeoutSeconds: 180, stopTimeoutSeconds: 120 }),
        postgres: { user: 'postgres', portForward: {} },
        walArchive: '/archive',
        storage: { kind: 'csi', volumeSnapshotClass: CSI_SNAPSHOT_CLASS },
      },
    });
    await withSession(await endpoint(), (c) => createOrders(c, 3000));
  });
  after(async () => {
    await closeAllPortForwards();
  });

  it('takes an online backup as a VolumeSnapshot with its record, and restores exactly those rows into a new claim', async () => {
    const before = await checksum();
    const taken = await backup();
    assert.equal(taken.took, 'online');
    assert.equal(taken.backup.storage, 'csi');
    assert.match(taken.backup.labelfile ?? '', /START WAL LOCATION/);
    assert.deepEqual(
      taken.backup.snapshots.map((s) => [s.role, s.source, s.method]),
      [['data', 'pgdata-pg-0', 'csi']],
    );
    const snap = (await cluster.admin().makeApiClient(CustomObjectsApi).getNamespacedCustomObject({
      group: 'snapshot.storage.k8s.io',
      version: 'v1',
      namespace: ns,
      plural: 'volumesnapshots',
      name: taken.backup.snapshots[0]!.ref,
    })) as {
      metadata: { labels: Record<string, string>; annotations: Record<string, string> };
      status: { readyToUse: boolean };
    };
    assert.equal(snap.status.readyToUse, true);
    assert.equal(snap.metadata.labels[CSI_LABELS.backup], taken.backup.id);
    assert.equal(JSON.parse(snap.metadata.annotations[CSI_ANNOTATIONS.record]!).stopLsn, taken.backup.stopLsn);

    await sql('DELETE FROM orders WHERE id % 3 = 0');
    assert.notEqual(await checksum(), before);
    const oldVolume = (await core().readNamespacedPersistentVolumeClaim({ name: 'pgdata-pg-0', namespace: ns })).spec!
      .volumeName!;

    const restored = await restore({ backup: 'latest' });
    assert.equal(restored.restored.id, taken.backup.id);
    assert.equal(restored.safetySnapshot?.kind, 'pre-restore');
    assert.equal(restored.verified.inRecovery, false);
    assert.ok(restored.verified.timeline > taken.backup.timeline, 'recovery ends on a new timeline');
    assert.match(restored.verified.lastRecoveryLog ?? '', /archive recovery complete|consistent recovery state/);
    assert.equal(await checksum(), before);

    const claim = await core().readNamespacedPersistentVolumeClaim({ name: 'pgdata-pg-0', namespace: ns });
    assert.equal(
      claim.spec?.dataSource?.name,
      taken.backup.snapshots[0]!.ref,
      'the claim is restored from the snapshot',
    );
    assert.notEqual(claim.spec?.volumeName, oldVolume);
    assert.equal(claim.metadata?.annotations?.[CSI_ANNOTATIONS.previousVolume], oldVolume);
    assert.deepEqual(restored.released, [`${oldVolume} (reclaim policy Delete)`]);
    // Released with its reclaim policy back to Delete: the provisioner deletes it.
    await pollUntil(
      async () =>
        (await core()
          .readPersistentVolume({ name: oldVolume })
          .catch(() => undefined))
          ? { waiting: 'there' }
          : { done: true },
      { intervalMs: 200, timeoutMs: 30_000, what: `the replaced volume ${oldVolume} to be deleted` },
    );
    assert.equal(await helperPods(), 0, 'the helper pod is gone');
  });

  it('replays the archived WAL forward from the snapshot to a recovery target: exactly the rows up to it', async () => {
    const taken = await backup({ label: 'before the batch' });
    await commitStatements(await endpoint(), [
      "INSERT INTO orders SELECT g, 'late', 1 FROM generate_series(100001, 100050) g",
    ]);
    const good = await checksum();
    const bad = await commitStatements(await endpoint(), ['DELETE FROM orders WHERE id < 500']);
    await archiveNow();
    const restored = await restore({ backup: taken.backup.id, recoveryTarget: { xid: bad.xid } });
    assert.equal(restored.recovery?.state, 'promoted');
    assert.match(restored.verified.lastRecoveryLog ?? '', /recovery stopping before commit of transaction/);
    assert.equal(await checksum(), good);

    // The safety snapshot undoes this restore: back to the state with the damage.
    const undone = await restore({ backup: restored.safetySnapshot!.id, safetySnapshot: false });
    assert.equal(undone.restored.kind, 'pre-restore');
    assert.equal(Number((await sql<{ n: string }>('SELECT count(*) AS n FROM orders WHERE id < 500'))[0]!.n), 0);
  });

  it('gives a stopped cluster an offline snapshot (pg_controldata through a helper pod) and leaves it stopped', async () => {
    const { client } = await testEnv();
    await withWorker(taskQueue, catalogPath, () =>
      client.workflow.execute('plannedStopWorkflow', {
        taskQueue,
        workflowId: `csi-stop-${Date.now()}`,
        args: [{ cluster: 'orders' }],
      }),
    );
    const taken = await backup();
    assert.equal(taken.took, 'offline-of-stopped-cluster');
    assert.equal(taken.backup.mode, 'offline');
    assert.equal(taken.backup.cleanShutdown, true);
    assert.match(taken.backup.systemIdentifier, /^\d+$/);
    assert.equal((await core().listNamespacedPod({ namespace: ns, labelSelector: 'app=pg' })).items.length, 0);
    assert.equal(await helperPods(), 0, 'the helper pod is gone');
    await withWorker(taskQueue, catalogPath, () =>
      client.workflow.execute('plannedStartWorkflow', {
        taskQueue,
        workflowId: `csi-start-${Date.now()}`,
        args: [{ cluster: 'orders' }],
      }),
    );

    const listed = await run<ListBackupsResult>('listBackupsWorkflow', { cluster: 'orders' });
    assert.equal(listed.backups[0]?.id, taken.backup.id, 'newest first');
    await run('deleteBackupWorkflow', { cluster: 'orders', backup: taken.backup.id, confirm: 'orders' });
    const snaps = (await cluster
      .admin()
      .makeApiClient(CustomObjectsApi)
      .listNamespacedCustomObject({
        group: 'snapshot.storage.k8s.io',
        version: 'v1',
        namespace: ns,
        plural: 'volumesnapshots',
        labelSelector: `${CSI_LABELS.backup}=${taken.backup.id}`,
      })) as { items: unknown[] };
    assert.equal(snaps.items.length, 0, 'its VolumeSnapshots are deleted');
  });

  it('refuses a VolumeSnapshotClass that does not exist before backup mode, changing nothing', async () => {
    const path = await writeCatalog('csi-bad-class', {
      orders: { ...entry(), storage: { kind: 'csi', volumeSnapshotClass: 'no-such-class' } },
    });
    const { client } = await testEnv();
    const failure = await failureOf(
      withWorker(taskQueue, path, () =>
        client.workflow.execute('snapshotBackupWorkflow', {
          taskQueue,
          workflowId: `csi-bad-class-${Date.now()}`,
          args: [{ cluster: 'orders' }],
        }),
      ),
    );
    assert.match(failure.message, /VolumeSnapshotClass "no-such-class" .* does not exist/);
    const inBackup = await sql<{ n: string }>(
      "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND query ILIKE '%pg_backup_start%'",
    );
    assert.equal(Number(inBackup[0]!.n), 0);
  });
});
