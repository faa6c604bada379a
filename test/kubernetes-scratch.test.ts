// Scratch instances on Kubernetes, on the real node with storage kind "csi": an online backup of
// the StatefulSet's PostgreSQL (snapshotBackupWorkflow) is cloned into new claims restored from its
// VolumeSnapshots, and a scratch pod (the StatefulSet's image, user and node) runs PostgreSQL 15 on
// them, replaying the WAL archive (the StatefulSet's hostPath volume, mounted read-only) to
// consistency and pausing there: the rows as of the backup, read-only, reached through a
// port-forward. KubernetesScratchSpace is driven directly, as the worker's ServiceAccount with
// deploy/'s rules only.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
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
import type {
  OpenScratchResult,
  RecoverRowsResult,
  VerifyBackupResult,
} from '../src/contract/operations/scratchRestores';
import { closeScratchSignal, progressQuery } from '../src/contract/definitions';
import { testEnv } from './harness/testEnv';
import { inProcessWorker } from './harness/workers';
import { failureOf } from './harness/failures';

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
    assert.equal(drill.checks.archive?.ok, true, 'the archive, read in the scratch pod, holds every segment');
    assert.match(drill.checks.archive.note, /the archive holds every segment from this backup's start/);
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

  it('a preview opened through openScratchWorkflow is queried through its port-forward, closed, and leaves nothing', async () => {
    const taken = await fx.backup();
    await fx.sql("INSERT INTO orders VALUES (400001, 'after the preview point', 1)");
    await fx.archiveNow();
    const production = await fx.checksum();
    const { client } = await testEnv();
    const worker = await inProcessWorker(fx.taskQueue, fx.catalogPath);
    await worker.runUntil(async () => {
      const handle = await client.workflow.start('openScratchWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `k8s-preview-${Date.now()}`,
        args: [{ cluster: 'orders', asOf: { backup: taken.backup.id }, ttl: '10m' }],
      });
      const port: number = await pollUntil<number>(
        async () => {
          const p = await handle.query(progressQuery).catch(() => undefined);
          return p?.step === 'open' ? { done: Number(p.numbers.port) } : { waiting: p?.step ?? 'starting' };
        },
        { intervalMs: 300, timeoutMs: 240_000, what: 'the preview to open' },
      );
      await withSession({ ...(await fx.endpoint()), host: '127.0.0.1', port }, async (c) => {
        const later = await c.query<{ n: string }>(
          "SELECT count(*) AS n FROM orders WHERE customer = 'after the preview point'",
        );
        assert.equal(Number(later.rows[0]!.n), 0, 'as of the backup');
        await assert.rejects(c.query("INSERT INTO orders VALUES (1, 'x', 1)"), /read-only/);
      });
      await handle.signal(closeScratchSignal, { by: 'test' });
      const result = (await handle.result()) as OpenScratchResult;
      assert.equal(result.ended, 'closed');
      assert.equal(result.scratch.removed, true);
      assert.equal(
        result.opened.portForward,
        `kubectl -n ${fx.ns} port-forward pod/${result.opened.pod} 15432:5432`,
        'the command a DBA away from the worker runs',
      );
      assert.match(result.opened.psql, /^psql -h 127\.0\.0\.1 -p 15432 -U postgres -d postgres$/);
    });
    assert.equal(await fx.checksum(), production, 'production rows unchanged');
    const pods = await core().listNamespacedPod({ namespace: fx.ns, labelSelector: SCRATCH_LABEL });
    const claims = await core().listNamespacedPersistentVolumeClaim({ namespace: fx.ns, labelSelector: SCRATCH_LABEL });
    assert.deepEqual([pods.items.length, claims.items.length], [0, 0], 'no scratch pod or clone claim left');
  });

  it('a dropped database comes back under a new name from the backup, by the LSN just before the drop', async () => {
    await fx.sql('CREATE DATABASE appdb');
    await withSession({ ...(await fx.endpoint()), database: 'appdb' }, async (c) => {
      await c.query('CREATE TABLE notes (id int PRIMARY KEY, body text)');
      await c.query("INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 300) g");
    });
    await fx.backup();
    const [{ lsn }] = (await fx.sql<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn')) as [
      { lsn: string },
    ];
    await fx.sql('DROP DATABASE appdb');
    await fx.sql("INSERT INTO orders VALUES (500001, 'after the drop', 1)");
    await fx.archiveNow();
    const recovered = await fx.run<RecoverRowsResult>('recoverRowsWorkflow', {
      cluster: 'orders',
      target: { lsn },
      databases: ['appdb'],
      restoreAs: 'appdb_restored',
    });
    assert.equal(recovered.restoredAs?.database, 'appdb_restored');
    const rows = await withSession({ ...(await fx.endpoint()), database: 'appdb_restored' }, async (c) =>
      Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM notes')).rows[0]!.n),
    );
    assert.equal(rows, 300);
    const later = await fx.sql<{ n: string }>("SELECT count(*) AS n FROM orders WHERE customer = 'after the drop'");
    assert.equal(Number(later[0]!.n), 1, 'the write after the drop is kept');
    const left = await core().listNamespacedPod({ namespace: fx.ns, labelSelector: SCRATCH_LABEL });
    assert.equal(left.items.length, 0, 'no scratch pod left');
  });

  it('a drill fails when the archive lost a segment (read in the scratch pod) and when a heap page of the snapshot is corrupt', async () => {
    const taken = await fx.backup();
    await fx.sql("INSERT INTO orders SELECT g, 'more', 2 FROM generate_series(600001, 600100) g");
    await fx.archiveNow();
    await fx.sql("INSERT INTO orders SELECT g, 'more', 2 FROM generate_series(600101, 600200) g");
    await fx.archiveNow();
    const archiveDir = join(cluster.dir, 'archives', fx.ns);
    const segments = readdirSync(archiveDir)
      .filter((f) => /^[0-9A-F]{24}$/.test(f))
      .sort();
    const lost = segments.at(-2)!;
    const kept = readFileSync(join(archiveDir, lost));
    rmSync(join(archiveDir, lost));
    try {
      const failed = await failureOf(fx.run('verifyBackupWorkflow', { cluster: 'orders', backup: taken.backup.id }));
      assert.equal(failed.type, 'DrillFailed');
      assert.match(failed.message, new RegExp(`WAL archive: segment ${lost} is missing`));
    } finally {
      writeFileSync(join(archiveDir, lost), kept);
    }
    // The first tuple of the orders table's first page given an xmin from the future, in the VolumeSnapshot's
    // content (this cluster has no data checksums: pg_amcheck alone must find it).
    const file = (await fx.sql<{ p: string }>("SELECT pg_relation_filepath('orders') AS p"))[0]!.p;
    const snapshot = taken.backup.snapshots.find((s) => s.role === 'data')!.ref;
    const custom = cluster.admin().makeApiClient(CustomObjectsApi);
    const object = (await custom.getNamespacedCustomObject({
      group: 'snapshot.storage.k8s.io',
      version: 'v1',
      namespace: fx.ns,
      plural: 'volumesnapshots',
      name: snapshot,
    })) as { status?: { boundVolumeSnapshotContentName?: string } };
    const content = object.status!.boundVolumeSnapshotContentName!;
    // The claim is mounted at /var/lib/pgdata, PGDATA is /var/lib/pgdata/data.
    const heap = join(cluster.dir, 'csi', 'snapshots', content, 'data', file);
    const bytes = readFileSync(heap);
    const firstTuple = bytes.readUInt32LE(24) & 0x7fff;
    bytes.writeUInt32LE(0x7000_0000, firstTuple);
    writeFileSync(heap, bytes);
    const corrupt = await failureOf(
      fx.run('verifyBackupWorkflow', { cluster: 'orders', backup: taken.backup.id, checks: { archive: false } }),
    );
    assert.equal(corrupt.type, 'DrillFailed');
    assert.match(corrupt.message, /pg_amcheck found corruption: .*xmin 1879048192 (equals or exceeds|precedes)/);
    const left = await core().listNamespacedPersistentVolumeClaim({ namespace: fx.ns, labelSelector: SCRATCH_LABEL });
    assert.equal(left.items.length, 0, 'no clone claim left');
  });
});
