// A real Kubernetes control plane for the tests, started once per test run and shared by the
// suites: etcd, kube-apiserver (RBAC + Node authorization, service-account tokens),
// kube-controller-manager, kube-scheduler, the snapshot-controller and kwok with one fake node,
// v1.33.13, all on
// 127.0.0.1 and free ports, each in its own process group, stopped by PID when the run ends.
// The binaries come from scripts/k8s/build.sh (cached under $HOME by version). Tests isolate
// themselves by namespace (kubeObjects.ts). See ../shared/design/real-kubernetes.md.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { freePort } from '../../src/dev/ports';
import { registerTeardown } from './testEnv';
import { pollUntil } from '../../src/drivers/waiting';
import { isAlive, startDaemon, stopDaemon, type Daemon } from './kube/daemons';
import { applyManifests, crdManifests } from './kube/manifests';
import { apiserverArgs, controllerArgs, etcdArgs } from './kube/components';
import { createPki, writeKubeconfig } from './kube/pki';
import { claimTestDir, keepTestDir } from './staleRuns';

export const KUBERNETES_VERSION = 'v1.33.13';
export const KWOK_NODE = 'kwok-node-0';

export interface KubeCluster {
  /** https://127.0.0.1:<port> */
  server: string;
  caFile: string;
  /** A static token of a system:masters user. */
  adminToken: string;
  /** Kubeconfig with contexts `admin` (current) and `wrong-token` (refused: 401). */
  adminKubeconfig: string;
  dir: string;
  /** A KubeConfig for the admin (a new object each time: callers may switch its context). */
  admin(): KubeConfig;
  /** Seconds from nothing to a usable cluster. */
  startSeconds: number;
  daemons: Daemon[];
}

export function binDir(): string {
  return process.env.PGOPS_K8S_BIN ?? join(homedir(), '.cache', 'pgops', 'k8s', KUBERNETES_VERSION, 'bin');
}

function binary(name: string): string {
  const path = join(binDir(), name);
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: build the test cluster's binaries with \`bash scripts/k8s/build.sh\``);
  }
  return path;
}

/** CRD manifests copied next to the binaries by scripts/k8s/build.sh. */
export function crdDir(): string {
  return resolve(binDir(), '..', 'crds');
}

/** GET on the API server (or etcd) without a client library: for health checks before anything else works. */
function httpsGet(url: string, ca: string | undefined, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolveGet) => {
    const req = https.get(
      url,
      { ca, headers: token ? { Authorization: `Bearer ${token}` } : {}, timeout: 2000 },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolveGet({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', (err) => resolveGet({ status: 0, body: err.message }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

async function waitHealthy(daemon: Daemon, what: string, check: () => Promise<string | undefined>): Promise<void> {
  await pollUntil(
    async () => {
      if (!isAlive(daemon)) throw new Error(`${daemon.name} exited while starting:\n${daemon.logTail()}`);
      const waiting = await check();
      return waiting === undefined ? { done: undefined } : { waiting };
    },
    { intervalMs: 100, timeoutMs: 60_000, what },
  ).catch((err: unknown) => {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${daemon.name} log:\n${daemon.logTail()}`);
  });
}

async function startCluster(): Promise<KubeCluster> {
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'pgops-kube-'));
  claimTestDir(dir);
  const logDir = join(dir, 'logs');
  mkdirSync(logDir);
  const daemons: Daemon[] = [];
  const cluster = { dir, daemons } as Partial<KubeCluster> & { dir: string; daemons: Daemon[] };
  current = cluster;
  mkdirSync(join(dir, 'pki'));
  const pki = await createPki(join(dir, 'pki'));

  // etcd: fsync on tmpfs costs nothing (Debian's etcd 3.4 has no --unsafe-no-fsync).
  const etcdData = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : dir, 'pgops-etcd-'));
  claimTestDir(etcdData);
  etcdDataDir = etcdData;
  const [etcdPort, etcdPeerPort, apiPort, kwokPort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const etcd = startDaemon('etcd', binary('etcd'), etcdArgs(etcdData, etcdPort, etcdPeerPort), logDir);
  daemons.push(etcd);

  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const adminToken = randomBytes(24).toString('hex');
  const tokenFile = join(pki.dir, 'tokens.csv');
  writeFileSync(tokenFile, `${adminToken},pgops-test-admin,pgops-test-admin,"system:masters"\n`, { mode: 0o600 });
  const server = `https://127.0.0.1:${apiPort}`;
  await waitHealthy(etcd, 'etcd to answer /health', async () => {
    const res = await new Promise<number>((r) => {
      const req = http.get(`${etcdUrl}/health`, (x) => {
        x.resume();
        r(x.statusCode ?? 0);
      });
      req.on('error', () => r(0));
    });
    return res === 200 ? undefined : `etcd /health: ${res || 'no answer'}`;
  });

  const apiserver = startDaemon(
    'kube-apiserver',
    binary('kube-apiserver'),
    apiserverArgs(pki, etcdUrl, apiPort, tokenFile),
    logDir,
  );
  daemons.push(apiserver);
  const ca = readFileSync(pki.ca.cert, 'utf8');
  await waitHealthy(apiserver, 'kube-apiserver /readyz', async () => {
    const res = await httpsGet(`${server}/readyz`, ca, adminToken);
    return res.status === 200 ? undefined : `/readyz ${res.status}: ${res.body.slice(0, 200)}`;
  });

  const adminKubeconfig = writeKubeconfig(join(dir, 'admin.kubeconfig'), server, pki.ca.cert, [
    { name: 'admin', user: { token: adminToken } },
    { name: 'wrong-token', user: { token: `not-${adminToken}` } },
  ]);
  const admin = () => {
    const kc = new KubeConfig();
    kc.loadFromFile(adminKubeconfig);
    return kc;
  };

  // kwok's PortForward / Exec objects are CRDs; they must exist before kwok starts watching them.
  // The VolumeSnapshot CRDs are the real ones (external-snapshotter's client module).
  await applyManifests(admin(), [...crdManifests(join(crdDir(), 'kwok')), ...crdManifests(join(crdDir(), 'snapshot'))]);
  await createKwokNode(admin());

  const kubeconfigOf = (name: string, user: { cert: string; key: string }) =>
    writeKubeconfig(join(dir, `${name}.kubeconfig`), server, pki.ca.cert, [{ name, user }]);
  for (const { name, args } of controllerArgs(pki, kubeconfigOf, kwokPort)) {
    // The snapshot-controller is optional: the cluster runs without it if build.sh could not build it.
    if (name === 'snapshot-controller' && !existsSync(join(binDir(), name))) continue;
    daemons.push(startDaemon(name, binary(name), args, logDir));
  }

  const core = admin().makeApiClient(CoreV1Api);
  await pollUntil(
    async () => {
      for (const d of daemons) if (!isAlive(d)) throw new Error(`${d.name} exited:\n${d.logTail()}`);
      const node = await core.readNode({ name: KWOK_NODE }).catch(() => undefined);
      const ready = node?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      if (!ready) return { waiting: `node ${KWOK_NODE} not Ready yet` };
      const sa = await core
        .readNamespacedServiceAccount({ name: 'default', namespace: 'default' })
        .catch(() => undefined);
      return sa
        ? { done: undefined }
        : { waiting: 'the controller-manager has not made the default ServiceAccount yet' };
    },
    { intervalMs: 100, timeoutMs: 60_000, what: 'the kwok node and the controller-manager' },
  );

  return Object.assign(cluster, {
    server,
    caFile: pki.ca.cert,
    adminToken,
    adminKubeconfig,
    admin,
    startSeconds: (Date.now() - started) / 1000,
  }) as KubeCluster;
}

async function createKwokNode(kc: KubeConfig): Promise<void> {
  const capacity = { cpu: '32', memory: '256Gi', pods: '110' };
  await kc.makeApiClient(CoreV1Api).createNode({
    body: {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: KWOK_NODE,
        annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
        labels: { 'kubernetes.io/hostname': KWOK_NODE, 'kubernetes.io/os': 'linux', type: 'kwok' },
      },
      status: { capacity, allocatable: capacity },
    },
  });
}

let clusterPromise: Promise<KubeCluster> | undefined;
let current: (Partial<KubeCluster> & { dir: string; daemons: Daemon[] }) | undefined;
let etcdDataDir: string | undefined;

/** The test run's cluster, started on first use. */
export function kubeCluster(): Promise<KubeCluster> {
  if (!clusterPromise) registerTeardown(stopKubeCluster);
  clusterPromise ??= startCluster().catch(async (err: unknown) => {
    await stopKubeCluster();
    throw err;
  });
  return clusterPromise;
}

/** Stops every daemon by PID (at the end of the run: registerTeardown), highest layer first. */
export async function stopKubeCluster(): Promise<void> {
  const cluster = current;
  current = undefined;
  if (!cluster) return;
  for (const daemon of [...cluster.daemons].reverse()) await stopDaemon(daemon);
  if (etcdDataDir) rmSync(etcdDataDir, { recursive: true, force: true });
  if (process.env.PGOPS_KEEP_TEST_DIRS) keepTestDir(cluster.dir);
  else rmSync(cluster.dir, { recursive: true, force: true });
}
