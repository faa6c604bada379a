// postgres.portForward: PostgreSQL reached through the API server's pods/portforward (WebSocket,
// client-node's PortForward) instead of a host/port. The API server stand-in relays the pod's
// port to a real local PostgreSQL (the pod's "container", started and stopped by its pod hooks),
// whose password comes from a Kubernetes Secret.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { scratchDir } from './harness/testEnv';
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
import { parseCatalog, CatalogError } from '../src/config/catalog';
import { resolvePgEndpoint } from '../src/config/credentials';
import type { ClusterEntry, KubernetesTarget } from '../src/config/schema';
import { loadKubeConfig } from '../src/drivers/cluster/kubernetes';
import { closeAllPortForwards } from '../src/drivers/kube/portForward';
import { withSession, type PgEndpoint } from '../src/drivers/postgres/session';

const PORTFORWARD_PATH = '/api/v1/namespaces/db/pods/pg-0/portforward';

describe('postgres.portForward: PostgreSQL through a port-forward to a pod (API server stand-in, real PostgreSQL as the pod)', () => {
  let api: KubeApiStandIn;
  let pg: LocalCluster;
  let kubeconfig: string;
  let releaseSlowPod = () => {};
  const password = 'pf-s3cret';

  /** A catalog entry for StatefulSet db/pg with the given postgres section (parsed, so defaults apply). */
  function entry(postgres: Record<string, unknown>, target: Record<string, unknown> = {}): ClusterEntry {
    const text = stringify({
      clusters: {
        orders: {
          target: { kind: 'kubernetes', namespace: 'db', statefulSet: 'pg', replicas: 1, kubeconfig, ...target },
          postgres,
        },
      },
    });
    const cluster = parseCatalog(text, '/test/pgops.yaml').clusters.orders;
    assert.ok(cluster);
    return cluster;
  }
  const forwarded = (extra: Record<string, unknown> = {}) =>
    entry({
      user: 'postgres',
      passwordSecret: { name: 'pg-su', key: 'password' },
      connectTimeoutMs: 3000,
      portForward: {},
      ...extra,
    });
  const serverPort = (endpoint: PgEndpoint) =>
    withSession(
      endpoint,
      async (c) => (await c.query<{ port: string }>("SELECT current_setting('port') AS port")).rows[0]?.port,
    );

  before(async () => {
    const dir = await scratchDir('k8s-pf');
    pg = await initLocalCluster({ dir, port: await freePort() });
    await startLocalCluster(pg);
    await withSession(endpointOf(pg), (c) => c.query(`ALTER USER postgres PASSWORD '${password}'`));
    // From now on TCP connections need the password, so the Secret really matters.
    const hba = join(pg.pgdata, 'pg_hba.conf');
    writeFileSync(hba, readFileSync(hba, 'utf8').replace(/^(host\s+all\s+all\s+\S+\s+)trust/gm, '$1scram-sha-256'));
    await stopLocalClusterIfRunning(pg, 'fast');

    const slowPodStarts = new Promise<void>((resolve) => (releaseSlowPod = resolve));
    api = await startKubeApiStandIn({
      readyDelayMs: 50,
      terminateDelayMs: 50,
      hooks: {
        // Pods of StatefulSet "slow" stay Pending until the test lets them start.
        onPodStart: async (pod) => (pod.startsWith('slow-') ? slowPodStarts : startLocalCluster(pg)),
        onPodStop: async (pod) => (pod.startsWith('slow-') ? undefined : pgCtl(pg, ['stop', '-m', 'fast', '-w'])),
      },
      // Port 5432 of every pod is the local PostgreSQL; nothing listens on any other port.
      podPorts: (_pod, port) => (port === 5432 ? { host: '127.0.0.1', port: pg.port } : undefined),
    });
    await api.addStatefulSet({ namespace: 'db', name: 'pg', replicas: 1, labels: { app: 'pg' } });
    api.addSecret('db', 'pg-su', { password });
    kubeconfig = join(dir, 'kubeconfig');
    await api.writeKubeconfig(kubeconfig);
  });

  after(async () => {
    releaseSlowPod();
    await closeAllPortForwards();
    await api?.close();
    if (pg) await stopLocalClusterIfRunning(pg);
  });

  it('resolves to a loopback port that reaches the pod; concurrent sessions each get their own stream', async () => {
    const endpoint = await resolvePgEndpoint('orders', forwarded());
    assert.equal(endpoint.host, '127.0.0.1');
    assert.notEqual(endpoint.port, pg.port);
    assert.equal(endpoint.password, password);
    assert.equal(
      (await resolvePgEndpoint('orders', forwarded())).port,
      endpoint.port,
      'one listener per pod and port, reused',
    );

    const before = api.requests.length;
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

    const forwards = api.requests.slice(before).filter((r) => r.path === PORTFORWARD_PATH);
    assert.equal(forwards.length, 6);
    // client-node 1.x offers v5 … v1 of the channel protocol; port-forward speaks v4.
    for (const r of forwards)
      assert.deepEqual([r.method, r.query, r.status, r.protocol], ['GET', '?ports=5432', 101, 'v4.channel.k8s.io']);
    // A session that ends closes its stream (the client's FIN ends the WebSocket).
    for (let waited = 0; api.openPortForwards() > 0 && waited < 2000; waited += 20)
      await new Promise((r) => setTimeout(r, 20));
    assert.equal(api.openPortForwards(), 0);
  });

  it('reaches the pod again after it was deleted and recreated (a new stream per connection)', async () => {
    const endpoint = await resolvePgEndpoint('orders', forwarded());
    const oldUid = api.pods('db').find((p) => p.metadata.name === 'pg-0')?.metadata.uid;
    await loadKubeConfig(forwarded().target as KubernetesTarget)
      .makeApiClient(CoreV1Api)
      .deleteNamespacedPod({ namespace: 'db', name: 'pg-0' });
    for (let ready = false; !ready; await new Promise((r) => setTimeout(r, 50))) {
      const pod = api.pods('db').find((p) => p.metadata.name === 'pg-0');
      ready =
        pod !== undefined &&
        pod.metadata.uid !== oldUid &&
        pod.status.conditions.some((c) => c.type === 'Ready' && c.status === 'True');
    }
    assert.equal(await serverPort(endpoint), String(pg.port));
  });

  it('an unknown pod: the connect fails at once, saying the pod is not found', async () => {
    const endpoint = await resolvePgEndpoint('orders', forwarded({ portForward: { pod: 'pg-7' } }));
    const started = Date.now();
    await assert.rejects(
      serverPort(endpoint),
      /port-forward to pod db\/pg-7 port 5432: pod db\/pg-7 not found \(404\)/,
    );
    assert.ok(Date.now() - started < 3000, 'answered before connectTimeoutMs, not by the timeout');
    assert.equal(api.requests.find((r) => r.path === '/api/v1/namespaces/db/pods/pg-7/portforward')?.status, 404);
  });

  it('a pod not running yet, or a port nothing listens on: the error channel text reaches the client', async () => {
    const slow = api.addStatefulSet({ namespace: 'db', name: 'slow', replicas: 1, labels: { app: 'slow' } });
    while (!api.pods('db').some((p) => p.metadata.name === 'slow-0')) await new Promise((r) => setTimeout(r, 10));
    const pending = await resolvePgEndpoint('orders', forwarded({ portForward: { pod: 'slow-0' } }));
    await assert.rejects(
      serverPort(pending),
      /port-forward to pod db\/slow-0 port 5432 failed: error forwarding port 5432 to pod slow-0_db, uid [-0-9a-f]+: the pod's containers are not running \(phase Pending\)/,
    );
    releaseSlowPod();
    await slow;

    const noListener = await resolvePgEndpoint('orders', forwarded({ portForward: { port: 6543 } }));
    await assert.rejects(
      serverPort(noListener),
      /port-forward to pod db\/pg-0 port 6543 failed: .*failed to connect to localhost:6543 inside the pod: connect: connection refused/,
    );
    assert.equal(
      await serverPort(await resolvePgEndpoint('orders', forwarded())),
      String(pg.port),
      'the other forwards still work',
    );
  });

  it('wrong credentials and a missing RBAC permission are named', async () => {
    const stranger = entry(
      { passwordEnv: 'PGOPS_PF_PW', connectTimeoutMs: 3000, portForward: {} },
      { context: 'stand-in-wrong-token' },
    );
    const strangerEndpoint = await resolvePgEndpoint('orders', stranger, { PGOPS_PF_PW: password });
    await assert.rejects(serverPort(strangerEndpoint), /refused the credentials \(401 Unauthorized\)/);

    api.forbid('create', 'pods/portforward'); // last test: the stand-in keeps refusing from now on
    const endpoint = await resolvePgEndpoint('orders', forwarded());
    await assert.rejects(
      serverPort(endpoint),
      /missing permission \(403 Forbidden\): grant a Role rule \{ apiGroups: \[""\], resources: \["pods\/portforward"\], verbs: \["create", "get"\] \} in namespace db/,
    );
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
