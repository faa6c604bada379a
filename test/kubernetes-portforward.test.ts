// postgres.portForward: PostgreSQL reached through the real API server's pods/portforward
// (WebSocket, client-node's PortForward) instead of a host/port. The pod runs on the kwok node,
// whose kubelet endpoint (kwok) forwards the pod's port 5432 to a real local PostgreSQL (a kwok
// PortForward object); the harness runs that PostgreSQL exactly while the pod runs. The password
// comes from a Kubernetes Secret.
import assert from 'node:assert/strict';
import { CoreV1Api } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { stopLocalClusterIfRunning, endpointOf, localTargetOf, type LocalCluster } from '../src/dev/localPostgres';
import { parseCatalog, CatalogError } from '../src/config/catalog';
import { resolvePgEndpoint } from '../src/drivers/postgres/endpoint';
import type { ClusterEntry } from '../src/config/schema';
import { closeAllPortForwards } from '../src/drivers/kube/portForward';
import { PermanentDriverError } from '../src/drivers/cluster/types';
import { withSession, type PgEndpoint } from '../src/drivers/postgres/session';
import { kubeCluster, type KubeCluster } from './harness/kubeCluster';
import { kubernetesTarget, serviceAccountKubeconfig, testNamespace } from './harness/kubeObjects';
import { passwordProtectedPostgres, postgresStatefulSet } from './harness/kubePostgres';
import type { PodBackend } from './harness/podBackends';

describe('postgres.portForward: PostgreSQL through a port-forward to a pod (real API server, kwok pod backed by a real PostgreSQL)', function () {
  this.timeout(60_000);
  let cluster: KubeCluster;
  let ns: string;
  let pg: LocalCluster;
  let backend: PodBackend;
  const password = 'pf-s3cret';

  /** A catalog entry for StatefulSet <ns>/pg with the given postgres section (parsed, so defaults apply). */
  function entry(postgres: Record<string, unknown>, target: Record<string, unknown> = {}): ClusterEntry {
    const text = stringify({
      clusters: {
        orders: {
          target: kubernetesTarget(cluster, ns, 'pg', target),
          postgres,
        },
      },
    });
    const parsed = parseCatalog(text, '/test/pgops.yaml').clusters.orders;
    assert.ok(parsed);
    return parsed;
  }
  const forwarded = (extra: Record<string, unknown> = {}) =>
    entry({
      user: 'postgres',
      passwordSecret: { name: 'pg-su', key: 'password' },
      connectTimeoutMs: 5000,
      portForward: {},
      ...extra,
    });
  const serverPort = (endpoint: PgEndpoint) =>
    withSession(
      endpoint,
      async (c) => (await c.query<{ port: string }>("SELECT current_setting('port') AS port")).rows[0]?.port,
    );
  const core = () => cluster.admin().makeApiClient(CoreV1Api);

  before(async function () {
    this.timeout(180_000);
    cluster = await kubeCluster();
    pg = await passwordProtectedPostgres('k8s-pf', password);
    ns = await testNamespace(cluster, 'pf');
    await core().createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: 'pg-su' }, stringData: { password } },
    });
    backend = await postgresStatefulSet(cluster, ns, 'pg', localTargetOf(pg));
  });

  after(async () => {
    await closeAllPortForwards();
    await backend?.close();
    if (pg) await stopLocalClusterIfRunning(pg);
  });

  it('resolves to a loopback port that reaches the pod; concurrent sessions each get their own stream, closed after', async () => {
    const endpoint = await resolvePgEndpoint('orders', forwarded());
    assert.equal(endpoint.host, '127.0.0.1');
    assert.notEqual(endpoint.port, pg.port);
    assert.equal(endpoint.password, password);
    assert.equal(
      (await resolvePgEndpoint('orders', forwarded())).port,
      endpoint.port,
      'one listener per pod and port, reused',
    );

    const sessions = await Promise.all(
      Array.from({ length: 6 }, () =>
        withSession(endpoint, async (c) => {
          const row = (
            await c.query<{ pid: number; port: string; big: string }>(
              "SELECT pg_backend_pid() AS pid, current_setting('port') AS port, repeat('x', 300000) AS big, pg_sleep(0.2)",
            )
          ).rows[0];
          return { pid: row?.pid, port: row?.port, bigLength: row?.big.length };
        }),
      ),
    );
    assert.equal(new Set(sessions.map((s) => s.pid)).size, 6);
    for (const s of sessions) assert.deepEqual([s.port, s.bigLength], [String(pg.port), 300000]);

    // A session that ends closes its stream: kwok then closes its connection to PostgreSQL.
    const direct = { ...endpointOf(pg), password };
    let others = -1;
    for (let waited = 0; others !== 0 && waited < 3000; waited += 50) {
      others = await withSession(direct, async (c) =>
        Number(
          (
            await c.query(
              "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            )
          ).rows[0].n,
        ),
      );
      if (others !== 0) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(others, 0, 'no forwarded session is left open');
  });

  it('reaches the pod again after it was deleted and recreated (a new stream per connection)', async () => {
    const endpoint = await resolvePgEndpoint('orders', forwarded());
    const oldUid = (await core().readNamespacedPod({ namespace: ns, name: 'pg-0' })).metadata?.uid;
    await core().deleteNamespacedPod({ namespace: ns, name: 'pg-0' });
    for (let ready = false; !ready; await new Promise((r) => setTimeout(r, 50))) {
      const pod = await core()
        .readNamespacedPod({ namespace: ns, name: 'pg-0' })
        .catch(() => undefined);
      ready =
        pod !== undefined &&
        pod.metadata?.uid !== oldUid &&
        (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
    }
    assert.equal(await serverPort(endpoint), String(pg.port));
  });

  it('an unknown pod: the connect fails at once, saying the pod is not found', async () => {
    const endpoint = await resolvePgEndpoint('orders', forwarded({ portForward: { pod: 'pg-7' } }));
    const started = Date.now();
    await assert.rejects(
      serverPort(endpoint),
      new RegExp(`port-forward to pod ${ns}/pg-7 port 5432: pod ${ns}/pg-7 not found \\(404\\)`),
    );
    assert.ok(Date.now() - started < 3000, 'answered before connectTimeoutMs, not by the timeout');
  });

  it("a pod no node runs yet, or a port nothing forwards: the server's reason reaches the client", async () => {
    await core().createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'unscheduled' },
        spec: { nodeSelector: { 'pgops.test/no-such-node': 'x' }, containers: [{ name: 'c', image: 'postgres:15' }] },
      },
    });
    const pending = await resolvePgEndpoint('orders', forwarded({ portForward: { pod: 'unscheduled' } }));
    await assert.rejects(
      serverPort(pending),
      new RegExp(
        `port-forward to pod ${ns}/unscheduled port 5432: the API server refused it \\(400 Bad Request\\): the pod may not be scheduled to a node yet`,
      ),
    );

    const noListener = await resolvePgEndpoint('orders', forwarded({ portForward: { port: 6543 } }));
    // The kubelet's error-channel text reaches the client (kwok's wording: a real kubelet says "failed to connect to localhost:6543 inside the pod").
    await assert.rejects(
      serverPort(noListener),
      new RegExp(
        `port-forward to pod ${ns}/pg-0 port 6543 failed: error forwarding port 6543 to pod .*forward not found for port 6543`,
      ),
    );
    assert.equal(
      await serverPort(await resolvePgEndpoint('orders', forwarded())),
      String(pg.port),
      'the other forwards still work',
    );
  });

  it('wrong credentials and a missing RBAC permission are named before any connection is tried', async () => {
    const stranger = entry(
      { passwordEnv: 'PGOPS_PF_PW', connectTimeoutMs: 5000, portForward: {} },
      { context: 'wrong-token' },
    );
    await assert.rejects(
      resolvePgEndpoint('orders', stranger, { PGOPS_PF_PW: password }),
      (err: Error) =>
        err instanceof PermanentDriverError && /refused the credentials \(401 Unauthorized\)/.test(err.message),
    );

    // May read the Secret and the pods, but not open a port-forward: the API server's own
    // answer (SelfSubjectAccessReview) says so, instead of connections that merely fail.
    const kubeconfig = await serviceAccountKubeconfig(cluster, ns, 'no-portforward', [
      { apiGroups: [''], resources: ['pods', 'secrets'], verbs: ['get', 'list'] },
    ]);
    const limited = entry(
      { user: 'postgres', passwordSecret: { name: 'pg-su', key: 'password' }, connectTimeoutMs: 5000, portForward: {} },
      { kubeconfig },
    );
    await assert.rejects(resolvePgEndpoint('orders', limited), (err: Error) => {
      assert.ok(err instanceof PermanentDriverError);
      assert.match(
        err.message,
        new RegExp(
          `port-forward to pod ${ns}/pg-0: missing permission: the worker may not "get" pods/portforward for pod pg-0; grant a Role rule \\{ apiGroups: \\[""\\], resources: \\["pods/portforward"\\], verbs: \\["get"\\] \\} in namespace ${ns}`,
        ),
      );
      return true;
    });
  });

  describe('catalog rules', () => {
    const problems = (
      postgres: Record<string, unknown>,
      target: Record<string, unknown> = { kind: 'kubernetes', namespace: 'db', statefulSet: 'pg', replicas: 1 },
    ) => {
      try {
        parseCatalog(stringify({ clusters: { orders: { target, postgres } } }), '/etc/pgops/pgops.yaml');
      } catch (err) {
        assert.ok(err instanceof CatalogError, String(err));
        return err.message;
      }
      throw new Error('expected the catalog to be refused');
    };

    it('defaults the pod port to 5432 and leaves the pod to <statefulSet>-0', () => {
      const access = parseCatalog(
        'clusters:\n  orders:\n    target: { kind: kubernetes, namespace: db, statefulSet: pg, replicas: 1 }\n    postgres: { portForward: {} }\n',
        '/x.yaml',
      ).clusters.orders?.postgres;
      assert.deepEqual(access?.portForward, { port: 5432 });
    });

    it('refuses portForward with host or port, on a local target, and a pod that is not a Kubernetes name', () => {
      assert.match(
        problems({ host: 'pg.db.svc', portForward: {} }),
        /cluster "orders", field postgres.portForward: give host\/port or portForward, not both/,
      );
      assert.match(
        problems({ port: 5433, portForward: {} }),
        /field postgres.portForward: give host\/port or portForward, not both/,
      );
      assert.match(
        problems({ portForward: {} }, { kind: 'local', pgdata: '/d', port: 5433 }),
        /field postgres.portForward: postgres.portForward needs a kubernetes target/,
      );
      assert.match(
        problems({ portForward: { pod: 'PG_0' } }),
        /field postgres.portForward.pod: portForward.pod must be a Kubernetes object name/,
      );
      assert.match(problems({ portForward: { pods: 'pg-0' } }), /postgres.portForward.*pods|Unrecognized key.*pods/s);
    });
  });
});
