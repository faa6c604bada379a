// @kubernetes/client-node adds about 80 MB to a worker's resident memory once loaded (it defines
// every API model of Kubernetes). The Kubernetes drivers are therefore loaded on first use: a
// worker whose catalog names only local clusters never loads them.
import type * as KubernetesDrivers from './kubernetesDrivers';

let loaded: typeof KubernetesDrivers | undefined;

export function kubernetesDrivers(): typeof KubernetesDrivers {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  loaded ??= require('./kubernetesDrivers') as typeof KubernetesDrivers;
  return loaded;
}
