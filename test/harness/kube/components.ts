// Command lines of the test cluster's daemons (see ../shared/design/real-kubernetes.md for why
// each flag is there). Everything listens on 127.0.0.1 only.
import { resolve } from 'node:path';
import type { ClientCert, ClusterPki } from './pki';

export function etcdArgs(dataDir: string, clientPort: number, peerPort: number): string[] {
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  return [
    '--name=pgops',
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=pgops=${peer}`,
    '--logger=zap',
    '--log-level=warn',
  ];
}

export function apiserverArgs(pki: ClusterPki, etcdUrl: string, port: number, tokenFile: string): string[] {
  return [
    `--etcd-servers=${etcdUrl}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${port}`,
    `--tls-cert-file=${pki.apiserver.cert}`,
    `--tls-private-key-file=${pki.apiserver.key}`,
    `--client-ca-file=${pki.ca.cert}`,
    `--token-auth-file=${tokenFile}`,
    '--authorization-mode=RBAC,Node',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${pki.serviceAccountPub}`,
    `--service-account-signing-key-file=${pki.serviceAccountKey}`,
    '--service-cluster-ip-range=10.96.0.0/12',
    // The default reconciler complains every 10 s that 127.0.0.1 is a loopback address.
    '--endpoint-reconciler-type=none',
    `--kubelet-client-certificate=${pki.apiserverKubeletClient.cert}`,
    `--kubelet-client-key=${pki.apiserverKubeletClient.key}`,
    `--kubelet-certificate-authority=${pki.ca.cert}`,
    '--kubelet-preferred-address-types=InternalIP',
    '--allow-privileged=true',
    '--profiling=false',
    '--v=1',
  ];
}

/** kube-controller-manager, kube-scheduler, kwok and the snapshot-controller, in start order. */
export function controllerArgs(
  pki: ClusterPki,
  kubeconfigOf: (name: string, user: ClientCert) => string,
  kwokPort: number,
): { name: string; args: string[] }[] {
  return [
    {
      name: 'kube-controller-manager',
      args: [
        `--kubeconfig=${kubeconfigOf('controller-manager', pki.controllerManager)}`,
        '--bind-address=127.0.0.1',
        '--secure-port=0',
        '--leader-elect=false',
        '--use-service-account-credentials',
        `--service-account-private-key-file=${pki.serviceAccountKey}`,
        `--root-ca-file=${pki.ca.cert}`,
        '--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller',
        // The default 15 s makes every new claim wait.
        '--pvclaimbinder-sync-period=1s',
        '--concurrent-statefulset-syncs=5',
        '--v=1',
      ],
    },
    {
      name: 'kube-scheduler',
      args: [
        `--kubeconfig=${kubeconfigOf('scheduler', pki.scheduler)}`,
        '--bind-address=127.0.0.1',
        '--secure-port=0',
        '--leader-elect=false',
        // A pod found unschedulable is tried again on the events that could change that; if one is
        // missed, after this long instead of the default 5 min (longer than a test waits for a pod).
        '--pod-max-in-unschedulable-pods-duration=30s',
        '--v=1',
      ],
    },
    {
      name: 'kwok',
      args: [
        `--kubeconfig=${kubeconfigOf('kwok', pki.kwok)}`,
        `--config=${resolve(__dirname, 'kwok.yaml')}`,
        '--manage-all-nodes=false',
        '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
        '--node-ip=127.0.0.1',
        `--node-port=${kwokPort}`,
        `--server-address=127.0.0.1:${kwokPort}`,
        `--tls-cert-file=${pki.kwokServing.cert}`,
        `--tls-private-key-file=${pki.kwokServing.key}`,
        // Pod IPs are only written into status; loopback ones make sure nothing could ever leave the machine.
        '--cidr=127.64.0.1/16',
        '--node-lease-duration-seconds=40',
        '--enable-crds=PortForward,ClusterPortForward,Exec,ClusterExec',
      ],
    },
    {
      name: 'snapshot-controller',
      args: [
        `--kubeconfig=${kubeconfigOf('snapshot-controller', pki.snapshotController)}`,
        '--leader-election=false',
        '--v=2',
      ],
    },
  ];
}
