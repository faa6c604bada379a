// Where Temporal is and how to log in, read the way Temporal's own tools read it
// (@temporalio/envconfig): the profile (TEMPORAL_PROFILE, else "default") of the standard config file
// (TEMPORAL_CONFIG_FILE, else ~/.config/temporalio/temporal.toml), with the environment over it
// (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS, TEMPORAL_TLS_CLIENT_CERT_PATH,
// TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME,
// TEMPORAL_GRPC_META_*), and explicit choices (CLI flags) over both. So one worker runs against the dev
// server, a self-hosted cluster with mTLS, or Temporal Cloud (API key) with no change of code.
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { ConnectionOptions } from '@temporalio/client';

export const DEFAULT_TEMPORAL_ADDRESS = '127.0.0.1:7233';
export const DEFAULT_TEMPORAL_NAMESPACE = 'default';

export interface TemporalConnectionChoice {
  /** A profile of the config file; default TEMPORAL_PROFILE, else "default". */
  profile?: string;
  /** Overrides the profile and TEMPORAL_ADDRESS. */
  address?: string;
  /** Overrides the profile and TEMPORAL_NAMESPACE. */
  namespace?: string;
  /** The environment to read instead of process.env (tests). */
  env?: Record<string, string | undefined>;
}

/** Options that both `Connection.connect` (client) and `NativeConnection.connect` (worker) take. */
export type TemporalConnectionOptions = Pick<ConnectionOptions, 'tls' | 'metadata'> & {
  address: string;
  apiKey?: string;
};

export interface TemporalConnectionSettings {
  connectionOptions: TemporalConnectionOptions;
  namespace: string;
}

export function resolveTemporalConnection(choice: TemporalConnectionChoice = {}): TemporalConnectionSettings {
  const env = choice.env
    ? Object.fromEntries(Object.entries(choice.env).filter((e): e is [string, string] => e[1] !== undefined))
    : undefined;
  const { connectionOptions, namespace } = loadClientConnectConfig({ profile: choice.profile, overrideEnvVars: env });
  const { apiKey, tls, metadata } = connectionOptions;
  return {
    connectionOptions: {
      address: choice.address ?? connectionOptions.address ?? DEFAULT_TEMPORAL_ADDRESS,
      ...(apiKey !== undefined && { apiKey }),
      ...(tls !== undefined && { tls }),
      ...(metadata !== undefined && { metadata }),
    },
    namespace: choice.namespace ?? namespace ?? DEFAULT_TEMPORAL_NAMESPACE,
  };
}

/** For logs: where and how, never the key or certificates themselves. */
export function describeTemporalConnection(settings: TemporalConnectionSettings): Record<string, string | boolean> {
  const { address, tls, apiKey } = settings.connectionOptions;
  const mutual = typeof tls === 'object' && tls !== null && Boolean(tls.clientCertPair);
  return {
    address,
    namespace: settings.namespace,
    tls: tls === undefined || tls === false ? 'off' : mutual ? 'mTLS' : 'on',
    apiKey: apiKey !== undefined,
  };
}
