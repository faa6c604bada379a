// delayedReplicaPitrWorkflow on a kubernetes catalog entry: the delayed replica is the pod of a
// StatefulSet on the real API server (kwok node), its database the real local standby, which the
// harness stops before the pod leaves and starts when the recreated pod runs. The restart that
// applies the target deletes the pod and waits for the StatefulSet controller to recreate it; the
// worker reaches the standby through pods/portforward.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { scratchDir } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { pitrFixture, recoverDeletedOrders, type PitrFixture } from './harness/pitrFixture';
import { CoreV1Api } from '@kubernetes/client-node';
import { kubeCluster, type KubeCluster } from './harness/kubeCluster';
import { testNamespace } from './harness/kubeObjects';
import { postgresStatefulSet } from './harness/kubePostgres';
import type { PodBackend } from './harness/podBackends';
import { localTargetOf } from '../src/dev/localPostgres';
import { closeAllPortForwards } from '../src/drivers/kube/portForward';

describe('delayedReplicaPitrWorkflow on a Kubernetes StatefulSet (real API server, kwok pod backed by the real standby)', function () {
  this.timeout(300_000);
  let fx: PitrFixture;
  let cluster: KubeCluster;
  let ns: string;
  let backend: PodBackend;
  let catalogPath: string;

  before(async () => {
    cluster = await kubeCluster();
    fx = await pitrFixture('k8spitr', '20s');
    ns = await testNamespace(cluster, 'pitr');
    backend = await postgresStatefulSet(cluster, ns, 'pg-delayed', localTargetOf(fx.set.replica));
    const dir = await scratchDir('k8spitr-catalog');
    catalogPath = join(dir, 'pgops.yaml');
    writeFileSync(
      catalogPath,
      stringify({
        clusters: {
          orders: { target: localTargetOf(fx.set.primary) },
          'orders-delayed': {
            target: {
              kind: 'kubernetes',
              namespace: ns,
              statefulSet: 'pg-delayed',
              replicas: 1,
              kubeconfig: cluster.adminKubeconfig,
              readyTimeoutSeconds: 300,
            },
            postgres: { portForward: {} },
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
    await closeAllPortForwards();
    await backend?.close();
    await fx?.set.stop();
  });

  it('recovers a bad DELETE: the target restart and the return to delay each recreate the pod', async () => {
    const core = cluster.admin().makeApiClient(CoreV1Api);
    const uidOfPod = async () => (await core.readNamespacedPod({ name: 'pg-delayed-0', namespace: ns })).metadata?.uid;
    const uidBefore = await uidOfPod();
    backend.log.length = 0;
    // The worker is up before the incident: the replica's 20 s delay is for the workflow, not for starting it.
    const result = await withWorker(fx.taskQueue, catalogPath, async () => {
      const bad = await fx.commit(['DELETE FROM orders WHERE id > 100']);
      await fx.waitForArchive();
      return recoverDeletedOrders(fx.taskQueue, `k8s-pitr-${Date.now()}`, bad.xid);
    });
    assert.equal(result.exported?.[0]?.rows, 500, 'exactly the pre-incident rows');
    assert.deepEqual(result.inserted, [{ table: 'public.orders', inserted: 400, createdTable: false }]);
    assert.equal(result.finalState, 'delayed replica again');
    assert.deepEqual(
      backend.log.filter((l) => l.startsWith('stop')),
      ['stop pg-delayed-0', 'stop pg-delayed-0'],
      'one pod restart for the target, one for the return to delay, each stopping the standby',
    );
    assert.notEqual(await uidOfPod(), uidBefore);
    const primary = await fx.query<{ n: number }>(fx.set.primaryEndpoint, 'SELECT count(*)::int AS n FROM orders');
    assert.equal(primary.n, 500);
  });
});
