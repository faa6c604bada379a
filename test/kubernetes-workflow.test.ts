// plannedStopWorkflow / plannedStartWorkflow on a kubernetes catalog entry, end to end: real
// Temporal, the real KubernetesClusterDriver over HTTP against the API server stand-in, whose pod
// "container" is a real local PostgreSQL (started and stopped by the stand-in's pod hooks), reached
// with a password read from a Kubernetes Secret.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { testEnv, scratchDir } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { startKubeApiStandIn, type KubeApiStandIn } from './harness/kubeApiStandIn';
import {
  initLocalCluster,
  startLocalCluster,
  stopLocalClusterIfRunning,
  pgCtl,
  endpointOf,
  type LocalCluster,
} from '../src/dev/localPostgres';
import { freePort } from '../src/dev/ports';
import { refusesConnections, withSession } from '../src/drivers/postgres/session';
import { progressQuery, resumeSignal } from '../src/workflows/definitions';
import type { PlannedStopResult } from '../src/workflows/plannedStop';
import type { PlannedStartResult } from '../src/workflows/plannedStart';
import { REPLICAS_BEFORE_STOP_ANNOTATION } from '../src/drivers/cluster/kubernetes';

describe('planned stop/start on a Kubernetes StatefulSet (API server stand-in, real PostgreSQL as the pod)', () => {
  let api: KubeApiStandIn;
  let pg: LocalCluster;
  let catalogPath: string;
  const taskQueue = `pg-ops-k8s-${Math.random().toString(36).slice(2, 8)}`;
  const password = 'k8s-s3cret';
  const endpoint = () => ({ ...endpointOf(pg), password });

  before(async () => {
    const dir = await scratchDir('k8s');
    pg = await initLocalCluster({ dir, port: await freePort() });
    await startLocalCluster(pg);
    await withSession(endpointOf(pg), async (c) => {
      await c.query(`ALTER USER postgres PASSWORD '${password}'`);
      await c.query('CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 5000) g');
    });
    // From now on TCP connections need the password, so the Secret really matters.
    const hba = join(pg.pgdata, 'pg_hba.conf');
    writeFileSync(hba, readFileSync(hba, 'utf8').replace(/^(host\s+all\s+all\s+\S+\s+)trust/gm, '$1scram-sha-256'));
    await stopLocalClusterIfRunning(pg, 'fast');

    api = await startKubeApiStandIn({
      readyDelayMs: 100,
      terminateDelayMs: 100,
      hooks: {
        onPodStart: async () => startLocalCluster(pg),
        onPodStop: async () => pgCtl(pg, ['stop', '-m', 'fast', '-w']),
      },
    });
    await api.addStatefulSet({
      namespace: 'db',
      name: 'pg-rook-sf',
      replicas: 1,
      labels: { app: 'pg-rook-sf' },
      volumeClaimTemplates: ['pgdata'],
    });
    api.addSecret('db', 'pg-su', { password });
    const kubeconfig = join(dir, 'kubeconfig');
    await api.writeKubeconfig(kubeconfig);
    catalogPath = join(dir, 'pgops.yaml');
    writeFileSync(
      catalogPath,
      stringify({
        clusters: {
          orders: {
            target: {
              kind: 'kubernetes',
              namespace: 'db',
              statefulSet: 'pg-rook-sf',
              replicas: 1,
              kubeconfig,
              readyTimeoutSeconds: 60,
              stopTimeoutSeconds: 60,
            },
            postgres: {
              host: '127.0.0.1',
              port: pg.port,
              user: 'postgres',
              passwordSecret: { name: 'pg-su', key: 'password' },
            },
          },
        },
      }),
    );
  });
  after(async () => {
    await api?.close();
    if (pg) await stopLocalClusterIfRunning(pg);
  });

  it('scales to 0 through the scale subresource, holds with PVCs kept, and scales back to the recorded count', async () => {
    const { client } = await testEnv();
    assert.equal(await refusesConnections(endpoint()), false);
    await withWorker(taskQueue, catalogPath, async () => {
      const handle = await client.workflow.start('plannedStopWorkflow', {
        taskQueue,
        workflowId: `k8s-hold-${Date.now()}`,
        args: [{ cluster: 'orders', holdUntilResumed: true }],
      });
      for (let step = ''; step !== 'hold'; await new Promise((r) => setTimeout(r, 100)))
        step = (await handle.query(progressQuery)).step;
      assert.equal(api.pods('db').length, 0);
      assert.equal(api.statefulSet('db', 'pg-rook-sf')?.metadata.annotations?.[REPLICAS_BEFORE_STOP_ANNOTATION], '1');
      assert.equal(await refusesConnections(endpoint()), true);
      await handle.signal(resumeSignal);
      const result = (await handle.result()) as PlannedStopResult;
      assert.deepEqual(result.stopped.volumesKept, ['pgdata-pg-rook-sf-0']);
      assert.equal(result.after.readyReplicas, 1);
    });
    const scaleWrites = api.requests.filter(
      (r) => r.method !== 'GET' && r.path.endsWith('/statefulsets/pg-rook-sf/scale'),
    );
    assert.deepEqual(
      scaleWrites.map((r) => (r.body as { spec?: { replicas?: number } }).spec?.replicas ?? 0),
      [0, 1],
    );
    assert.equal(
      await withSession(endpoint(), async (c) => Number((await c.query('SELECT count(*) AS n FROM t')).rows[0].n)),
      5000,
    );
  });

  it('a start with no replica count uses the one recorded on the StatefulSet by the stop', async () => {
    const { client } = await testEnv();
    await withWorker(taskQueue, catalogPath, async () => {
      await client.workflow.execute('plannedStopWorkflow', {
        taskQueue,
        workflowId: `k8s-stop-${Date.now()}`,
        args: [{ cluster: 'orders' }],
      });
      assert.equal(api.pods('db').length, 0);
      const started = (await client.workflow.execute('plannedStartWorkflow', {
        taskQueue,
        workflowId: `k8s-start-${Date.now()}`,
        args: [{ cluster: 'orders' }],
      })) as PlannedStartResult;
      assert.equal(started.replicasFrom, 'recorded');
      assert.equal(started.readyReplicas, 1);
      assert.match(started.serverVersion, /^15\./);
    });
    assert.equal(
      api.statefulSet('db', 'pg-rook-sf')?.metadata.annotations?.[REPLICAS_BEFORE_STOP_ANNOTATION],
      undefined,
    );
  });
});
