// Resolves how to reach a cluster's PostgreSQL, secrets included, on the worker only. Passwords
// come from the worker's environment or a Kubernetes Secret and never enter workflow history.
import type { ClusterEntry } from './schema';
import type { PgEndpoint } from '../drivers/postgres/session';
import { PermanentDriverError } from '../drivers/cluster/types';
import { loadKubeConfig } from '../drivers/cluster/kubernetes';
import { readSecretValue } from '../drivers/kube/secrets';

export async function resolvePgEndpoint(clusterName: string, entry: ClusterEntry, env: NodeJS.ProcessEnv = process.env): Promise<PgEndpoint> {
  const access = entry.postgres;
  const target = entry.target;
  const host = access?.host ?? (target.kind === 'local' ? '127.0.0.1' : undefined);
  const port = access?.port ?? (target.kind === 'local' ? target.port : 5432);
  if (!host) {
    throw new PermanentDriverError(`cluster "${clusterName}": the catalog gives no postgres.host; set postgres.host to the Service that reaches PostgreSQL`);
  }
  let password: string | undefined;
  if (access?.passwordEnv) {
    password = env[access.passwordEnv];
    if (password === undefined) {
      throw new PermanentDriverError(`cluster "${clusterName}": environment variable ${access.passwordEnv} (postgres.passwordEnv) is not set in the worker's environment`);
    }
  } else if (access?.passwordSecret) {
    if (target.kind !== 'kubernetes') {
      throw new PermanentDriverError(`cluster "${clusterName}": postgres.passwordSecret needs a kubernetes target to read the Secret from; use passwordEnv`);
    }
    password = await readSecretValue(loadKubeConfig(target), target.namespace, access.passwordSecret);
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
