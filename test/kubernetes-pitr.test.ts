// delayedReplicaPitrWorkflow on a kubernetes catalog entry: the delayed replica is the pod of a
// StatefulSet served by the API server stand-in (no real cluster runs here), its "container" the
// real local standby, started and stopped by the stand-in's pod hooks. The restart that applies
// the target deletes the pod and waits for the StatefulSet to recreate it.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { testEnv, scratchDir } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { pitrFixture, type PitrFixture } from './harness/pitrFixture';
import { startKubeApiStandIn, type KubeApiStandIn } from './harness/kubeApiStandIn';
import { LocalClusterDriver } from '../src/drivers/cluster/local';
import { localTargetOf } from '../src/dev/localPostgres';
import type { DelayedReplicaPitrResult } from '../src/workflows/delayedReplicaPitr';

describe('delayedReplicaPitrWorkflow on a Kubernetes StatefulSet (API server stand-in, real standby as the pod)', function () {
  this.timeout(300_000);
  let fx: PitrFixture;
  let api: KubeApiStandIn;
  let catalogPath: string;

  before(async () => {
    fx = await pitrFixture('k8spitr', '20s');
    const replicaDriver = new LocalClusterDriver(localTargetOf(fx.set.replica));
    api = await startKubeApiStandIn({
      readyDelayMs: 50,
      terminateDelayMs: 50,
      hooks: {
        onPodStart: async () => void (await replicaDriver.start(1)),
        onPodStop: async () => void (await replicaDriver.stop()),
      },
    });
    await api.addStatefulSet({
      namespace: 'db',
      name: 'pg-delayed',
      replicas: 1,
      labels: { app: 'pg-delayed' },
      volumeClaimTemplates: ['pgdata'],
    });
    const dir = await scratchDir('k8spitr-catalog');
    const kubeconfig = join(dir, 'kubeconfig');
    await api.writeKubeconfig(kubeconfig);
    catalogPath = join(dir, 'pgops.yaml');
    writeFileSync(
      catalogPath,
      stringify({
        clusters: {
          orders: { target: localTargetOf(fx.set.primary) },
          'orders-delayed': {
            target: {
              kind: 'kubernetes',
              namespace: 'db',
              statefulSet: 'pg-delayed',
              replicas: 1,
              kubeconfig,
              readyTimeoutSeconds: 300,
            },
            postgres: { host: '127.0.0.1', port: fx.set.replica.port },
            replicaOf: 'orders',
            walArchive: fx.set.archiveDir,
            exportDir: join(dir, 'exports'),
          },
        },
      }),
    );
    await fx.commit([
      'CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL)',
      "INSERT INTO orders SELECT g, 'customer-' || (g % 97) FROM generate_series(1, 500) g",
    ]);
    await fx.waitForReplicaToSee('SELECT count(*) = 500 AS ok FROM orders');
  });
  after(async () => {
    await api?.close();
    await fx?.set.stop();
  });

  it('recovers a bad DELETE: the target restart and the return to delay each recreate the pod', async () => {
    const { client } = await testEnv();
    const bad = await fx.commit(['DELETE FROM orders WHERE id > 100']);
    await fx.waitForArchive();
    const uidBefore = api.pods('db')[0]?.metadata.uid;
    const result = (await withWorker(fx.taskQueue, catalogPath, () =>
      client.workflow.execute('delayedReplicaPitrWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `k8s-pitr-${Date.now()}`,
        args: [
          {
            cluster: 'orders-delayed',
            target: { xid: bad.xid },
            then: 'export',
            export: { tables: ['orders'], insertMissing: true },
          },
        ],
      }),
    )) as DelayedReplicaPitrResult;
    assert.equal(result.exported?.[0]?.rows, 500, 'exactly the pre-incident rows');
    assert.deepEqual(result.inserted, [{ table: 'public.orders', inserted: 400, createdTable: false }]);
    assert.equal(result.finalState, 'delayed replica again');
    const deletes = api.requests.filter(
      (r) => r.method === 'DELETE' && r.path === '/api/v1/namespaces/db/pods/pg-delayed-0',
    );
    assert.equal(deletes.length, 2, 'one pod restart for the target, one for the return to delay');
    assert.notEqual(api.pods('db')[0]?.metadata.uid, uidBefore);
    const primary = await fx.query<{ n: number }>(fx.set.primaryEndpoint, 'SELECT count(*)::int AS n FROM orders');
    assert.equal(primary.n, 500);
  });
});
