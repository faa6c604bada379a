// One real node for the test cluster: a kubelet (v1.33.13, from build.sh) with its own containerd
// and runc (Debian's packages), running PostgreSQL 15 containers from the image
// scripts/k8s/node-image.sh builds without a registry. Everything is private to this run: the
// containerd socket, root and state, the kubelet's root and certificates, and a bridge
// (pgops-br0, 10.203.0.1/24) that the pods' network namespaces hang on; the kubelet's node IP is
// the bridge's address, never the machine's own interface. The node is tainted, so only pods that
// ask for it (realNodePod) land there. Opt-in: realNodeProblem() says what is missing.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, type V1PodSpec } from '@kubernetes/client-node';
import { runCommand } from '../../../src/drivers/exec';
import { freePort } from '../../../src/dev/ports';
import { pollUntil } from '../../../src/drivers/waiting';
import { isAlive, startDaemon, stopDaemon, type Daemon } from './daemons';
import type { KubeCluster } from '../kubeCluster';
import { registerTeardown } from '../testEnv';
import { claimTestDir } from '../staleRuns';
import {
  BRIDGE,
  issueKubeletCert,
  NODE_IP,
  REAL_NODE,
  run,
  TAINT,
  writeContainerdConfig,
  writeKubeletFiles,
} from './realNodeConfig';

export { REAL_NODE } from './realNodeConfig';

export const POSTGRES_IMAGE = 'docker.io/pgops/postgres:15';
/** Host settings the kubelet changes; put back when the node stops. */
const KUBELET_SYSCTLS = ['vm/overcommit_memory', 'kernel/panic', 'kernel/panic_on_oops'];
/** Host directories the kubelet writes whatever its --root-dir (pod logs, device plugins). */
const KUBELET_HOST_DIRS = ['/var/log/pods', '/var/log/containers', '/var/lib/kubelet'];
const IMAGE = join(homedir(), '.cache', 'pgops', 'k8s', 'node', 'postgres-image-2.tar');

/** The uid/gid of `postgres` inside the image (Debian's package picks them). */
export const POSTGRES_UID = 100;
export const POSTGRES_GID = 102;

/** Pod spec parts that put a pod on the real node. */
export const realNodePod: Partial<V1PodSpec> = {
  nodeSelector: { 'kubernetes.io/hostname': REAL_NODE },
  tolerations: [{ key: TAINT.key, operator: 'Equal', value: TAINT.value, effect: TAINT.effect }],
};

export function realNodeProblem(): string | undefined {
  if (process.getuid?.() !== 0) return 'the real node needs root';
  for (const tool of ['/usr/bin/containerd', '/usr/sbin/runc', '/usr/bin/ctr', '/usr/lib/cni/bridge', '/usr/sbin/ip'])
    if (!existsSync(tool)) return `${tool} is missing: run \`bash scripts/k8s/node-image.sh\``;
  if (!existsSync(IMAGE)) return `${IMAGE} is missing: run \`bash scripts/k8s/node-image.sh\``;
  return undefined;
}

export interface RealNode {
  /** The kubelet's --root-dir (its plugins_registry is where CSI node plugins register). */
  kubeletRoot: string;
  /** Imports a `docker save` archive into the node's containerd (images are never pulled here). */
  importImage(archive: string): Promise<void>;
  close(): Promise<void>;
}

let nodePromise: Promise<RealNode> | undefined;
let nodeDaemons: Daemon[] = [];

/**
 * The real node as the API and its own processes see it, for a timeout message: its conditions
 * that are not as they should be, its taints beyond the harness's own, and a daemon that exited
 * with the end of its log.
 */
export async function realNodeHealth(cluster: KubeCluster): Promise<string> {
  const node = await cluster
    .admin()
    .makeApiClient(CoreV1Api)
    .readNode({ name: REAL_NODE })
    .catch(() => undefined);
  if (!node) return `node ${REAL_NODE} is not registered`;
  const bad = (node.status?.conditions ?? []).filter((c) => (c.type === 'Ready') !== (c.status === 'True'));
  const taints = (node.spec?.taints ?? []).filter((t) => t.key !== TAINT.key);
  const parts = [
    bad.length ? bad.map((c) => `${c.type}=${c.status} (${c.reason}: ${c.message})`).join(', ') : 'Ready',
    ...(taints.length ? [`taints ${taints.map((t) => `${t.key}:${t.effect}`).join(', ')}`] : []),
    ...(node.spec?.unschedulable ? ['cordoned'] : []),
  ];
  for (const daemon of nodeDaemons)
    if (!isAlive(daemon))
      parts.push(`${daemon.name} exited (${daemon.child.exitCode ?? daemon.child.signalCode}): ${daemon.logTail(5)}`);
  return `node ${REAL_NODE}: ${parts.join('; ')}`;
}

/** The run's real node, started on first use and stopped when the run ends. */
export function realNode(cluster: KubeCluster, binDir: string): Promise<RealNode> {
  if (!nodePromise) {
    nodePromise = startRealNode(cluster, binDir);
    registerTeardown(async () => (await nodePromise)?.close());
  }
  return nodePromise;
}

async function startRealNode(cluster: KubeCluster, binDir: string): Promise<RealNode> {
  const dir = mkdtempSync('/tmp/pgops-node-');
  claimTestDir(dir);
  const daemons: Daemon[] = [];
  nodeDaemons = daemons;
  const sysctls = new Map(KUBELET_SYSCTLS.map((k) => [k, readFileSync(`/proc/sys/${k}`, 'utf8').trim()]));
  const hostDirs = new Map(KUBELET_HOST_DIRS.map((d) => [d, existsSync(d) ? new Set(readdirSync(d)) : undefined]));
  const socket = join(dir, 'containerd.sock');
  const node: RealNode = {
    kubeletRoot: join(dir, 'kubelet-root'),
    importImage: async (archive) => {
      await run('ctr', ['--address', socket, '-n', 'k8s.io', 'images', 'import', archive]);
    },
    close: async () => {
      await stopRealNode(cluster, dir, socket, daemons, sysctls);
      removeWhatTheKubeletAdded(hostDirs);
    },
  };
  try {
    await run('ip', ['link', 'del', BRIDGE]).catch(() => undefined); // left by a run that was killed
    await run('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
    await run('ip', ['addr', 'add', `${NODE_IP}/24`, 'dev', BRIDGE]);
    await run('ip', ['link', 'set', BRIDGE, 'up']);

    writeContainerdConfig(dir, socket);
    daemons.push(startDaemon('containerd', '/usr/bin/containerd', ['--config', join(dir, 'containerd.toml')], dir));
    await pollUntil(async () => (existsSync(socket) ? { done: true } : { waiting: 'no socket yet' }), {
      intervalMs: 100,
      timeoutMs: 20_000,
      what: 'containerd to listen',
    });
    await run('ctr', ['--address', socket, '-n', 'k8s.io', 'images', 'import', IMAGE]);

    const port = await freePort();
    writeKubeletFiles(cluster, dir, socket, port);
    await issueKubeletCert(cluster, dir);
    daemons.push(
      startDaemon(
        'kubelet',
        join(binDir, 'kubelet'),
        [
          `--config=${join(dir, 'kubelet.yaml')}`,
          `--kubeconfig=${join(dir, 'kubelet.kubeconfig')}`,
          `--root-dir=${join(dir, 'kubelet-root')}`,
          `--cert-dir=${join(dir, 'kubelet-certs')}`,
          `--node-ip=${NODE_IP}`,
          `--hostname-override=${REAL_NODE}`,
          '--v=1',
        ],
        dir,
      ),
    );
    const core = cluster.admin().makeApiClient(CoreV1Api);
    await pollUntil(
      async () => {
        const n = await core.readNode({ name: REAL_NODE }).catch(() => undefined);
        return n?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')
          ? { done: true }
          : { waiting: 'not Ready' };
      },
      { intervalMs: 200, timeoutMs: 60_000, what: `node ${REAL_NODE} to be Ready` },
    );
    return node;
  } catch (err) {
    await node.close().catch(() => undefined);
    throw err;
  }
}

/** Pods off the node first (the kubelet stops their containers), then the daemons, mounts, bridge and sysctls. */
async function stopRealNode(
  cluster: KubeCluster,
  dir: string,
  socket: string,
  daemons: Daemon[],
  sysctls: Map<string, string>,
): Promise<void> {
  const core = cluster.admin().makeApiClient(CoreV1Api);
  const onNode = async () =>
    (await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${REAL_NODE}` }).catch(() => undefined))
      ?.items ?? [];
  for (const pod of await onNode())
    await core
      .deleteNamespacedPod({
        name: pod.metadata?.name ?? '',
        namespace: pod.metadata?.namespace ?? '',
        gracePeriodSeconds: 0,
      })
      .catch(() => undefined);
  await pollUntil(async () => ((await onNode()).length === 0 ? { done: true } : { waiting: 'pods left' }), {
    intervalMs: 200,
    timeoutMs: 30_000,
    what: 'the real node to be empty',
  }).catch(() => undefined);
  for (const daemon of [...daemons].reverse()) {
    if (daemon.name === 'containerd') await removeContainers(socket);
    await stopDaemon(daemon);
  }
  await killShims(socket);
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    .filter((path) => path.startsWith(dir))
    .reverse();
  for (const path of mounts) await runCommand('umount', ['-l', path]);
  await runCommand('ip', ['link', 'del', BRIDGE]);
  for (const [key, value] of sysctls) writeFileSync(`/proc/sys/${key}`, value);
  rmSync(dir, { recursive: true, force: true });
}

/** Host directories the kubelet created, or the entries it added to existing ones. */
function removeWhatTheKubeletAdded(before: Map<string, Set<string> | undefined>): void {
  for (const [dir, entries] of before) {
    if (!existsSync(dir)) continue;
    if (entries === undefined) rmSync(dir, { recursive: true, force: true });
    else
      for (const entry of readdirSync(dir))
        if (!entries.has(entry)) rmSync(join(dir, entry), { recursive: true, force: true });
  }
}

async function removeContainers(socket: string): Promise<void> {
  const ctr = (args: string[]) => runCommand('ctr', ['--address', socket, '-n', 'k8s.io', ...args]);
  const tasks = (await ctr(['tasks', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
  for (const id of tasks) await ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
  for (const id of tasks) await ctr(['tasks', 'delete', '-f', id]);
}

/** containerd-shim-runc-v2 processes started for this socket (they outlive containerd). */
async function killShims(socket: string): Promise<void> {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (cmdline.startsWith('/usr/bin/containerd-shim') && cmdline.includes(socket)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}
