// Everything that talks to a Kubernetes API server, in one module that src/drivers/kubernetes.ts
// loads on first use (see there why).
export { KubernetesClusterDriver, loadKubeConfig } from './cluster/kubernetes';
export { CsiSnapshotDriver } from './storage/csi';
export { RbdToolboxSnapshotDriver } from './storage/rbdToolbox';
export { readSecretValue } from './kube/secrets';
export { localPortFor, requirePortForwardAccess } from './kube/portForward';
export { KubernetesScratchSpace } from './scratch/kubernetesScratchSpace';
