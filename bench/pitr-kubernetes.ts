// Benchmark: targeted replay on a Kubernetes replica, on the real node (the test harness's
// kubelet + containerd, test/harness/kube/realNode.ts): a primary and an archive-only delayed
// replica in PostgreSQL 15 containers, the archive a host directory both pods mount at /archive.
// walMB of WAL in 100+ commits, then a bad DELETE, archived. The replica is stopped (scaled to 0)
// and its volume copied once; before each side it is put back from that copy and scaled up again
// (delayed, held at the start of that WAL), and the page cache is dropped. The sides, in an order
// reversed every round:
//  - the workflow to the bad xid (then=pause, no return to delay), start → result, with the WAL
//    read-ahead inside the replica's container (the default) and with replayReadAhead: 0;
//  - the manual runbook (docs/runbooks/delayed-replica-pitr.md) by a plain script: pause,
//    ALTER SYSTEM the target with delay 0, delete the pod (the StatefulSet recreates it), poll
//    on one port-forwarded session every 100 ms until paused at the target.
// Needs root and a machine prepared by `scripts/setup.sh --kubernetes`.
// Usage: npx tsx bench/pitr-kubernetes.ts [walMB=256] [rounds=2]
import { chownSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { loadCatalog } from '../src/config/catalog';
import { clusterServices } from '../src/drivers/clusterServices';
import { resolvePgEndpoint } from '../src/drivers/postgres/endpoint';
import { closeAllPortForwards } from '../src/drivers/kube/portForward';
import { waitForSql, withSession, type PgEndpoint } from '../src/drivers/postgres/session';
import { runCommand } from '../src/drivers/exec';
import type { DelayedReplicaPitrResult } from '../src/contract/operations/delayedReplicaPitr';
import { mochaHooks, scratchDir, testEnv } from '../test/harness/testEnv';
import { inProcessWorker } from '../test/harness/workers';
import { binDir, kubeCluster } from '../test/harness/kubeCluster';
import { kubernetesTarget, preboundVolumes, testNamespace, writeCatalog } from '../test/harness/kubeObjects';
import { POSTGRES_GID, POSTGRES_UID, realNode, realNodeProblem } from '../test/harness/kube/realNode';
import {
  archivingPrimary,
  createRealNodePostgres,
  podIp,
  removeStatefulSet,
} from '../test/harness/kube/realNodePostgres';
import { commitStatements, createOrders, switchWalAndWaitForArchiver } from '../test/harness/sampleData';
import { generateWal, untilPaused } from './replayRuns';

const walMB = Number(process.argv[2] ?? 256);
const rounds = Number(process.argv[3] ?? 2);
if (!Number.isFinite(walMB) || walMB < 16 || walMB > 4096) throw new Error('walMB must be a number from 16 to 4096');
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 10) throw new Error('rounds must be an integer from 1 to 10');

const MB = 1024 * 1024;
const CLUSTER = 'orders-delayed';
const CLUSTER_NO_READ_AHEAD = 'orders-delayed-no-read-ahead';
const RUNBOOK = 'manual runbook (pause → paused at the target)';
const RATE_DELAY = '30min';
const t0 = performance.now();
const log = (line: string) => console.log(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const query = <T>(endpoint: PgEndpoint, sql: string, params: unknown[] = []) =>
  withSession(endpoint, async (c) => (await c.query(sql, params)).rows[0] as T);

interface RateRun {
  ms: number;
  lsn: string;
  detail?: string;
}

async function main(): Promise<void> {
  const problem = realNodeProblem();
  if (problem) throw new Error(`the real node cannot run here: ${problem}`);
  const cluster = await kubeCluster();
  await realNode(cluster, binDir());
  const ns = await testNamespace(cluster, 'benchpitr');
  const replicaVolume = join(cluster.dir, 'volumes', ns, 'pgdata-pg-delayed-0');
  try {
    await preboundVolumes(cluster, ns, ['pgdata-pg-0', 'pgdata-pg-delayed-0']);
    for (const claim of ['pgdata-pg-0', 'pgdata-pg-delayed-0'])
      chownSync(join(cluster.dir, 'volumes', ns, claim), POSTGRES_UID, POSTGRES_GID);
    const archive = join(await scratchDir('benchpitr-archive'), 'archive');
    mkdirSync(archive);
    chownSync(archive, POSTGRES_UID, POSTGRES_GID);
    const volumes = [{ name: 'archive', hostPath: { path: archive, type: 'Directory' } }];
    const mounts = [{ name: 'archive', mountPath: '/archive' }];
    await createRealNodePostgres(cluster, {
      namespace: ns,
      name: 'pg',
      ...archivingPrimary('/archive', { max_wal_size: '4GB', checkpoint_timeout: '30min' }),
      extraMounts: mounts,
      volumes,
    });
    const replicaTarget = { readyTimeoutSeconds: 600, stopTimeoutSeconds: 300, walArchive: '/archive' };
    const catalogPath = await writeCatalog('benchpitr-catalog', {
      orders: { target: kubernetesTarget(cluster, ns, 'pg'), postgres: { user: 'postgres', portForward: {} } },
      [CLUSTER]: {
        target: kubernetesTarget(cluster, ns, 'pg-delayed', replicaTarget),
        postgres: { user: 'postgres', portForward: {} },
        replicaOf: 'orders',
        walArchive: archive,
      },
      [CLUSTER_NO_READ_AHEAD]: {
        target: kubernetesTarget(cluster, ns, 'pg-delayed', replicaTarget),
        postgres: { user: 'postgres', portForward: {} },
        replicaOf: 'orders',
        walArchive: archive,
        replayReadAhead: 0,
      },
    });
    const catalog = loadCatalog(catalogPath);
    const primary = await resolvePgEndpoint('orders', catalog.clusters.orders!);
    const replica = await resolvePgEndpoint(CLUSTER, catalog.clusters[CLUSTER]!);
    await withSession(primary, (c) => createOrders(c, 100_000));
    await query(primary, 'CREATE TABLE bulk (id bigint, pad text)');
    await query(primary, 'CHECKPOINT');
    await switchWalAndWaitForArchiver(primary);
    await createRealNodePostgres(cluster, {
      namespace: ns,
      name: 'pg-delayed',
      env: [{ name: 'PRIMARY_HOST', value: await podIp(cluster, ns, 'pg-0') }],
      init:
        'pg_basebackup -h "$PRIMARY_HOST" -U postgres -D "$PGDATA" -X stream; touch "$PGDATA/standby.signal"; ' +
        `printf "%s\\n" "restore_command = 'cp /archive/%f %p'" "recovery_min_apply_delay = '${RATE_DELAY}'" >> "$PGDATA/postgresql.auto.conf"`,
      settings: { max_wal_size: '4GB', checkpoint_timeout: '30min' },
      extraMounts: mounts,
      volumes,
    });
    log(`primary and delayed replica (delay ${RATE_DELAY}) running in namespace ${ns}`);

    // The WAL: walMB in 100+ commits (the delay holds each commit record: the replica stays at its start).
    const { written, commits: made } = await generateWal(primary, walMB, 100);
    const bad = await commitStatements(primary, ['DELETE FROM orders WHERE id > 60000']);
    await switchWalAndWaitForArchiver(primary);
    log(`${(written / MB).toFixed(0)} MB of WAL in ${made} commits, then the bad DELETE (xid ${bad.xid}), archived`);

    // The replica's volume, copied once while it is stopped; put back before every side.
    const services = clusterServices(CLUSTER, catalog.clusters[CLUSTER]!);
    const pristine = join(await scratchDir('benchpitr-pristine'), 'volume');
    await services.target().stop();
    const copied = await runCommand('cp', ['-a', replicaVolume, pristine]);
    if (copied.code !== 0) throw new Error(`copying the replica's volume failed: ${copied.stderr}`);
    const putReplicaBack = async () => {
      await services.target().stop();
      rmSync(replicaVolume, { recursive: true, force: true });
      const back = await runCommand('cp', ['-a', pristine, replicaVolume]);
      if (back.code !== 0) throw new Error(`restoring the replica's volume failed: ${back.stderr}`);
      await services.target().start(1);
      await waitForSql(replica, { timeoutMs: 600_000 });
      await runCommand('sync', []);
      writeFileSync('/proc/sys/vm/drop_caches', '3');
    };
    const { client } = await testEnv();
    const taskQueue = `bench-pitr-k8s-${Math.random().toString(36).slice(2, 8)}`;
    const worker = await inProcessWorker(taskQueue, catalogPath);
    const workerRun = worker.run();

    const workflowSide = async (clusterName: string): Promise<RateRun> => {
      const t = performance.now();
      const result = (await client.workflow.execute('delayedReplicaPitrWorkflow', {
        taskQueue,
        workflowId: `bench-pitr-k8s-${Date.now()}`,
        args: [{ cluster: clusterName, target: { xid: bad.xid }, then: 'pause', returnToDelay: false }],
      })) as DelayedReplicaPitrResult;
      return {
        ms: performance.now() - t,
        lsn: result.reached.replayLsn,
        detail: `watched ${result.reached.ms} ms; read-ahead: ${JSON.stringify(result.reached.readAhead ?? 'off')}`,
      };
    };
    const core = cluster.admin().makeApiClient(CoreV1Api);
    const runbookSide = async (): Promise<RateRun> => {
      const t = performance.now();
      await query(replica, 'SELECT pg_wal_replay_pause()');
      await withSession(replica, async (c) => {
        for (const [name, value] of Object.entries({
          recovery_target_xid: bad.xid,
          recovery_target_inclusive: 'off',
          recovery_target_action: 'pause',
          recovery_min_apply_delay: '0',
        }))
          await c.query(`ALTER SYSTEM SET ${name} = '${value}'`);
      });
      // kubectl delete pod: the StatefulSet controller recreates it with the settings on its volume.
      await core.deleteNamespacedPod({ name: 'pg-delayed-0', namespace: ns });
      await sleep(500);
      const paused = await untilPaused(replica, 1_800_000);
      return { ms: paused.at - t, lsn: paused.lsn };
    };
    const sides: Array<[string, () => Promise<RateRun>]> = [
      ['workflow, read-ahead in the pod (the default)', () => workflowSide(CLUSTER)],
      ['workflow, replayReadAhead: 0', () => workflowSide(CLUSTER_NO_READ_AHEAD)],
      [RUNBOOK, runbookSide],
    ];
    const runs = new Map<string, RateRun[]>(sides.map(([name]) => [name, []]));
    try {
      for (let round = 0; round < rounds; round++) {
        for (const [name, side] of round % 2 === 0 ? sides : [...sides].reverse()) {
          await putReplicaBack();
          const run = await side();
          runs.get(name)!.push(run);
          log(
            `round ${round + 1}/${rounds}: ${name}: ${(run.ms / 1000).toFixed(2)} s, paused at ${run.lsn}${run.detail ? `; ${run.detail}` : ''}`,
          );
        }
      }
    } finally {
      worker.shutdown();
      await workerRun;
    }
    const lsns = new Set([...runs.values()].flat().map((r) => r.lsn));
    const runbook = median(runs.get(RUNBOOK)!.map((r) => r.ms));
    console.log(
      `\nTargeted replay on a Kubernetes replica (real node): ${(written / MB).toFixed(0)} MB of WAL, ${rounds} rounds, order reversed every round, volume put back and page cache dropped before each side`,
    );
    console.log(
      `every run paused at ${[...lsns].join(', ')}${lsns.size === 1 ? ' (the same LSN)' : ' (DIFFERENT LSNs)'}`,
    );
    console.log('| side | median | ÷ runbook | each run (s) |');
    console.log('| --- | --- | --- | --- |');
    for (const [name] of sides) {
      const times = runs.get(name)!.map((r) => r.ms);
      console.log(
        `| ${name} | ${(median(times) / 1000).toFixed(2)} s | ${(runbook / median(times)).toFixed(2)} | ${times.map((x) => (x / 1000).toFixed(2)).join(', ')} |`,
      );
    }
  } finally {
    await closeAllPortForwards();
    await removeStatefulSet(cluster, ns, 'pg-delayed').catch(() => undefined);
    await removeStatefulSet(cluster, ns, 'pg').catch(() => undefined);
    await mochaHooks.afterAll.call(undefined);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
