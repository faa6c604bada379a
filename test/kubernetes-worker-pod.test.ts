// The worker as a pod on the real node, as deploy/ ships it: the image scripts/k8s/worker-image.sh
// builds (what deploy/Dockerfile describes: the compiled worker with its prebuilt workflow bundle,
// production dependencies, Node.js and PostgreSQL 15's programs), deploy/worker-rbac.yaml's
// ServiceAccount and Roles, deploy/worker-deployment.yaml's Deployment and a catalog ConfigMap.
// The worker finds the API server from inside the pod (in-cluster configuration, the projected
// ServiceAccount token) and runs a planned stop and start of a PostgreSQL StatefulSet on the same
// node. Test-only changes to the Deployment, each for a part this machine lacks: the image is
// never pulled; the pod uses the host's network (no kube-proxy runs, and the Temporal dev server
// and the API server listen on loopback), so KUBERNETES_SERVICE_HOST/PORT name the API server's
// loopback address; the WAL archive claim is an emptyDir (stop/start does not read it).
// Opt-in like the other real-node suites.
import assert from 'node:assert/strict';
import { chownSync } from 'node:fs';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api, type KubernetesObject, type V1Deployment } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { runCommand } from '../src/drivers/exec';
import { pollUntil } from '../src/drivers/waiting';
import type { KubeCluster } from './harness/kubeCluster';
import { preboundVolumes, testNamespace } from './harness/kubeObjects';
import { applyManifests } from './harness/kube/manifests';
import { deployFile, relocate } from './harness/kube/deployManifests';
import { POSTGRES_GID, POSTGRES_UID, realNodePod } from './harness/kube/realNode';
import { createRealNodePostgres, removeStatefulSet } from './harness/kube/realNodePostgres';
import { scratchDir, testEnv } from './harness/testEnv';
import { realNodeOrSkip } from './harness/kube/realNodeSuite';

const ROOT = join(__dirname, '..');
// deploy/'s Role allows pods/portforward only to the delayed replica's pod, pg-delayed-0.
const STATEFUL_SET = 'pg-delayed';

describe('the worker as a pod: deploy/ image, ServiceAccount, Role and Deployment on the real node', function () {
  this.timeout(600_000);
  let cluster: KubeCluster;
  let ns: string;
  const taskQueue = `pg-ops-pod-${Math.random().toString(36).slice(2, 8)}`;

  /** The worker pod's log, for failure messages. */
  const workerLog = async () => {
    const core = cluster.admin().makeApiClient(CoreV1Api);
    const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=pgops-worker' });
    const name = pods.items[0]?.metadata?.name;
    if (!name) return 'no worker pod';
    return core.readNamespacedPodLog({ name, namespace: ns }).catch((err: unknown) => `no log: ${String(err)}`);
  };

  before(async function () {
    const started = await realNodeOrSkip(this);
    cluster = started.cluster;
    const node = started.node;
    const image = join(await scratchDir('worker-image'), 'worker-image.tar');
    const built = await runCommand('bash', [join(ROOT, 'scripts/k8s/worker-image.sh'), image], {
      timeoutMs: 420_000,
    });
    if (built.code !== 0) throw new Error(`worker-image.sh failed: ${built.stderr}`);
    await node.importImage(image);

    ns = await testNamespace(cluster, 'wpod');
    await preboundVolumes(cluster, ns, [`pgdata-${STATEFUL_SET}-0`]);
    chownSync(join(cluster.dir, 'volumes', ns, `pgdata-${STATEFUL_SET}-0`), POSTGRES_UID, POSTGRES_GID);
    await createRealNodePostgres(cluster, { namespace: ns, name: STATEFUL_SET });

    const { server } = await testEnv();
    const apiServer = new URL(cluster.server);
    const catalog = {
      clusters: {
        orders: {
          // no kubeconfig: the worker uses its pod's ServiceAccount (in-cluster configuration)
          target: {
            kind: 'kubernetes',
            namespace: ns,
            statefulSet: STATEFUL_SET,
            replicas: 1,
            readyTimeoutSeconds: 180,
          },
          postgres: { user: 'postgres', portForward: { pod: `${STATEFUL_SET}-0`, port: 5432 } },
        },
      },
    };
    const [deployment] = deployFile('worker-deployment.yaml') as V1Deployment[];
    const pod = deployment!.spec!.template.spec!;
    Object.assign(pod, { ...realNodePod, hostNetwork: true, terminationGracePeriodSeconds: 10 });
    const worker = pod.containers[0]!;
    worker.imagePullPolicy = 'Never';
    const overrides: Record<string, string> = {
      TEMPORAL_ADDRESS: server.address,
      TEMPORAL_NAMESPACE: server.namespace,
      PGOPS_TASK_QUEUE: taskQueue,
      KUBERNETES_SERVICE_HOST: apiServer.hostname,
      KUBERNETES_SERVICE_PORT: apiServer.port,
    };
    worker.env = [
      ...(worker.env ?? []).filter((e) => !(e.name in overrides)),
      ...Object.entries(overrides).map(([name, value]) => ({ name, value })),
    ];
    pod.volumes = pod.volumes!.map((v) => (v.name === 'wal-archive' ? { name: v.name, emptyDir: {} } : v));
    const configMap: KubernetesObject & { data: Record<string, string> } = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'pgops-catalog', namespace: 'db' },
      data: { 'pgops.yaml': stringify(catalog) },
    };
    await applyManifests(
      cluster.admin(),
      relocate([...deployFile('worker-rbac.yaml'), configMap, deployment as KubernetesObject], {
        db: ns,
        'rook-ceph': ns,
      }),
    );
    const apps = cluster.admin().makeApiClient(AppsV1Api);
    await pollUntil(
      async () => {
        const d = await apps.readNamespacedDeployment({ name: 'pgops-worker', namespace: ns });
        return (d.status?.availableReplicas ?? 0) >= 1 ? { done: true } : { waiting: 'not available' };
      },
      { intervalMs: 500, timeoutMs: 120_000, what: 'the worker Deployment to be available' },
    ).catch(async (err: unknown) => {
      throw new Error(`${String(err)}\nworker log:\n${await workerLog()}`);
    });
  });
  after(async () => {
    if (!cluster) return;
    await cluster
      .admin()
      .makeApiClient(AppsV1Api)
      .deleteNamespacedDeployment({ name: 'pgops-worker', namespace: ns })
      .catch(() => undefined);
    await removeStatefulSet(cluster, ns, STATEFUL_SET);
  });

  it('runs a planned stop and start with its own ServiceAccount, from the pod', async () => {
    const { client } = await testEnv();
    const core = cluster.admin().makeApiClient(CoreV1Api);
    const ids: string[] = [];
    const run = (type: string) => {
      const workflowId = `pod-${type}-${Date.now()}`;
      ids.push(workflowId);
      return client.workflow
        .execute(type, { taskQueue, workflowId, args: [{ cluster: 'orders' }], workflowExecutionTimeout: '5 minutes' })
        .catch(async (err: unknown) => {
          throw new Error(`${type}: ${String(err)}\nworker log:\n${await workerLog()}`);
        });
    };
    await run('plannedStopWorkflow');
    assert.equal(
      (await core.listNamespacedPod({ namespace: ns, labelSelector: `app=${STATEFUL_SET}` })).items.length,
      0,
    );
    const started = (await run('plannedStartWorkflow')) as { readyReplicas: number; serverVersion: string };
    assert.equal(started.readyReplicas, 1);
    assert.match(started.serverVersion, /^15\./, 'the worker reached PostgreSQL through pods/portforward');

    const [workerPod] = (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=pgops-worker' })).items;
    assert.equal(workerPod?.spec?.serviceAccountName, 'pgops-worker');
    const log = await workerLog();
    assert.match(log, /pg-ops worker started/);
    assert.match(log, new RegExp(`"taskQueue":"${taskQueue}"`));
    // The activities ran in the pod: its worker is PID 1 of its container (identity "<pid>@<host>").
    for (const workflowId of ids) {
      const history = await client.workflow.getHandle(workflowId).fetchHistory();
      const identities = new Set(
        (history.events ?? []).flatMap((e) => e.activityTaskStartedEventAttributes?.identity ?? []),
      );
      assert.ok(identities.size > 0, `${workflowId} ran activities`);
      for (const identity of identities) assert.match(identity, /^1@/, `${workflowId}: activity worker ${identity}`);
    }
  });
});
