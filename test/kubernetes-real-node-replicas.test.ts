// The replica of a Kubernetes primary restored in place, on the real node (README "History"): a
// primary on CSI volumes archiving to a host directory, and an archive-only replica made by
// pg_basebackup, both PostgreSQL 15 in real containers. The archive is mounted in the pods at its
// host path, so the worker and the servers name it alike. A replica past the restore's fork is
// rebuilt in a helper pod on its own volume (pg_basebackup from the primary's pod, its own settings
// kept); one before the fork is told to follow the new timeline and its pod restarted.
import assert from 'node:assert/strict';
import { chownSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { parseCatalog } from '../src/config/catalog';
import { resolvePgEndpoint } from '../src/drivers/postgres/endpoint';
import { closeAllPortForwards } from '../src/drivers/kube/portForward';
import { withSession } from '../src/drivers/postgres/session';
import { pollUntil } from '../src/drivers/waiting';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { KubeCluster } from './harness/kubeCluster';
import { kubernetesTarget, testNamespace, writeCatalog } from './harness/kubeObjects';
import { POSTGRES_GID, POSTGRES_UID } from './harness/kube/realNode';
import { archivingPrimary, createRealNodePostgres, podIp, removeStatefulSet } from './harness/kube/realNodePostgres';
import { CSI_SNAPSHOT_CLASS, CSI_STORAGE_CLASS, csiHostpath } from './harness/kube/csiHostpath';
import { commitStatements, createOrders, switchWalAndWaitForArchiver } from './harness/sampleData';
import { scratchDir, testEnv } from './harness/testEnv';
import { withWorker, type WorkerProcess } from './harness/workers';
import { runThroughKills } from './harness/crashRuns';
import { realNodeOrSkip } from './harness/kube/realNodeSuite';

type ReplicasDone = {
  timeline: number;
  replicas: { replica: string; position: string; action: string; note: string }[];
};

describe('the replica of a Kubernetes primary restored in place (real node, CSI volumes)', function () {
  this.timeout(420_000);
  let cluster: KubeCluster;
  let ns: string;
  let catalogPath: string;
  let seq = 0;
  let firstBackup: string;
  let badCommit: { commitTime: string };
  const workers: WorkerProcess[] = [];
  const taskQueue = `pg-ops-node-replicas-${Math.random().toString(36).slice(2, 8)}`;
  const entry = (name: string) => parseCatalog(readFileSync(catalogPath, 'utf8'), catalogPath).clusters[name]!;
  const sql = async <T>(name: string, text: string): Promise<T[]> =>
    withSession(await resolvePgEndpoint(name, entry(name)), async (c) => (await c.query(text)).rows as T[]);
  const run = async <T>(type: string, input: Record<string, unknown>): Promise<T> => {
    const { client } = await testEnv();
    return withWorker(taskQueue, catalogPath, () =>
      client.workflow.execute(type, {
        taskQueue,
        workflowId: `node-replicas-${type}-${Date.now()}-${seq++}`,
        args: [input],
      }),
    ) as Promise<T>;
  };
  const archiveNow = async () => switchWalAndWaitForArchiver(await resolvePgEndpoint('orders', entry('orders')));
  const note = async (body: string) => {
    await sql('orders', `INSERT INTO notes (body) VALUES ('${body}')`);
    await archiveNow();
  };
  const replicaHas = async (body: string) =>
    (await sql('orders-replica', `SELECT 1 FROM notes WHERE body = '${body}'`).catch(() => [])).length > 0;
  const waitForReplica = (body: string) =>
    pollUntil(async () => ((await replicaHas(body)) ? { done: true } : { waiting: `no ${body} yet` }), {
      intervalMs: 500,
      timeoutMs: 180_000,
      what: `the replica to replay "${body}"`,
    });
  const backup = async () =>
    (await run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: 'orders' })).backup.id;
  const restore = async (id: string) => {
    const restored = await run<RollbackRestoreResult>('rollbackRestoreWorkflow', {
      cluster: 'orders',
      backup: id,
      confirm: 'orders',
    });
    const replicas = restored.replicas as ReplicasDone;
    assert.ok(replicas && 'replicas' in replicas, JSON.stringify(restored.replicas));
    assert.equal(restored.warnings, undefined, JSON.stringify(restored.warnings));
    return replicas.replicas[0]!;
  };

  before(async function () {
    this.timeout(600_000);
    let node;
    ({ cluster, node } = await realNodeOrSkip(this));
    await csiHostpath(cluster, node, { uid: POSTGRES_UID, gid: POSTGRES_GID });
    ns = await testNamespace(cluster, 'nodereplicas');
    // Not under the cluster's 0700 directory: the worker reads it (pg_waldump) as its owner, the container's postgres.
    const archive = join(await scratchDir('nodereplicas-archive'), 'archive');
    mkdirSync(archive);
    chownSync(archive, POSTGRES_UID, POSTGRES_GID);
    // At its host path inside the pods too: restore_command and the worker's pg_waldump name it alike.
    const mounts = { extraMounts: [{ name: 'archive', mountPath: archive }] };
    const volumes = [{ name: 'archive', hostPath: { path: archive, type: 'Directory' } }];
    await createRealNodePostgres(cluster, {
      namespace: ns,
      name: 'pg',
      storageClass: CSI_STORAGE_CLASS,
      // The replica's pg_basebackup (its init, then the rebuild's helper pod) connects from the node's pod network.
      ...archivingPrimary(archive),
      ...mounts,
      volumes,
    });
    const target = (name: string) =>
      kubernetesTarget(cluster, ns, name, { readyTimeoutSeconds: 180, stopTimeoutSeconds: 120 });
    catalogPath = await writeCatalog('nodereplicas-catalog', {
      orders: {
        target: target('pg'),
        postgres: { user: 'postgres', portForward: {} },
        walArchive: archive,
        storage: { kind: 'csi', volumeSnapshotClass: CSI_SNAPSHOT_CLASS },
      },
      'orders-replica': {
        target: target('pg-replica'),
        postgres: { user: 'postgres', portForward: {} },
        replicaOf: 'orders',
        walArchive: archive,
      },
    });
    await withSession(await resolvePgEndpoint('orders', entry('orders')), (c) => createOrders(c, 200));
    await sql('orders', 'CREATE TABLE notes (id serial PRIMARY KEY, body text)');
    await archiveNow();
    await createRealNodePostgres(cluster, {
      namespace: ns,
      name: 'pg-replica',
      storageClass: CSI_STORAGE_CLASS,
      env: [{ name: 'PRIMARY_HOST', value: await podIp(cluster, ns, 'pg-0') }],
      // Archive-only, as the seed's delayed replica, with a setting of its own that a rebuild must keep.
      init:
        'pg_basebackup -h "$PRIMARY_HOST" -U postgres -D "$PGDATA" -X stream; touch "$PGDATA/standby.signal"; ' +
        `printf "%s\\n" "restore_command = 'cp ${archive}/%f %p'" "work_mem = '7MB'" >> "$PGDATA/postgresql.auto.conf"`,
      ...mounts,
      volumes,
    });
    await note('start');
    await waitForReplica('start');
  });
  after(async function () {
    this.timeout(180_000);
    for (const w of workers) await w.kill();
    await closeAllPortForwards();
    if (!cluster) return;
    await removeStatefulSet(cluster, ns, 'pg-replica');
    await removeStatefulSet(cluster, ns, 'pg');
  });

  it('rebuilds a replica that replayed past the fork in a helper pod on its own volume, keeping its settings, and it replicates again', async () => {
    const core = cluster.admin().makeApiClient(CoreV1Api);
    const id = (firstBackup = await backup());
    badCommit = await commitStatements(await resolvePgEndpoint('orders', entry('orders')), [
      "INSERT INTO notes (body) VALUES ('bad')",
    ]);
    // A later commit on timeline 1: a time target stops before the first commit after it.
    await new Promise((r) => setTimeout(r, 50));
    await sql('orders', "INSERT INTO notes (body) VALUES ('later-on-timeline-1')");
    await archiveNow();
    await waitForReplica('bad');
    const outcome = await restore(id);
    assert.equal(outcome.replica, 'orders-replica');
    assert.equal(outcome.position, 'past-fork', outcome.note);
    assert.equal(outcome.action, 'rebuilt', outcome.note);
    assert.match(outcome.note, /rebuilt from the primary with pg_basebackup .*postgresql\.auto\.conf/);
    assert.equal(await replicaHas('bad'), false, 'the rolled-back row is gone from the replica');
    await note('after-rebuild');
    await waitForReplica('after-rebuild');
    const [settings] = await sql<{ w: string; r: boolean }>(
      'orders-replica',
      "SELECT current_setting('work_mem') AS w, pg_is_in_recovery() AS r",
    );
    assert.deepEqual(settings, { w: '7MB', r: true });
    const helpers = await core.listNamespacedPod({ namespace: ns, labelSelector: 'pgops.temporal.io/helper-for' });
    assert.equal(helpers.items.length, 0, 'the helper pod is gone');
    const sts = await cluster
      .admin()
      .makeApiClient(AppsV1Api)
      .readNamespacedStatefulSet({ name: 'pg-replica', namespace: ns });
    assert.equal(sts.metadata?.annotations?.['pgops.temporal.io/rebuilding-from'], undefined, 'no rebuild mark left');
  });

  it('finishes the rebuild on the next worker after a kill once the configuration is saved and once the copy is done', async () => {
    const id = await backup();
    await note('bad-crash');
    await waitForReplica('bad-crash');
    const { result } = await runThroughKills<RollbackRestoreResult>(
      { taskQueue, catalogPath },
      workers,
      'rollbackRestoreWorkflow',
      { cluster: 'orders', backup: id, confirm: 'orders' },
      [{ pause: 'rebuild-kubernetes-replica-saved' }, { pause: 'rebuild-kubernetes-replica-cloned' }],
      360_000,
    );
    const outcome = (result.replicas as ReplicasDone).replicas[0]!;
    assert.equal(outcome.action, 'rebuilt', outcome.note);
    assert.match(outcome.note, /interrupted by a crash was finished/);
    assert.equal(await replicaHas('bad-crash'), false);
    await note('after-crash');
    await waitForReplica('after-crash');
    const [settings] = await sql<{ w: string }>('orders-replica', "SELECT current_setting('work_mem') AS w");
    assert.equal(settings!.w, '7MB', 'the replica kept its own settings');
  });

  it('tells a replica that has not reached the fork to follow the new timeline, and it does', async () => {
    await sql('orders-replica', 'SELECT pg_wal_replay_pause()');
    const id = await backup();
    await note('bad-2');
    const outcome = await restore(id);
    assert.equal(outcome.position, 'before-fork', outcome.note);
    assert.equal(outcome.action, 'followed', outcome.note);
    await note('after-follow');
    await waitForReplica('after-follow');
    assert.equal(await replicaHas('bad-2'), false, 'the replica never replayed the rolled-back branch');
  });

  it('restores the first backup to a time on timeline 1 after its fork, following timeline 1 by number (not latest)', async () => {
    const restored = await run<RollbackRestoreResult>('rollbackRestoreWorkflow', {
      cluster: 'orders',
      backup: firstBackup,
      confirm: 'orders',
      recoveryTarget: { time: badCommit.commitTime },
      inclusive: true,
    });
    assert.equal(restored.recoveryTimeline?.timeline, 1, JSON.stringify(restored.recoveryTimeline));
    assert.equal(restored.recoveryFiles.settings.recovery_target_timeline, '1');
    const bodies = (await sql<{ body: string }>('orders', 'SELECT body FROM notes ORDER BY id')).map((r) => r.body);
    assert.deepEqual(bodies, ['start', 'bad'], 'the history of timeline 1 up to the target');
    // The replica followed timeline 4 by number in the test before: rebuilt, it must not keep that.
    const outcome = (restored.replicas as ReplicasDone).replicas[0]!;
    assert.equal(outcome.action, 'rebuilt', outcome.note);
    await note('after-timeline-1');
    await waitForReplica('after-timeline-1');
  });
});
