// Scratch instances on Kubernetes, on the real node with storage kind "csi": an online backup of
// the StatefulSet's PostgreSQL (snapshotBackupWorkflow) is cloned into new claims restored from its
// VolumeSnapshots, and a scratch pod (the StatefulSet's image, user and node) runs PostgreSQL 15 on
// them, replaying the WAL archive (the StatefulSet's hostPath volume, mounted read-only) to
// consistency and pausing there: the rows as of the backup, read-only, reached through a
// port-forward. KubernetesScratchSpace is driven directly, as the worker's ServiceAccount with
// deploy/'s rules only.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CoreV1Api } from '@kubernetes/client-node';
import { parseCatalog } from '../src/config/catalog';
import type { KubernetesTarget } from '../src/config/schema';
import { loadKubeConfig } from '../src/drivers/cluster/kubernetes';
import { closeAllPortForwards } from '../src/drivers/kube/portForward';
import { withSession } from '../src/drivers/postgres/session';
import { scratchRecoveryFiles } from '../src/drivers/postgres/scratch/scratchSettings';
import { KubernetesScratchSpace } from '../src/drivers/scratch/kubernetesScratchSpace';
import type { ScratchRequest } from '../src/drivers/scratch/types';
import { CsiSnapshotDriver } from '../src/drivers/storage/csi';
import { pollUntil } from '../src/drivers/waiting';
import type { KubeCluster } from './harness/kubeCluster';
import { CSI_SNAPSHOT_CLASS } from './harness/kube/csiHostpath';
import { csiBackupFixtureOrSkip, deployRulesKubeconfig } from './harness/kube/csiSuite';
import type { KubeBackupFixture } from './harness/kubeBackupFixture';
import type { RecoverRowsResult, VerifyBackupResult } from '../src/contract/operations/scratchRestores';

const SCRATCH_LABEL = 'pgops.temporal.io/scratch';

describe('scratch instances on Kubernetes: a CSI backup cloned into new claims, PostgreSQL in a scratch pod (real node)', function () {
  this.timeout(300_000);
  let cluster: KubeCluster;
  let fx: KubeBackupFixture;
  const core = () => cluster.admin().makeApiClient(CoreV1Api);

  before(async function () {
    ({ cluster, fx } = await csiBackupFixtureOrSkip(this, 'scratch'));
  });
  after(async function () {
    this.timeout(90_000);
    await closeAllPortForwards();
    await fx?.teardown();
  });

  it('runs the rows as of the backup read-only in a scratch pod, leaves production alone, and removes every trace', async () => {
    const atBackup = await fx.checksum();
    const taken = await fx.backup();
    assert.equal(taken.took, 'online');
    await fx.sql("INSERT INTO orders SELECT g, 'after the backup', 1 FROM generate_series(200001, 200100) g");
    await fx.archiveNow();
    const production = await fx.checksum();
    const claim = async (name: string) => {
      const pvc = await core().readNamespacedPersistentVolumeClaim({ name, namespace: fx.ns });
      return { uid: pvc.metadata?.uid, volume: pvc.spec?.volumeName, from: pvc.spec?.dataSource?.name };
    };
    const productionClaims = [await claim('pgdata-pg-0'), await claim('pgwal-pg-0')];

    const entry = parseCatalog(readFileSync(fx.catalogPath, 'utf8'), fx.catalogPath).clusters.orders!;
    const target = {
      ...(entry.target as KubernetesTarget),
      kubeconfig: await deployRulesKubeconfig(cluster, fx.ns, [
        'pgops-worker',
        'pgops-worker-backup',
        'pgops-worker-scratch',
      ]),
    };
    const kubeConfig = loadKubeConfig(target);
    const storage = new CsiSnapshotDriver('orders', target, CSI_SNAPSHOT_CLASS, kubeConfig);
    const space = new KubernetesScratchSpace('orders', target, { ...entry, target }, storage, kubeConfig);
    const id = `pgops-scratch-${randomBytes(4).toString('hex')}`;
    const request: ScratchRequest = {
      id,
      backup: taken.backup,
      owner: { workflowId: `scratch-test-${id}`, runId: 'run-1', operation: 'openScratch' },
      expiresAt: new Date(Date.now() + 3600_000).toISOString(),
      recovery: scratchRecoveryFiles(
        { target: 'immediate', inclusive: false, action: 'pause', timeline: 'current' },
        taken.backup,
        entry.walArchive,
      ),
    };

    const record = await space.create(request);
    assert.deepEqual(
      record.volumes.map((v) => [v.role, v.source, v.clone, v.path]),
      [
        ['data', '/var/lib/pgdata', `pgdata-pg-0-${id}`, '/var/lib/pgdata'],
        ['claim', '/var/lib/pgwal', `pgwal-pg-0-${id}`, '/var/lib/pgwal'],
      ],
      'each claim cloned, mounted where the StatefulSet mounts it',
    );
    assert.deepEqual([record.pod, record.port, record.pgdata], [id, 5432, '/var/lib/pgdata/data']);
    assert.match(
      record.methods.join('\n'),
      /WAL archive \/archive: the StatefulSet's volume \/archive, mounted read-only/,
    );
    const clone = await claim(`pgdata-pg-0-${id}`);
    assert.equal(clone.from, taken.backup.snapshots[0]!.ref, 'restored from the backup snapshot');
    await space.create(request);
    assert.equal((await claim(`pgdata-pg-0-${id}`)).uid, clone.uid, 'a retried create keeps the clone it made');

    await space.start(record);
    assert.equal(await space.running(record), true);
    const endpoint = await space.endpoint(record, await fx.endpoint());
    const scratchSql = async <T>(text: string): Promise<T[]> =>
      withSession(endpoint, async (c) => (await c.query(text)).rows as T[]);
    const waitForPause = () =>
      pollUntil(
        async () => {
          const state = await scratchSql<{ s: string }>('SELECT pg_get_wal_replay_pause_state() AS s').catch(
            (err: unknown) => [{ s: String(err) }],
          );
          return state[0]?.s === 'paused' ? { done: true } : { waiting: state[0]?.s ?? '' };
        },
        { intervalMs: 500, timeoutMs: 120_000, what: 'the scratch server to pause at consistency' },
      ).catch(async (err: unknown) => {
        throw new Error(`${String(err)}\nits log:\n${(await space.serverLog(record)).join('\n')}`);
      });
    const checksum = async () =>
      (
        await scratchSql<{ h: string }>(
          `SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) AS h FROM orders t`,
        )
      )[0]!.h;
    await waitForPause();
    assert.equal(await checksum(), atBackup, 'exactly the rows as of the backup');
    const [settings] = await scratchSql<Record<string, string>>(
      "SELECT current_setting('default_transaction_read_only') AS ro, current_setting('archive_mode') AS archive, current_setting('cluster_name') AS name",
    );
    assert.deepEqual(settings, { ro: 'on', archive: 'off', name: id });
    await assert.rejects(scratchSql("INSERT INTO orders VALUES (999999, 'x', 1)"), /read-only/);

    assert.equal(await fx.checksum(), production, 'production keeps its rows');
    assert.deepEqual(
      [await claim('pgdata-pg-0'), await claim('pgwal-pg-0')],
      productionClaims,
      "production's claims untouched",
    );

    // The pod deleted by hand: the record is a ConfigMap, still listed.
    await core().deleteNamespacedPod({ name: id, namespace: fx.ns, gracePeriodSeconds: 0 });
    await pollUntil(
      async () =>
        (await core()
          .readNamespacedPod({ name: id, namespace: fx.ns })
          .catch(() => undefined))
          ? { waiting: 'still there' }
          : { done: true },
      { intervalMs: 200, timeoutMs: 60_000, what: 'the scratch pod to be gone' },
    );
    assert.deepEqual(
      (await space.list()).map((r) => r.id),
      [id],
    );
    assert.equal(await space.running(record), false);
    // start makes the pod again on the same clones; the pid file the killed server left is stale.
    await space.start(record);
    await waitForPause();
    assert.equal(await checksum(), atBackup, 'the same rows from the same clones');
    await space.stop(record);
    assert.equal(await space.running(record), false);

    await space.remove(id);
    const left = async () => ({
      pods: (await core().listNamespacedPod({ namespace: fx.ns, labelSelector: SCRATCH_LABEL })).items.length,
      claims: (await core().listNamespacedPersistentVolumeClaim({ namespace: fx.ns, labelSelector: SCRATCH_LABEL }))
        .items.length,
      records: (await core().listNamespacedConfigMap({ namespace: fx.ns, labelSelector: SCRATCH_LABEL })).items.length,
    });
    assert.deepEqual(await left(), { pods: 0, claims: 0, records: 0 });
    assert.equal(await space.find(id), undefined);
    await space.remove(id);
    assert.deepEqual(await space.list(), []);
    assert.equal(await fx.checksum(), production);
    assert.equal((await storage.listRecords())[0]?.id, taken.backup.id, 'the backup and its snapshots are kept');
  });

  it('a restore drill runs in a scratch pod (promoted copy, pg_amcheck through the port-forward, pg_checksums in the pod), nothing left', async () => {
    const taken = await fx.backup();
    const drill = await fx.run<VerifyBackupResult>('verifyBackupWorkflow', {
      cluster: 'orders',
      backup: taken.backup.id,
    });
    assert.equal(drill.verification.ok, true, drill.verification.findings.join('; '));
    assert.ok(drill.checks.amcheck?.ok && drill.checks.amcheck.databases >= 2, 'pg_amcheck over every database');
    assert.equal(drill.checks.checksums?.ok, true);
    assert.equal(
      drill.checks.archive,
      undefined,
      "the archive in the pods is not the worker's to check: not reported as checked",
    );
    assert.match(drill.scratch.methods.join('\n'), /VolumeSnapshot/);
    const left = await core().listNamespacedPersistentVolumeClaim({ namespace: fx.ns, labelSelector: SCRATCH_LABEL });
    assert.equal(left.items.length, 0, 'no clone claim left');
  });

  it('rows deleted on the primary come back into it from the backup while it runs (recoverRowsWorkflow), nothing left', async () => {
    await fx.backup();
    await fx.sql("INSERT INTO orders SELECT g, 'precious', 3 FROM generate_series(300001, 300050) g");
    await fx.archiveNow();
    const t = (
      await fx.sql<{ t: string }>(`SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t`)
    )[0]!.t;
    await new Promise((r) => setTimeout(r, 1100));
    await fx.sql("DELETE FROM orders WHERE customer = 'precious'");
    await fx.sql("INSERT INTO orders VALUES (300999, 'after the incident', 1)");
    await fx.archiveNow();
    const recovered = await fx.run<RecoverRowsResult>('recoverRowsWorkflow', {
      cluster: 'orders',
      target: { time: t },
      tables: ['orders'],
      insertMissing: true,
    });
    assert.deepEqual(
      recovered.inserted?.map((i) => i.inserted),
      [50],
    );
    const n = (
      await fx.sql<{ n: string }>(
        "SELECT count(*) AS n FROM orders WHERE customer IN ('precious', 'after the incident')",
      )
    )[0]!.n;
    assert.equal(Number(n), 51, 'the deleted rows are back and the later write kept');
    const left = await core().listNamespacedPod({ namespace: fx.ns, labelSelector: SCRATCH_LABEL });
    assert.equal(left.items.length, 0, 'no scratch pod left');
  });
});
