// Snapshot backup and rollback restore of a StatefulSet on the real node, with storage kind
// "csi": real VolumeSnapshots handled by the real snapshot-controller, real claims restored
// through dataSource, PostgreSQL 15 in real containers mounting CSI volumes through the real
// kubelet, recovery files written by a helper pod through pods/exec, WAL replayed from an
// archive the pod writes. The CSI driver itself is played by the harness (csiHostpath.ts).
import assert from 'node:assert/strict';
import { AppsV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { closeAllPortForwards } from '../src/drivers/kube/portForward';
import { pollUntil } from '../src/drivers/waiting';
import { CSI_ANNOTATIONS, CSI_LABELS } from '../src/drivers/storage/csi';
import type { ListBackupsResult } from '../src/workflows/backupCatalog';
import type { KubeCluster } from './harness/kubeCluster';
import { writeCatalog } from './harness/kubeObjects';
import { CSI_SNAPSHOT_CLASS } from './harness/kube/csiHostpath';
import { csiBackupFixtureOrSkip, deployRulesKubeconfig } from './harness/kube/csiSuite';
import type { KubeBackupFixture } from './harness/kubeBackupFixture';
import { failureOf } from './harness/failures';
import { attemptsByActivity, runThroughKills } from './harness/crashRuns';
import { workerProcess, type WorkerProcess } from './harness/workers';
import { testEnv } from './harness/testEnv';
import { CancelledFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';

const SNAPSHOTS = { group: 'snapshot.storage.k8s.io', version: 'v1', plural: 'volumesnapshots' };

describe('backup and rollback restore on Kubernetes with CSI VolumeSnapshots (real node, real snapshot-controller)', function () {
  this.timeout(300_000);
  let cluster: KubeCluster;
  let fx: KubeBackupFixture;
  const core = () => cluster.admin().makeApiClient(CoreV1Api);
  const custom = () => cluster.admin().makeApiClient(CustomObjectsApi);

  before(async function () {
    ({ cluster, fx } = await csiBackupFixtureOrSkip(this, 'csi'));
  });
  after(async function () {
    this.timeout(90_000);
    await closeAllPortForwards();
    await fx?.teardown();
  });

  it('takes an online backup as a VolumeSnapshot with its record, and restores exactly those rows into a new claim', async () => {
    const before = await fx.checksum();
    const taken = await fx.backup();
    assert.equal(taken.took, 'online');
    assert.equal(taken.backup.storage, 'csi');
    assert.match(taken.backup.labelfile ?? '', /START WAL LOCATION/);
    assert.deepEqual(
      taken.backup.snapshots.map((s) => [s.role, s.source, s.method]),
      [
        ['data', 'pgdata-pg-0', 'csi'],
        ['claim', 'pgwal-pg-0', 'csi'],
      ],
      'PGDATA and the separate pg_wal volume',
    );
    const snap = (await custom().getNamespacedCustomObject({
      ...SNAPSHOTS,
      namespace: fx.ns,
      name: taken.backup.snapshots[0]!.ref,
    })) as {
      metadata: { labels: Record<string, string>; annotations: Record<string, string> };
      status: { readyToUse: boolean };
    };
    assert.equal(snap.status.readyToUse, true);
    assert.equal(snap.metadata.labels[CSI_LABELS.backup], taken.backup.id);
    assert.equal(JSON.parse(snap.metadata.annotations[CSI_ANNOTATIONS.record]!).stopLsn, taken.backup.stopLsn);

    await fx.sql('DELETE FROM orders WHERE id % 3 = 0');
    assert.notEqual(await fx.checksum(), before);
    const volumeOf = async (claim: string) =>
      (await core().readNamespacedPersistentVolumeClaim({ name: claim, namespace: fx.ns })).spec!.volumeName!;
    const oldVolume = await volumeOf('pgdata-pg-0');
    const oldWalVolume = await volumeOf('pgwal-pg-0');

    const restored = await fx.restore({ backup: 'latest' });
    assert.equal(restored.restored.id, taken.backup.id);
    assert.equal(restored.safetySnapshot?.kind, 'pre-restore');
    assert.equal(restored.verified.inRecovery, false);
    assert.ok(restored.verified.timeline > taken.backup.timeline, 'recovery ends on a new timeline');
    assert.match(
      restored.verified.lastRecoveryLog ?? '',
      /recovery stopping after reaching consistency|archive recovery complete/,
    );
    assert.equal(await fx.checksum(), before);

    const claim = await core().readNamespacedPersistentVolumeClaim({ name: 'pgdata-pg-0', namespace: fx.ns });
    assert.equal(
      claim.spec?.dataSource?.name,
      taken.backup.snapshots[0]!.ref,
      'the claim is restored from the snapshot',
    );
    assert.notEqual(claim.spec?.volumeName, oldVolume);
    assert.equal(claim.metadata?.annotations?.[CSI_ANNOTATIONS.previousVolume], oldVolume);
    assert.notEqual(await volumeOf('pgwal-pg-0'), oldWalVolume, 'the pg_wal claim is restored too');
    assert.deepEqual(restored.released, [
      `${oldVolume} (reclaim policy Delete)`,
      `${oldWalVolume} (reclaim policy Delete)`,
    ]);
    // Released with its reclaim policy back to Delete: the provisioner deletes it.
    await pollUntil(
      async () =>
        (await core()
          .readPersistentVolume({ name: oldVolume })
          .catch(() => undefined))
          ? { waiting: 'still there' }
          : { done: true },
      { intervalMs: 200, timeoutMs: 30_000, what: `the replaced volume ${oldVolume} to be deleted` },
    );
    assert.equal(await fx.helperPods(), 0, 'the helper pod is gone');
  });

  it('replays the archived WAL forward from the snapshot to a recovery target, and undoes that from its safety snapshot', async () => {
    const { restored, good, damaged } = await fx.restoreToJustBeforeDamage();
    assert.equal(restored.recovery?.state, 'promoted');
    assert.match(restored.verified.lastRecoveryLog ?? '', /recovery stopping before commit of transaction/);
    assert.equal(await fx.checksum(), good);

    const undone = await fx.restore({ backup: restored.safetySnapshot!.id, safetySnapshot: false });
    assert.equal(undone.restored.kind, 'pre-restore');
    assert.equal(await fx.checksum(), damaged, 'back to the state before the restore');
  });

  it('gives a stopped cluster an offline snapshot (pg_controldata through a helper pod) and leaves it stopped', async () => {
    await fx.run('plannedStopWorkflow', { cluster: 'orders' });
    const taken = await fx.backup();
    assert.equal(taken.took, 'offline-of-stopped-cluster');
    assert.equal(taken.backup.mode, 'offline');
    assert.equal(taken.backup.cleanShutdown, true);
    assert.match(taken.backup.systemIdentifier, /^\d+$/);
    assert.equal((await core().listNamespacedPod({ namespace: fx.ns, labelSelector: 'app=pg' })).items.length, 0);
    assert.equal(await fx.helperPods(), 0, 'the helper pod is gone');
    await fx.run('plannedStartWorkflow', { cluster: 'orders' });

    const listed = await fx.run<ListBackupsResult>('listBackupsWorkflow', { cluster: 'orders' });
    assert.equal(listed.backups[0]?.id, taken.backup.id, 'newest first');
    await fx.run('deleteBackupWorkflow', { cluster: 'orders', backup: taken.backup.id, confirm: 'orders' });
    const snaps = (await custom().listNamespacedCustomObject({
      ...SNAPSHOTS,
      namespace: fx.ns,
      labelSelector: `${CSI_LABELS.backup}=${taken.backup.id}`,
    })) as { items: unknown[] };
    assert.equal(snaps.items.length, 0, 'its VolumeSnapshots are deleted');
  });

  it('finishes a backup and a restore whose worker is SIGKILLed in backup mode, between deleting and re-creating the claim, and with the helper pod up', async function () {
    this.timeout(600_000);
    const workers: WorkerProcess[] = [];
    try {
      const atBackup = await fx.checksum();
      const backup = await runThroughKills<SnapshotBackupResult>(
        fx,
        workers,
        'snapshotBackupWorkflow',
        { cluster: 'orders' },
        [
          { pause: 'in-backup-mode', marker: /"step":"in-backup-mode"/ },
          { pause: 'after-snapshot', marker: /"step":"snapshot-taken"/ },
        ],
      );
      assert.equal((await attemptsByActivity(backup.handle)).get('takeOnlineBackup'), 3);
      const listed = await fx.run<ListBackupsResult>('listBackupsWorkflow', { cluster: 'orders' });
      assert.deepEqual(listed.strays, [], 'the dead attempts left no VolumeSnapshot behind');
      await fx.sql("INSERT INTO orders VALUES (990001, 'after the backup', 1)");

      const restore = await runThroughKills<RollbackRestoreResult>(
        fx,
        workers,
        'rollbackRestoreWorkflow',
        { cluster: 'orders', backup: backup.result.backup.id, confirm: 'orders' },
        [
          { pause: 'csi-claim-deleted', marker: /"pausedAt":"csi-claim-deleted"/ },
          { pause: 'helper-pod-open', marker: /"pausedAt":"helper-pod-open"/ },
        ],
      );
      const attempts = await attemptsByActivity(restore.handle);
      assert.ok((attempts.get('rollbackVolumes') ?? 0) >= 2, 'the rollback was retried');
      assert.equal(await fx.checksum(), atBackup);
      assert.equal(await fx.helperPods(), 0, 'no helper pod is left');
    } finally {
      for (const w of workers) await w.kill();
    }
  });

  it('a restore cancelled between deleting and re-creating a claim finishes the rollback first: stopped, every claim from the backup; the restore run again completes', async function () {
    this.timeout(600_000);
    const { client } = await testEnv();
    const taken = await fx.backup({ label: 'before the cancel' });
    const atBackup = await fx.checksum();
    await fx.sql("INSERT INTO orders VALUES (990002, 'after the backup', 1)");
    const worker = await workerProcess(fx.taskQueue, fx.catalogPath, { PGOPS_TEST_PAUSE_AT: 'csi-claim-deleted:8000' });
    try {
      const handle = await client.workflow.start('rollbackRestoreWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `csi-cancel-restore-${Date.now()}`,
        args: [{ cluster: 'orders', backup: taken.backup.id, confirm: 'orders' }],
      });
      await worker.waitForOutput(/"pausedAt":"csi-claim-deleted"/, 180_000);
      await handle.cancel();
      const failure = await handle.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      assert.ok(failure instanceof WorkflowFailedError && failure.cause instanceof CancelledFailure, String(failure));
      // The rollback was not abandoned half way: every claim exists again, made from the backup's snapshot.
      const claims = (await core().listNamespacedPersistentVolumeClaim({ namespace: fx.ns })).items;
      for (const template of ['pgdata', 'pgwal']) {
        const claim = claims.find((c) => c.metadata?.name === `${template}-pg-0`);
        assert.equal(claim?.spec?.dataSource?.kind, 'VolumeSnapshot', `claim ${template}-pg-0 comes from a snapshot`);
      }
      const sts = await cluster
        .admin()
        .makeApiClient(AppsV1Api)
        .readNamespacedStatefulSet({ name: 'pg', namespace: fx.ns });
      assert.equal(sts.spec?.replicas, 0, 'left stopped, as the README says');
    } finally {
      await worker.kill();
    }
    const again = await fx.restore({ backup: taken.backup.id, safetySnapshot: false });
    assert.equal(again.restored.id, taken.backup.id);
    assert.equal(await fx.checksum(), atBackup, 'the restore run again brings exactly the backup');
    assert.equal(await fx.helperPods(), 0, 'no helper pod is left');
  });

  it("runs with deploy/'s rules only: backup and restore as the worker ServiceAccount", async () => {
    // The worker's Roles as deploy/ writes them; only the names its sample catalog uses are this test's own.
    const kubeconfig = await deployRulesKubeconfig(cluster, fx.ns, ['pgops-worker', 'pgops-worker-backup'], (r) =>
      r.resources?.includes('pods/portforward') ? { ...r, resourceNames: ['pg-0'] } : r,
    );
    const catalog = await writeCatalog('csi-deploy-rules', {
      orders: {
        target: { kind: 'kubernetes', namespace: fx.ns, statefulSet: 'pg', replicas: 1, kubeconfig },
        postgres: { user: 'postgres', portForward: {} },
        walArchive: '/archive',
        storage: { kind: 'csi', volumeSnapshotClass: CSI_SNAPSHOT_CLASS },
      },
    });
    const before = await fx.checksum();
    const taken = await fx.run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: 'orders' }, catalog);
    await fx.sql('DELETE FROM orders WHERE id % 5 = 0');
    const restored = await fx.run<RollbackRestoreResult>(
      'rollbackRestoreWorkflow',
      { cluster: 'orders', backup: taken.backup.id, confirm: 'orders' },
      catalog,
    );
    assert.equal(await fx.checksum(), before);
    assert.match(
      restored.released.join(),
      /reclaim policy Delete/,
      'the replaced volume was given back (persistentvolumes patch)',
    );
  });

  it('refuses a VolumeSnapshotClass that does not exist before backup mode, changing nothing', async () => {
    const catalog = await writeCatalog('csi-bad-class', {
      orders: {
        target: {
          kind: 'kubernetes',
          namespace: fx.ns,
          statefulSet: 'pg',
          replicas: 1,
          kubeconfig: cluster.adminKubeconfig,
        },
        postgres: { user: 'postgres', portForward: {} },
        walArchive: '/archive',
        storage: { kind: 'csi', volumeSnapshotClass: 'no-such-class' },
      },
    });
    const count = async () =>
      ((await custom().listNamespacedCustomObject({ ...SNAPSHOTS, namespace: fx.ns })) as { items: unknown[] }).items
        .length;
    const before = await count();
    const failure = await failureOf(fx.run('snapshotBackupWorkflow', { cluster: 'orders' }, catalog));
    assert.match(failure.message, /VolumeSnapshotClass "no-such-class" .*does not exist/);
    assert.equal(await count(), before, 'no VolumeSnapshot was made');
    const inBackup = await fx.sql<{ n: string }>(
      "SELECT count(*) AS n FROM pg_stat_activity WHERE query ILIKE 'SELECT pg_backup_start%'",
    );
    assert.equal(Number(inBackup[0]!.n), 0, 'backup mode never started');
  });
});
