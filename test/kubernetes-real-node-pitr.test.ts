// delayedReplicaPitrWorkflow end to end on the real node: the primary and the delayed replica are
// both PostgreSQL 15 containers run by the kubelet. The primary archives its WAL into a host
// directory both pods mount at /archive; the replica was made by pg_basebackup from the primary's
// pod IP, and replays that archive 20 s late (archive-only, as in the seed). The worker runs on the
// host: it reads the same archive with pg_waldump, reaches both servers through pods/portforward,
// and the target restart and the return to delay each delete the replica's pod, which the
// StatefulSet controller recreates and the kubelet starts again. The replay's WAL read-ahead runs
// inside the replica's container (podReadAhead.ts): a worker SIGKILLed with it running leaves no
// process there once the heartbeat is stale, and the retry clears what a dead run left; with
// replayReadAhead 0 the replay goes on without it. Opt-in like the other real-node suites.
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
import { archivingPrimary, createRealNodePostgres, podIp, removeStatefulSet } from './harness/kube/realNodePostgres';
import { commitStatements, createOrders, switchWalAndWaitForArchiver } from './harness/sampleData';
import { scratchDir, testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { realNodeOrSkip } from './harness/kube/realNodeSuite';
import { failureOf } from './harness/failures';
import { workerProcess } from './harness/workers';
import type { Incident } from '../src/contract/operations/pitrSteps';
import type { DelayedReplicaPitrResult } from '../src/contract/operations/delayedReplicaPitr';
import { execInPod } from '../src/drivers/kube/podExec';
import { listArchivedSegments } from '../src/drivers/postgres/archive/walInspect';
import { HEARTBEAT_INTERVAL_MS, HEARTBEAT_STALE_SECONDS } from '../src/drivers/postgres/archive/podReadAhead';

const ARCHIVE_MOUNT = [{ name: 'archive', mountPath: '/archive' }];
/** The replica's staging directory in its container (PGDATA is the claim's data/ there). */
const STAGE = '/var/lib/pgdata/data/pg_wal/pgops_readahead';
/** Every process in the container but the listing itself: "pid cmdline" per line. */
const LIST_PROCESSES = [
  'sh',
  '-c',
  'for p in /proc/[0-9]*; do c=$(tr "\\0" " " <"$p/cmdline" 2>/dev/null) || continue; echo "${p#/proc/} $c"; done',
  'pgops-ps-listing',
];

describe('delayedReplicaPitrWorkflow on the real node: primary and delayed replica in real containers', function () {
  // A kill, the 30 s a stale heartbeat takes to end the loop, then the retry's replay and the return to
  // delay: well under 300 s, but correctness, not timing, is what is tested here.
  this.timeout(600_000);
  let cluster: KubeCluster;
  let ns: string;
  let catalogPath: string;
  let exportDir: string;
  let archive: string;
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
    archive = join(await scratchDir('nodepitr-archive'), 'archive');
    mkdirSync(archive);
    chownSync(archive, POSTGRES_UID, POSTGRES_GID);
    const volumes = [{ name: 'archive', hostPath: { path: archive, type: 'Directory' } }];

    await createRealNodePostgres(cluster, {
      namespace: ns,
      name: 'pg',
      // The replica's pg_basebackup connects from its pod's address on the node's bridge.
      // archive_timeout as on a primary with an archive SLA (and as the local fixtures). Without it
      // the PITR's return to delay is confirmed by the replica waiting for WAL (pitr-quiet-primary).
      ...archivingPrimary('/archive', { archive_timeout: '5s' }),
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
        // walArchive in the target: the archive as the container mounts it (the read-ahead copies from there)
        target: kubernetesTarget(cluster, ns, 'pg-delayed', {
          readyTimeoutSeconds: 180,
          stopTimeoutSeconds: 120,
          walArchive: '/archive',
        }),
        postgres: { user: 'postgres', portForward: {} },
        replicaOf: 'orders',
        // the worker's own view of the archive (pg_waldump); the pods see it at /archive
        walArchive: archive,
        exportDir,
      },
      // The same replica with the read-ahead off.
      'orders-delayed-plain': {
        target: kubernetesTarget(cluster, ns, 'pg-delayed', { readyTimeoutSeconds: 180, stopTimeoutSeconds: 120 }),
        postgres: { user: 'postgres', portForward: {} },
        replicaOf: 'orders',
        walArchive: archive,
        exportDir,
        replayReadAhead: 0,
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

  const inReplica = (command: string[]) =>
    execInPod(cluster.admin(), { namespace: ns, pod: 'pg-delayed-0', container: 'postgres' }, command);
  /** The container's processes other than PostgreSQL's own. */
  const strayProcesses = async () =>
    (await inReplica(LIST_PROCESSES)).stdout
      .split('\n')
      .filter((line) => line && !/^\d+ (postgres|pgops-ps-listing|tr |sh -c for p in)/.test(line));

  it('recovers a bad DELETE with the read-ahead in the pod, through a worker SIGKILLed while its loop ran there: the loop ends by itself, the retry clears what was left, replay stops just before the DELETE', async () => {
    const { client } = await testEnv();
    const core = cluster.admin().makeApiClient(CoreV1Api);
    const uidOfReplica = async () =>
      (await core.readNamespacedPod({ name: 'pg-delayed-0', namespace: ns })).metadata?.uid;
    const uidBefore = await uidOfReplica();
    // Some 160 MB of WAL before the incident: several segments for the replay to ask for. No
    // autovacuum on it: its commit, later than the next test's CREATE DATABASE, would hold that
    // test's replay behind the 1 h delay.
    await commitStatements(await resolvePgEndpoint('orders', entry('orders')), [
      "CREATE TABLE filler WITH (autovacuum_enabled = off) AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 600000) g",
    ]);
    await commitStatements(await resolvePgEndpoint('orders', entry('orders')), [
      "INSERT INTO orders SELECT g, 'late', 1 FROM generate_series(501, 520) g",
    ]);
    const bad = await commitStatements(await resolvePgEndpoint('orders', entry('orders')), [
      'DELETE FROM orders WHERE id > 100',
    ]);
    await archiveNow();
    const workflowId = `node-pitr-${Date.now()}`;

    // A worker killed inside the replay activity, after its loop started in the replica's container.
    const doomed = await workerProcess(taskQueue, catalogPath, { PGOPS_TEST_PAUSE_AT: 'begin:restart:120000' });
    const handle = await client.workflow.start('delayedReplicaPitrWorkflow', {
      taskQueue,
      workflowId,
      args: [
        {
          cluster: 'orders-delayed',
          target: { xid: bad.xid },
          then: 'export',
          export: { tables: ['orders'], insertMissing: true },
        },
      ],
    });
    await doomed.waitForOutput(/"pausedAt":"begin:restart"/, 120_000);
    const loop = await pollUntil<string>(
      async () => {
        const found = (await strayProcesses()).find((l) => l.includes('pgops-readahead '));
        const staged = (await inReplica(['ls', STAGE])).stdout.split('\n').filter((n) => /^[0-9A-F]{24}$/.test(n));
        return found && staged.length > 0 ? { done: found } : { waiting: 'the loop to stage a segment' };
      },
      { intervalMs: 200, timeoutMs: 30_000, what: 'the read-ahead loop in the replica container' },
    );
    await doomed.kill('SIGKILL');
    const killedAt = Date.now();
    console.log(`      worker SIGKILLed; in the container: ${loop.slice(0, 60)}…`);
    await pollUntil(
      async () => {
        const stray = await strayProcesses();
        return stray.length === 0 ? { done: true } : { waiting: stray.join('; ').slice(0, 300) };
      },
      { intervalMs: 1000, timeoutMs: (HEARTBEAT_STALE_SECONDS + 20) * 1000, what: 'no process of the read-ahead left' },
    );
    const gone = Date.now() - killedAt;
    console.log(
      `      loop gone ${(gone / 1000).toFixed(1)} s after the kill (heartbeat stale after ${HEARTBEAT_STALE_SECONDS} s)`,
    );
    assert.ok(
      gone > HEARTBEAT_STALE_SECONDS * 1000 - HEARTBEAT_INTERVAL_MS - 2000,
      `the loop ended by the heartbeat's age (${gone} ms), not at once`,
    );
    assert.equal((await inReplica(['test', '-e', STAGE])).code, 1, 'it removed its staging directory');
    const log = (await core.readNamespacedPodLog({
      name: 'pg-delayed-0',
      namespace: ns,
      container: 'postgres',
    })) as string;
    assert.doesNotMatch(
      log,
      /server process \(PID \d+\)|terminating any other active server processes/,
      'the postmaster never saw a stray child die',
    );

    // A dead run's leftovers: garbage under the names of segments the replay needs. Unless the
    // retry clears them first, restore_command hands them to the startup process.
    const needed = listArchivedSegments(archive)
      .filter((seg) => seg.timeline === 1)
      .slice(-4);
    const plant = ['sh', '-c', 'mkdir -p "$1" && shift && for f; do echo garbage >"$f"; done', 'plant', STAGE];
    assert.equal(
      (await inReplica([...plant, ...needed.map((seg) => `${STAGE}/${seg.fileName}`), `${STAGE}/.dead.x.partial`]))
        .code,
      0,
    );

    const result = await withWorker(taskQueue, catalogPath, () => handle.result() as Promise<DelayedReplicaPitrResult>);
    const readAhead = result.reached.readAhead;
    console.log(`      WAL read-ahead: ${JSON.stringify(readAhead)}`);
    assert.equal(readAhead?.where, 'pod');
    assert.ok(readAhead && readAhead.staged >= 1 && readAhead.consumed >= 1, JSON.stringify(readAhead));
    assert.equal(result.exported?.[0]?.rows, 520, 'every row committed before the DELETE, none after');
    assert.deepEqual(result.inserted, [{ table: 'public.orders', inserted: 420, createdTable: false }]);
    assert.equal(result.finalState, 'delayed replica again');
    assert.notEqual(await uidOfReplica(), uidBefore, 'the kubelet runs a new replica pod');
    const { n } = await row<{ n: number }>('orders', 'SELECT count(*)::int AS n FROM orders');
    assert.equal(n, 520, 'the primary has its lost rows back');
    const { delay, standby, restore } = await row<{ delay: string; standby: boolean; restore: string }>(
      'orders-delayed',
      "SELECT current_setting('recovery_min_apply_delay') AS delay, pg_is_in_recovery() AS standby, current_setting('restore_command') AS restore",
    );
    assert.deepEqual(
      { delay, standby, restore },
      { delay: '20s', standby: true, restore: 'cp /archive/%f %p' },
      'a delayed standby again, its own restore_command',
    );
    assert.equal((await inReplica(['test', '-e', STAGE])).code, 1, 'no staging directory left');
    assert.deepEqual(await strayProcesses(), [], 'no read-ahead process left');
  });

  it('with replayReadAhead 0 the replay runs without it and stops just before the bad DELETE', async () => {
    const { client } = await testEnv();
    await commitStatements(await resolvePgEndpoint('orders', entry('orders')), [
      "INSERT INTO orders SELECT g, 'later', 1 FROM generate_series(521, 530) g",
    ]);
    const bad = await commitStatements(await resolvePgEndpoint('orders', entry('orders')), [
      'DELETE FROM orders WHERE id > 520',
    ]);
    await archiveNow();
    const result = (await withWorker(taskQueue, catalogPath, () =>
      client.workflow.execute('delayedReplicaPitrWorkflow', {
        taskQueue,
        workflowId: `node-pitr-plain-${Date.now()}`,
        args: [
          { cluster: 'orders-delayed-plain', target: { xid: bad.xid }, then: 'export', export: { tables: ['orders'] } },
        ],
      }),
    )) as DelayedReplicaPitrResult;
    assert.equal(result.reached.readAhead, undefined, 'no read-ahead');
    assert.equal(result.exported?.[0]?.rows, 530, 'the rows before the DELETE, none after');
    assert.equal(result.finalState, 'delayed replica again');
    assert.equal((await inReplica(['test', '-e', STAGE])).code, 1);
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
