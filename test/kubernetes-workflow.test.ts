// plannedStopWorkflow / plannedStartWorkflow on a kubernetes catalog entry, end to end: real
// Temporal, a real API server with the real StatefulSet controller, a kwok pod whose database is
// a real local PostgreSQL (the harness starts it when the pod runs and stops it before the pod
// leaves), reached through pods/portforward with a password read from a Kubernetes Secret.
import assert from 'node:assert/strict';
import { AppsV1Api, CoreV1Api, Watch, type V1StatefulSet } from '@kubernetes/client-node';
import { testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { kubeCluster, type KubeCluster } from './harness/kubeCluster';
import { kubernetesTarget, testNamespace, writeCatalog } from './harness/kubeObjects';
import { passwordProtectedPostgres, postgresStatefulSet } from './harness/kubePostgres';
import type { PodBackend } from './harness/podBackends';
import { stopLocalClusterIfRunning, endpointOf, localTargetOf, type LocalCluster } from '../src/dev/localPostgres';
import { refusesConnections, withSession } from '../src/drivers/postgres/session';
import { closeAllPortForwards } from '../src/drivers/kube/portForward';
import { progressQuery, resumeSignal } from '../src/contract/definitions';
import type { PlannedStopResult } from '../src/workflows/plannedStop';
import type { PlannedStartResult } from '../src/workflows/plannedStart';
import { REPLICAS_BEFORE_STOP_ANNOTATION } from '../src/drivers/cluster/kubernetes';

describe('planned stop/start on a Kubernetes StatefulSet (real API server, kwok pod backed by a real PostgreSQL)', function () {
  this.timeout(120_000);
  let cluster: KubeCluster;
  let ns: string;
  let pg: LocalCluster;
  let backend: PodBackend;
  let catalogPath: string;
  const taskQueue = `pg-ops-k8s-${Math.random().toString(36).slice(2, 8)}`;
  const password = 'k8s-s3cret';
  const endpoint = () => ({ ...endpointOf(pg), password });
  const statefulSet = () =>
    cluster.admin().makeApiClient(AppsV1Api).readNamespacedStatefulSet({ name: 'pg-rook-sf', namespace: ns });

  before(async function () {
    this.timeout(180_000);
    cluster = await kubeCluster();
    pg = await passwordProtectedPostgres('k8s', password);
    ns = await testNamespace(cluster, 'wf');
    await cluster
      .admin()
      .makeApiClient(CoreV1Api)
      .createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'pg-su' }, stringData: { password } } });
    backend = await postgresStatefulSet(cluster, ns, 'pg-rook-sf', localTargetOf(pg));
    catalogPath = await writeCatalog('k8s-catalog', {
      orders: {
        target: kubernetesTarget(cluster, ns, 'pg-rook-sf', { readyTimeoutSeconds: 60, stopTimeoutSeconds: 60 }),
        postgres: { user: 'postgres', passwordSecret: { name: 'pg-su', key: 'password' }, portForward: {} },
      },
    });
  });
  after(async () => {
    await closeAllPortForwards();
    await backend?.close();
    if (pg) await stopLocalClusterIfRunning(pg);
  });

  it('scales to 0 through the scale subresource, the database really stops, PVCs kept, and it scales back to the recorded count', async () => {
    const { client } = await testEnv();
    assert.equal(await refusesConnections(endpoint()), false);
    backend.log.length = 0;
    const replicasSeen: number[] = [];
    const watching = await new Watch(cluster.admin()).watch(
      `/apis/apps/v1/namespaces/${ns}/statefulsets`,
      { fieldSelector: 'metadata.name=pg-rook-sf' },
      (_type: string, sts: V1StatefulSet) => {
        const replicas = sts.spec?.replicas ?? 0;
        if (replicasSeen.at(-1) !== replicas) replicasSeen.push(replicas);
      },
      () => undefined,
    );
    await withWorker(taskQueue, catalogPath, async () => {
      const handle = await client.workflow.start('plannedStopWorkflow', {
        taskQueue,
        workflowId: `k8s-hold-${Date.now()}`,
        args: [{ cluster: 'orders', holdUntilResumed: true }],
      });
      for (let step = ''; step !== 'hold'; await new Promise((r) => setTimeout(r, 100)))
        step = (await handle.query(progressQuery)).step;
      const pods = await cluster.admin().makeApiClient(CoreV1Api).listNamespacedPod({ namespace: ns });
      assert.equal(pods.items.length, 0);
      assert.equal((await statefulSet()).metadata?.annotations?.[REPLICAS_BEFORE_STOP_ANNOTATION], '1');
      assert.equal(await refusesConnections(endpoint()), true, 'the pod is gone only once its PostgreSQL has stopped');
      await handle.signal(resumeSignal);
      const result = (await handle.result()) as PlannedStopResult;
      assert.deepEqual(result.stopped.volumesKept, ['pgdata-pg-rook-sf-0']);
      assert.equal(result.after.readyReplicas, 1);
    });
    watching.abort();
    assert.deepEqual(replicasSeen, [1, 0, 1]);
    assert.deepEqual(backend.log, [
      'stop pg-rook-sf-0',
      'gone pg-rook-sf-0',
      'start pg-rook-sf-0',
      'ready pg-rook-sf-0',
    ]);
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
      assert.equal(await refusesConnections(endpoint()), true);
      const started = (await client.workflow.execute('plannedStartWorkflow', {
        taskQueue,
        workflowId: `k8s-start-${Date.now()}`,
        args: [{ cluster: 'orders' }],
      })) as PlannedStartResult;
      assert.equal(started.replicasFrom, 'recorded');
      assert.equal(started.readyReplicas, 1);
      assert.match(started.serverVersion, /^15\./);
    });
    assert.equal((await statefulSet()).metadata?.annotations?.[REPLICAS_BEFORE_STOP_ANNOTATION], undefined);
  });
});
