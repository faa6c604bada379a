// Resolves how to reach a cluster's PostgreSQL, secrets included, on the worker only. Passwords
// come from the worker's environment or a Kubernetes Secret and never enter workflow history.
import type { KubeConfig } from '@kubernetes/client-node';
import type { ClusterEntry, KubernetesTarget } from '../../config/schema';
import type { PgEndpoint } from './session';
import { PermanentDriverError } from '../cluster/types';
import { kubernetesDrivers } from '../kubernetes';

export async function resolvePgEndpoint(
  clusterName: string,
  entry: ClusterEntry,
  env: NodeJS.ProcessEnv = process.env,
): Promise<PgEndpoint> {
  const access = entry.postgres;
  const target = entry.target;
  let kubeConfig: KubeConfig | undefined;
  const kubeConfigOf = (t: KubernetesTarget) => (kubeConfig ??= kubernetesDrivers().loadKubeConfig(t));
  let host = access?.host ?? (target.kind === 'local' ? '127.0.0.1' : undefined);
  let port = access?.port ?? (target.kind === 'local' ? target.port : 5432);
  if (access?.portForward) {
    if (target.kind !== 'kubernetes') {
      throw new PermanentDriverError(
        `cluster "${clusterName}": postgres.portForward needs a kubernetes target; a local target is reached at 127.0.0.1`,
      );
    }
    // The pod is reached through a local listener that opens a port-forward per connection.
    const pod = access.portForward.pod ?? `${target.statefulSet}-0`;
    await kubernetesDrivers().requirePortForwardAccess(kubeConfigOf(target), target.namespace, pod);
    host = '127.0.0.1';
    port = await kubernetesDrivers().localPortFor(kubeConfigOf(target), target.namespace, pod, access.portForward.port);
  }
  if (!host) {
    throw new PermanentDriverError(
      `cluster "${clusterName}": the catalog gives no postgres.host; set postgres.host to the Service that reaches PostgreSQL, or postgres.portForward to reach a pod through the API server`,
    );
  }
  let password: string | undefined;
  if (access?.passwordEnv) {
    password = env[access.passwordEnv];
    if (password === undefined) {
      throw new PermanentDriverError(
        `cluster "${clusterName}": environment variable ${access.passwordEnv} (postgres.passwordEnv) is not set in the worker's environment`,
      );
    }
  } else if (access?.passwordSecret) {
    if (target.kind !== 'kubernetes') {
      throw new PermanentDriverError(
        `cluster "${clusterName}": postgres.passwordSecret needs a kubernetes target to read the Secret from; use passwordEnv`,
      );
    }
    password = await kubernetesDrivers().readSecretValue(kubeConfigOf(target), target.namespace, access.passwordSecret);
  }
  return {
    host,
    port,
    user: access?.user ?? 'postgres',
    database: access?.database ?? 'postgres',
    password,
    connectTimeoutMs: access?.connectTimeoutMs ?? 5000,
  };
}
