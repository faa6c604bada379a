// The planned stop/start and the PITR restart on a real node: a kubelet with containerd and runc
// runs PostgreSQL 15 in real containers (an image built without a registry), Ready from a real
// readiness probe, reached through pods/portforward served by the real kubelet. Opt-in: skipped,
// saying why, unless `bash scripts/k8s/node-image.sh` has prepared the machine (root needed).
import assert from 'node:assert/strict';
import { chownSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { parseCatalog } from '../src/config/catalog';
import { resolvePgEndpoint } from '../src/drivers/postgres/endpoint';
import type { KubernetesTarget } from '../src/config/schema';
import { KubernetesClusterDriver, loadKubeConfig } from '../src/drivers/cluster/kubernetes';
import { closeAllPortForwards } from '../src/drivers/kube/portForward';
import { withSession } from '../src/drivers/postgres/session';
import type { KubeCluster } from './harness/kubeCluster';
import { kubernetesTarget, preboundVolumes, testNamespace, writeCatalog } from './harness/kubeObjects';
import { POSTGRES_GID, POSTGRES_UID } from './harness/kube/realNode';
import { createRealNodePostgres, removeStatefulSet } from './harness/kube/realNodePostgres';
import { testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { realNodeOrSkip } from './harness/kube/realNodeSuite';

/** PIDs of PostgreSQL postmasters serving the container's data directory, seen from the host. */
function containerPostmasters(): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('postgres\0-D\0/var/lib/pgdata/data');
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe('a real node: PostgreSQL 15 in real containers (kubelet, containerd, runc)', function () {
  this.timeout(180_000);
  let cluster: KubeCluster;
  let ns: string;
  let catalogPath: string;
  const taskQueue = `pg-ops-node-${Math.random().toString(36).slice(2, 8)}`;
  const entry = () => parseCatalog(readFileSync(catalogPath, 'utf8'), catalogPath).clusters.orders!;
  const rows = async () =>
    withSession(await resolvePgEndpoint('orders', entry()), async (c) =>
      Number((await c.query('SELECT count(*) AS n FROM t')).rows[0].n),
    );

  before(async function () {
    ({ cluster } = await realNodeOrSkip(this));
    ns = await testNamespace(cluster, 'node');
    await preboundVolumes(cluster, ns, ['pgdata-pg-0']);
    chownSync(join(cluster.dir, 'volumes', ns, 'pgdata-pg-0'), POSTGRES_UID, POSTGRES_GID);
    await createRealNodePostgres(cluster, { namespace: ns, name: 'pg' }, 120_000);
    catalogPath = await writeCatalog('node-catalog', {
      orders: {
        target: kubernetesTarget(cluster, ns, 'pg', { readyTimeoutSeconds: 120, stopTimeoutSeconds: 120 }),
        postgres: { user: 'postgres', portForward: {} },
      },
    });
    await withSession(await resolvePgEndpoint('orders', entry()), (c) =>
      c.query('CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 3000) g'),
    );
  });
  after(async () => {
    await closeAllPortForwards();
    if (cluster) await removeStatefulSet(cluster, ns, 'pg');
  });

  it('a planned stop really stops the PostgreSQL container; the start brings the same data back, Ready from its probe', async () => {
    const { client } = await testEnv();
    assert.equal(containerPostmasters().length, 1, 'one containerized postmaster runs');
    await withWorker(taskQueue, catalogPath, async () => {
      await client.workflow.execute('plannedStopWorkflow', {
        taskQueue,
        workflowId: `node-stop-${Date.now()}`,
        args: [{ cluster: 'orders' }],
      });
      const pods = await cluster.admin().makeApiClient(CoreV1Api).listNamespacedPod({ namespace: ns });
      assert.equal(pods.items.length, 0);
      assert.deepEqual(containerPostmasters(), [], 'no postmaster is left on the machine');
      const started = (await client.workflow.execute('plannedStartWorkflow', {
        taskQueue,
        workflowId: `node-start-${Date.now()}`,
        args: [{ cluster: 'orders' }],
      })) as { readyReplicas: number; serverVersion: string };
      assert.equal(started.readyReplicas, 1);
      assert.match(started.serverVersion, /^15\./);
    });
    assert.equal(await rows(), 3000, 'the same volume, the same data');
  });

  it('the PITR restart deletes the pod: the kubelet stops PostgreSQL and the new pod starts it again', async () => {
    const before = containerPostmasters();
    const target = entry().target as KubernetesTarget;
    await new KubernetesClusterDriver(target, loadKubeConfig(target)).restartServer();
    const after = containerPostmasters();
    assert.equal(after.length, 1);
    assert.notDeepEqual(after, before, 'a new postmaster process');
    assert.equal(await rows(), 3000);
  });
});
