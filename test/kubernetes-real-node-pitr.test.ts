// delayedReplicaPitrWorkflow end to end on the real node: the primary and the delayed replica are
// both PostgreSQL 15 containers run by the kubelet. The primary archives its WAL into a host
// directory both pods mount at /archive; the replica was made by pg_basebackup from the primary's
// pod IP, and replays that archive 20 s late (archive-only, as in the seed). The worker runs on the
// host: it reads the same archive with pg_waldump, reaches both servers through pods/portforward,
// and the target restart and the return to delay each delete the replica's pod, which the
// StatefulSet controller recreates and the kubelet starts again. Opt-in like the other real-node suites.
import assert from 'node:assert/strict';
import { chownSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { parseCatalog } from '../src/config/catalog';
import { resolvePgEndpoint } from '../src/drivers/postgres/endpoint';
import { closeAllPortForwards } from '../src/drivers/kube/portForward';
import { withSession } from '../src/drivers/postgres/session';
import { pollUntil } from '../src/drivers/waiting';
import type { KubeCluster } from './harness/kubeCluster';
import { kubernetesTarget, preboundVolumes, testNamespace, writeCatalog } from './harness/kubeObjects';
import { POSTGRES_GID, POSTGRES_UID } from './harness/kube/realNode';
import { createRealNodePostgres, podIp, removeStatefulSet } from './harness/kube/realNodePostgres';
import { commitStatements, createOrders, switchWalAndWaitForArchiver } from './harness/sampleData';
import { scratchDir, testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { realNodeOrSkip } from './harness/kube/realNodeSuite';
import { failureOf } from './harness/failures';
import { recoverDeletedOrders } from './harness/pitrFixture';
import type { Incident } from '../src/contract/operations/pitrSteps';

const ARCHIVE_MOUNT = [{ name: 'archive', mountPath: '/archive' }];

describe('delayedReplicaPitrWorkflow on the real node: primary and delayed replica in real containers', function () {
  this.timeout(300_000);
  let cluster: KubeCluster;
  let ns: string;
  let catalogPath: string;
  let exportDir: string;
  const taskQueue = `pg-ops-node-pitr-${Math.random().toString(36).slice(2, 8)}`;
  const entry = (name: string) => parseCatalog(readFileSync(catalogPath, 'utf8'), catalogPath).clusters[name]!;
  const sql = async <T>(cluster: string, text: string): Promise<T[]> =>
    withSession(await resolvePgEndpoint(cluster, entry(cluster)), async (c) => (await c.query(text)).rows as T[]);
  const row = async <T>(cluster: string, text: string): Promise<T> => (await sql<T>(cluster, text))[0]!;
  const archiveNow = async () => switchWalAndWaitForArchiver(await resolvePgEndpoint('orders', entry('orders')));

  before(async function () {
    ({ cluster } = await realNodeOrSkip(this));
    ns = await testNamespace(cluster, 'nodepitr');
    await preboundVolumes(cluster, ns, ['pgdata-pg-0', 'pgdata-pg-delayed-0']);
    for (const claim of ['pgdata-pg-0', 'pgdata-pg-delayed-0'])
      chownSync(join(cluster.dir, 'volumes', ns, claim), POSTGRES_UID, POSTGRES_GID);
    // Not under the cluster's 0700 directory: the worker reads it as its owner, the container's postgres.
    const archive = join(await scratchDir('nodepitr-archive'), 'archive');
    mkdirSync(archive);
    chownSync(archive, POSTGRES_UID, POSTGRES_GID);
    const volumes = [{ name: 'archive', hostPath: { path: archive, type: 'Directory' } }];

    await createRealNodePostgres(cluster, {
      namespace: ns,
      name: 'pg',
      // The replica's pg_basebackup connects from its pod's address on the node's bridge.
      init:
        'initdb -D "$PGDATA" -U postgres --auth=trust >/dev/null; ' +
        'echo "host replication postgres 10.203.0.0/24 trust" >> "$PGDATA/pg_hba.conf"',
      settings: {
        wal_level: 'replica',
        archive_mode: 'on',
        archive_command: 'cp %p /archive/%f',
        track_commit_timestamp: 'on',
      },
      extraMounts: ARCHIVE_MOUNT,
      volumes,
    });
    const primaryIp = await podIp(cluster, ns, 'pg-0');
    exportDir = join(await scratchDir('nodepitr-exports'), 'exports');
    catalogPath = await writeCatalog('nodepitr-catalog', {
      orders: {
        target: kubernetesTarget(cluster, ns, 'pg', { readyTimeoutSeconds: 180 }),
        postgres: { user: 'postgres', portForward: {} },
      },
      'orders-delayed': {
        target: kubernetesTarget(cluster, ns, 'pg-delayed', { readyTimeoutSeconds: 180, stopTimeoutSeconds: 120 }),
        postgres: { user: 'postgres', portForward: {} },
        replicaOf: 'orders',
        // the worker's own view of the archive (pg_waldump); the pods see it at /archive
        walArchive: archive,
        exportDir,
      },
    });
    await withSession(await resolvePgEndpoint('orders', entry('orders')), (c) => createOrders(c, 500));
    await archiveNow();

    await createRealNodePostgres(cluster, {
      namespace: ns,
      name: 'pg-delayed',
      env: [{ name: 'PRIMARY_HOST', value: primaryIp }],
      init:
        'pg_basebackup -h "$PRIMARY_HOST" -U postgres -D "$PGDATA" -X stream; touch "$PGDATA/standby.signal"; ' +
        `printf "%s\\n" "restore_command = 'cp /archive/%f %p'" "recovery_min_apply_delay = '20s'" >> "$PGDATA/postgresql.auto.conf"`,
      settings: { track_commit_timestamp: 'on' },
      extraMounts: ARCHIVE_MOUNT,
      volumes,
    });
    const { standby } = await row<{ standby: boolean }>('orders-delayed', 'SELECT pg_is_in_recovery() AS standby');
    assert.equal(standby, true, 'the replica pod runs a standby');
  });
  after(async () => {
    await closeAllPortForwards();
    if (!cluster) return;
    await removeStatefulSet(cluster, ns, 'pg-delayed');
    await removeStatefulSet(cluster, ns, 'pg');
  });

  it('recovers a bad DELETE: replay stops just before it, the lost rows go back to the primary, the replica is delayed again', async () => {
    const core = cluster.admin().makeApiClient(CoreV1Api);
    const uidOfReplica = async () =>
      (await core.readNamespacedPod({ name: 'pg-delayed-0', namespace: ns })).metadata?.uid;
    const uidBefore = await uidOfReplica();
    const result = await withWorker(taskQueue, catalogPath, async () => {
      await commitStatements(await resolvePgEndpoint('orders', entry('orders')), [
        "INSERT INTO orders SELECT g, 'late', 1 FROM generate_series(501, 520) g",
      ]);
      const bad = await commitStatements(await resolvePgEndpoint('orders', entry('orders')), [
        'DELETE FROM orders WHERE id > 100',
      ]);
      await archiveNow();
      return recoverDeletedOrders(taskQueue, `node-pitr-${Date.now()}`, bad.xid);
    });
    assert.equal(result.exported?.[0]?.rows, 520, 'every row committed before the DELETE, none after');
    assert.deepEqual(result.inserted, [{ table: 'public.orders', inserted: 420, createdTable: false }]);
    assert.equal(result.finalState, 'delayed replica again');
    assert.notEqual(await uidOfReplica(), uidBefore, 'the kubelet runs a new replica pod');
    const { n } = await row<{ n: number }>('orders', 'SELECT count(*)::int AS n FROM orders');
    assert.equal(n, 520, 'the primary has its lost rows back');
    const { delay, standby } = await row<{ delay: string; standby: boolean }>(
      'orders-delayed',
      "SELECT current_setting('recovery_min_apply_delay') AS delay, pg_is_in_recovery() AS standby",
    );
    assert.deepEqual({ delay, standby }, { delay: '20s', standby: true }, 'a delayed standby again');
  });

  it('a DROP DATABASE within the delay: the locator names it and warns, and a PITR to just before it is refused', async () => {
    const { client } = await testEnv();
    const waitForReplica = (what: string, query: string) =>
      pollUntil(
        async () =>
          (await sql<{ ok: boolean }>('orders-delayed', query).catch(() => []))[0]?.ok
            ? { done: true }
            : { waiting: 'not replayed yet' },
        { intervalMs: 500, timeoutMs: 120_000, what },
      );
    // Replay holds at the first commit younger than the delay, and every record behind it waits:
    // no autovacuum commits, and the replica has replayed everything before the delay grows to 1 h.
    await sql('orders', 'ALTER SYSTEM SET autovacuum = off');
    await sql('orders', 'SELECT pg_reload_conf()');
    await sql('orders', 'CREATE DATABASE appdb');
    const { lsn } = await row<{ lsn: string }>('orders', 'SELECT pg_current_wal_lsn()::text AS lsn');
    await archiveNow();
    await waitForReplica(
      'the replica to replay the CREATE DATABASE',
      `SELECT pg_last_wal_replay_lsn() >= '${lsn}' AS ok`,
    );
    await sql('orders-delayed', "ALTER SYSTEM SET recovery_min_apply_delay = '1h'");
    await sql('orders-delayed', 'SELECT pg_reload_conf()');
    const from = new Date(Date.now() - 1000).toISOString();
    await sql('orders', 'DROP DATABASE appdb');
    const drop = await row<{ time: string }>(
      'orders',
      `SELECT to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS time FROM pg_last_committed_xact()`,
    );
    await archiveNow();
    await waitForReplica(
      'the replica to replay the drop record',
      "SELECT datconnlimit = -2 AS ok FROM pg_database WHERE datname = 'appdb'",
    );
    const { incidents, failure } = await withWorker(taskQueue, catalogPath, async () => ({
      incidents: (await client.workflow.execute('locateIncidentWorkflow', {
        taskQueue,
        workflowId: `node-locate-drop-${Date.now()}`,
        args: [{ cluster: 'orders-delayed', from, to: new Date(Date.now() + 1000).toISOString() }],
      })) as Incident[],
      failure: await failureOf(
        client.workflow.execute('delayedReplicaPitrWorkflow', {
          taskQueue,
          workflowId: `node-pitr-drop-${Date.now()}`,
          args: [{ cluster: 'orders-delayed', target: { time: drop.time }, then: 'pause', maxPause: '1s' }],
        }),
      ),
    }));
    const found = incidents.find((i) => i.dropped?.some((d) => d.name === 'appdb'));
    assert.ok(found, JSON.stringify(incidents));
    assert.match(found.warning ?? '', /already replayed the drop record of database "appdb"/);
    assert.equal(failure.type, 'PreconditionFailed', failure.message);
    assert.match(failure.message, /cannot bring that database back/);
    const { paused } = await row<{ paused: string }>(
      'orders-delayed',
      'SELECT pg_get_wal_replay_pause_state() AS paused',
    );
    assert.notEqual(paused, 'not paused', 'left paused');
  });
});
