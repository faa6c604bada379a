// deploy/ checked by the real API server and its real RBAC authorizer: every manifest passes
// validation and admission (server-side apply, dry run); the planned stop/start workflows and the
// PITR pod restart run with the deploy/ ServiceAccount's own token, with every call allowed; and
// removing any one verb of the worker's Role makes a named step fail with a message that names
// the missing rule.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AppsV1Api,
  AuthorizationV1Api,
  RbacAuthorizationV1Api,
  type KubernetesObject,
  type V1PolicyRule,
} from '@kubernetes/client-node';
import { WorkflowFailedError } from '@temporalio/client';
import { parse, stringify } from 'yaml';
import { parseCatalog } from '../src/config/catalog';
import { KubernetesClusterDriver, loadKubeConfig } from '../src/drivers/cluster/kubernetes';
import { closeAllPortForwards } from '../src/drivers/kube/portForward';
import { localTargetOf, stopLocalClusterIfRunning, type LocalCluster } from '../src/dev/localPostgres';
import type { KubernetesTarget } from '../src/config/schema';
import { kubeCluster, type KubeCluster } from './harness/kubeCluster';
import { applyManifests } from './harness/kube/manifests';
import { deployManifests, relocate } from './harness/kube/deployManifests';
import { serviceAccountToken, testNamespace, waitForReadyReplicas } from './harness/kubeObjects';
import { passwordProtectedPostgres, postgresStatefulSet } from './harness/kubePostgres';
import { writeKubeconfig } from './harness/kube/pki';
import type { PodBackend } from './harness/podBackends';
import { scratchDir, testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';

const workerRole = () =>
  deployManifests()
    .flatMap((m) => m.objects)
    .find((o) => o.kind === 'Role' && o.metadata?.name === 'pgops-worker') as KubernetesObject & {
    rules: V1PolicyRule[];
  };

describe('deploy/ on the real API server and its RBAC authorizer', function () {
  this.timeout(180_000);
  let cluster: KubeCluster;
  let db: string;
  let namespaces: Record<string, string>;
  let pg: LocalCluster;
  let backend: PodBackend;
  let catalogPath: string;
  let kubeconfig: string;
  const taskQueue = `pg-ops-deploy-${Math.random().toString(36).slice(2, 8)}`;

  before(async () => {
    cluster = await kubeCluster();
    db = await testNamespace(cluster, 'deploy-db');
    namespaces = { db, 'rook-ceph': await testNamespace(cluster, 'deploy-rook') };
    // The worker's ServiceAccount, Roles and bindings, and the sample Secret, applied for real.
    const rbac = deployManifests().find((m) => m.file === 'worker-rbac.yaml');
    const secret = deployManifests()
      .flatMap((m) => m.objects)
      .filter((o) => o.kind === 'Secret');
    await applyManifests(cluster.admin(), relocate([...(rbac?.objects ?? []), ...secret], namespaces));
    // The sample Secret's password is the database's password.
    const password = (secret[0] as KubernetesObject & { stringData: { password: string } }).stringData.password;
    pg = await passwordProtectedPostgres('deploy', password);
    backend = await postgresStatefulSet(cluster, db, 'pg-delayed', localTargetOf(pg));
    const token = await serviceAccountToken(cluster, db, 'pgops-worker');
    kubeconfig = writeKubeconfig(join(cluster.dir, `${db}-pgops-worker.kubeconfig`), cluster.server, cluster.caFile, [
      { name: 'pgops-worker', namespace: db, user: { token } },
    ]);
    catalogPath = await workerCatalog(kubeconfig);
  });
  after(async () => {
    await closeAllPortForwards();
    await backend?.close();
    if (pg) await stopLocalClusterIfRunning(pg);
  });

  it("every manifest passes the server's validation and admission (server-side apply, dry run)", async () => {
    // Namespaces of their own: the dry run must meet no object the other tests made.
    const empty = {
      db: await testNamespace(cluster, 'deploy-dry'),
      'rook-ceph': await testNamespace(cluster, 'deploy-dry-rook'),
    };
    const files = deployManifests();
    assert.ok(files.length >= 5, files.map((f) => f.file).join(', '));
    for (const { file, objects } of files) {
      await applyManifests(cluster.admin(), relocate(objects, empty), true).catch((err: unknown) => {
        throw new Error(`${file}: ${String((err as { body?: string }).body ?? err)}`);
      });
    }
    const configMap = files.flatMap((f) => f.objects).find((o) => o.kind === 'ConfigMap') as
      (KubernetesObject & { data: Record<string, string> }) | undefined;
    const catalog = parseCatalog(configMap?.data['pgops.yaml'] ?? '', 'deploy/worker-catalog.yaml');
    assert.deepEqual(Object.keys(catalog.clusters), ['orders', 'orders-delayed']);
  });

  it("the workflows run with the deploy/ ServiceAccount's token: every call they make is allowed", async () => {
    const { client } = await testEnv();
    await withWorker(taskQueue, catalogPath, async () => {
      const stopped = await client.workflow.execute('plannedStopWorkflow', {
        taskQueue,
        workflowId: `deploy-stop-${Date.now()}`,
        args: [{ cluster: 'orders-delayed' }],
      });
      assert.ok(stopped);
      const started = await client.workflow.execute('plannedStartWorkflow', {
        taskQueue,
        workflowId: `deploy-start-${Date.now()}`,
        args: [{ cluster: 'orders-delayed' }],
      });
      assert.equal((started as { readyReplicas: number }).readyReplicas, 1);
    });
    await workerDriver().restartServer();
  });

  /** The catalog of deploy/worker-catalog.yaml, moved to the test's namespace, with the ServiceAccount's kubeconfig. */
  async function workerCatalog(kubeconfigPath: string): Promise<string> {
    const configMap = deployManifests()
      .flatMap((m) => m.objects)
      .find((o) => o.kind === 'ConfigMap') as KubernetesObject & { data: Record<string, string> };
    const catalog = parse(configMap.data['pgops.yaml'] ?? '') as {
      clusters: Record<string, { target: Record<string, unknown>; walArchive?: string; exportDir?: string }>;
    };
    const dir = await scratchDir('deploy-catalog');
    for (const entry of Object.values(catalog.clusters)) {
      entry.target.namespace = db;
      entry.target.kubeconfig = kubeconfigPath;
      entry.target.readyTimeoutSeconds = 20;
      entry.target.stopTimeoutSeconds = 20;
      if (entry.walArchive) entry.walArchive = join(dir, 'archive');
      if (entry.exportDir) entry.exportDir = join(dir, 'exports');
    }
    const path = join(dir, 'pgops.yaml');
    writeFileSync(path, stringify(catalog));
    return path;
  }

  function workerDriver(): KubernetesClusterDriver {
    const target = parseCatalog(readFileSync(catalogPath, 'utf8'), catalogPath).clusters['orders-delayed']
      ?.target as KubernetesTarget;
    return new KubernetesClusterDriver(target, loadKubeConfig(target));
  }

  /** Runs what the worker does with this Role: stop and start workflows, then the PITR pod restart. */
  async function runAsWorker(): Promise<string | undefined> {
    const { client } = await testEnv();
    try {
      await withWorker(taskQueue, catalogPath, async () => {
        for (const type of ['plannedStopWorkflow', 'plannedStartWorkflow'])
          await client.workflow.execute(type, {
            taskQueue,
            workflowId: `deploy-${type}-${Date.now()}`,
            args: [{ cluster: 'orders-delayed' }],
            workflowExecutionTimeout: '40s',
          });
      });
      await workerDriver().restartServer();
      return undefined;
    } catch (err) {
      if (err instanceof WorkflowFailedError) {
        let cause: unknown = err.cause;
        while (cause instanceof Error && cause.cause) cause = cause.cause;
        return cause instanceof Error ? cause.message : String(cause);
      }
      return err instanceof Error ? err.message : String(err);
    }
  }

  it("removing any one verb of the worker's Role makes a named step fail, naming the missing rule", async () => {
    const role = workerRole();
    const rbac = cluster.admin().makeApiClient(RbacAuthorizationV1Api);
    const authz = cluster.admin().makeApiClient(AuthorizationV1Api);
    const user = `system:serviceaccount:${db}:pgops-worker`;
    // The backup and scratch Roles grant some of the same verbs (pods get/delete, claims get, any
    // pod's port-forward): without their bindings, each verb of the base Role is the only grant of
    // itself, as this test needs.
    for (const name of ['pgops-worker-backup', 'pgops-worker-scratch'])
      await rbac.deleteNamespacedRoleBinding({ name, namespace: db });
    await rbac.deleteClusterRoleBinding({ name: 'pgops-worker-volumes' });
    const canI = async (rule: V1PolicyRule, verb: string) =>
      (
        await authz.createSubjectAccessReview({
          body: {
            spec: {
              user,
              resourceAttributes: {
                namespace: db,
                verb,
                group: rule.apiGroups?.[0] ?? '',
                resource: (rule.resources?.[0] ?? '').split('/')[0],
                subresource: (rule.resources?.[0] ?? '').split('/')[1],
                name: rule.resourceNames?.[0],
              },
            },
          },
        })
      ).status?.allowed === true;
    const setRules = async (rules: V1PolicyRule[], waitFor: { rule: V1PolicyRule; verb: string; allowed: boolean }) => {
      await rbac.replaceNamespacedRole({
        name: 'pgops-worker',
        namespace: db,
        body: { ...role, metadata: { name: 'pgops-worker', namespace: db }, rules },
      });
      for (let i = 0; (await canI(waitFor.rule, waitFor.verb)) !== waitFor.allowed; i++) {
        if (i > 100) throw new Error('the authorizer did not see the Role change');
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const reset = async () => {
      const apps = cluster.admin().makeApiClient(AppsV1Api);
      const scale = await apps.readNamespacedStatefulSetScale({ name: 'pg-delayed', namespace: db });
      if ((scale.spec?.replicas ?? 0) !== 1)
        await apps.replaceNamespacedStatefulSetScale({
          name: 'pg-delayed',
          namespace: db,
          body: { ...scale, spec: { replicas: 1 } },
        });
      await waitForReadyReplicas(cluster, db, 'pg-delayed', 1);
    };

    let checked = 0;
    for (const [index, rule] of role.rules.entries()) {
      for (const verb of rule.verbs) {
        const weaker = role.rules.flatMap((r, i) =>
          i !== index ? [r] : r.verbs.length > 1 ? [{ ...r, verbs: r.verbs.filter((v) => v !== verb) }] : [],
        );
        await setRules(weaker, { rule, verb, allowed: false });
        const failure = await runAsWorker();
        await setRules(role.rules, { rule, verb, allowed: true });
        await reset();
        const what = `without "${verb}" on ${rule.resources?.join(',')}`;
        assert.ok(failure, `${what}, nothing failed: the rule is not needed`);
        // The step (workflows) or the driver call (the PITR pod restart), and the rule to add.
        assert.match(failure, /^(cluster "orders-delayed", step [a-z-]+: )?(missing permission|port-forward)/, what);
        assert.match(
          failure,
          new RegExp(`resources: \\["${rule.resources?.[0]}"\\], verbs: \\[[^\\]]*"${verb}"`),
          `${what}: ${failure}`,
        );
        checked++;
      }
    }
    assert.equal(checked, 10);
  });
});
