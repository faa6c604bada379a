// The real node's configuration files: containerd's (with its CNI network) and the kubelet's
// (kubeconfig, KubeletConfiguration, a certificate signed by the cluster's CA).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runCommand } from '../../../src/drivers/exec';
import type { KubeCluster } from '../kubeCluster';

export const REAL_NODE = 'pgops-node-0';
export const BRIDGE = 'pgops-br0';
export const NODE_IP = '10.203.0.1';
const POD_SUBNET = '10.203.0.0/24';
export const TAINT = { key: 'pgops.test/real-node', value: 'true', effect: 'NoSchedule' };

export async function run(file: string, args: string[]): Promise<string> {
  const result = await runCommand(file, args);
  if (result.code !== 0) throw new Error(`${file} ${args.join(' ')} failed: ${result.stderr || result.stdout}`);
  return result.stdout;
}

export function writeContainerdConfig(dir: string, socket: string): void {
  mkdirSync(join(dir, 'cni'));
  // restrict_oom_score_adj: without it every container fails ("can't get final child's PID from
  // pipe: EOF"), as this VM gives no CAP_SYS_RESOURCE. No ipMasq, no gateway: pods reach nothing.
  writeFileSync(
    join(dir, 'containerd.toml'),
    `version = 2
root = "${dir}/containerd-root"
state = "${dir}/containerd-state"
[grpc]
  address = "${socket}"
[ttrpc]
  address = "${dir}/containerd-ttrpc.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${dir}/cni"
`,
  );
  writeFileSync(
    join(dir, 'cni', '10-pgops.conflist'),
    JSON.stringify({
      cniVersion: '0.4.0',
      name: 'pgops',
      plugins: [
        {
          type: 'bridge',
          bridge: BRIDGE,
          isGateway: false,
          ipMasq: false,
          ipam: { type: 'host-local', ranges: [[{ subnet: POD_SUBNET }]], dataDir: join(dir, 'cni-ipam') },
        },
      ],
    }),
  );
}

export function writeKubeletFiles(cluster: KubeCluster, dir: string, socket: string, port: number): void {
  writeFileSync(
    join(dir, 'kubelet.kubeconfig'),
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server: cluster.server, 'certificate-authority': cluster.caFile } }],
      users: [
        {
          name: 'kubelet',
          user: { 'client-certificate': join(dir, 'kubelet.crt'), 'client-key': join(dir, 'kubelet.key') },
        },
      ],
      contexts: [{ name: 'kubelet', context: { cluster: 'test', user: 'kubelet' } }],
      'current-context': 'kubelet',
    }),
  );
  writeFileSync(
    join(dir, 'kubelet.yaml'),
    JSON.stringify({
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      address: NODE_IP,
      port,
      readOnlyPort: 0,
      healthzPort: 0,
      authentication: {
        anonymous: { enabled: false },
        webhook: { enabled: true },
        x509: { clientCAFile: cluster.caFile },
      },
      authorization: { mode: 'Webhook' },
      tlsCertFile: join(dir, 'kubelet.crt'),
      tlsPrivateKeyFile: join(dir, 'kubelet.key'),
      cgroupDriver: 'cgroupfs',
      cgroupsPerQOS: false,
      enforceNodeAllocatable: [],
      failSwapOn: false,
      containerRuntimeEndpoint: `unix://${socket}`,
      makeIPTablesUtilChains: false,
      serializeImagePulls: false,
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      // No eviction ("0%" turns a signal off): the kubelet counts the page cache's active part as used,
      // so after half an hour of test I/O it could see "memory pressure" on a machine with gigabytes
      // free, taint the node and leave every new pod unscheduled. Nothing here tests eviction.
      evictionHard: { 'memory.available': '0%', 'nodefs.available': '0%', 'imagefs.available': '0%' },
      resolvConf: '',
      registerWithTaints: [TAINT],
    }),
  );
}

/** Client (Node authorizer: system:node:<name>) and serving certificate, signed by the cluster's CA. */
export async function issueKubeletCert(cluster: KubeCluster, dir: string): Promise<void> {
  const caKey = join(dirname(cluster.caFile), 'ca.key');
  const key = join(dir, 'kubelet.key');
  const csr = join(dir, 'kubelet.csr');
  const ext = join(dir, 'kubelet.ext');
  writeFileSync(
    ext,
    `extendedKeyUsage=clientAuth,serverAuth\nkeyUsage=critical,digitalSignature\nsubjectAltName=IP:${NODE_IP},DNS:${REAL_NODE}\n`,
  );
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', [
    'req',
    '-new',
    ...ec,
    '-keyout',
    key,
    '-out',
    csr,
    '-subj',
    `/O=system:nodes/CN=system:node:${REAL_NODE}`,
  ]);
  const serial = `0x${Date.now().toString(16)}${Math.random().toString(16).slice(2, 10)}`;
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    cluster.caFile,
    '-CAkey',
    caKey,
    '-set_serial',
    serial,
    '-days',
    '2',
    '-extfile',
    ext,
    '-out',
    join(dir, 'kubelet.crt'),
  ]);
}
