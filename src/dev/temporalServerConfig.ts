// The configuration of a self-hosted Temporal cluster as production runs it: PostgreSQL persistence and
// SQL visibility, one process per service (frontend, history, matching, worker), several history shards.
// The same file is given to every service; the database password is read from the environment
// (TEMPORAL_DB_PASSWORD), never written into it. See docs/temporal-cluster.md.
import { stringify as toYaml } from 'yaml';

export const TEMPORAL_SERVICES = ['history', 'matching', 'frontend', 'worker'] as const;
export type TemporalService = (typeof TEMPORAL_SERVICES)[number];

export interface TemporalClusterPorts {
  /** gRPC port of each service; the frontend's is the one clients and workers dial. */
  grpc: Record<TemporalService, number>;
  /** Ringpop membership port of each service: at most 32767 (a SMALLINT column in the schema). */
  membership: Record<TemporalService, number>;
  frontendHttp: number;
}

export interface TemporalServerConfigInput {
  ports: TemporalClusterPorts;
  database: { host: string; port: number; user: string };
  numHistoryShards: number;
  dynamicConfigFile: string;
}

/** The largest membership port the PostgreSQL schema can store (cluster_membership.rpc_port is SMALLINT). */
export const MAX_MEMBERSHIP_PORT = 32767;

function sqlStore(databaseName: string, input: TemporalServerConfigInput, maxConns: number) {
  return {
    sql: {
      pluginName: 'postgres12',
      databaseName,
      connectAddr: `${input.database.host}:${input.database.port}`,
      connectProtocol: 'tcp',
      user: input.database.user,
      password: '{{ env "TEMPORAL_DB_PASSWORD" }}',
      maxConns,
      maxIdleConns: maxConns,
      maxConnLifetime: '1h',
    },
  };
}

/** The server's YAML: rendered by the server as a Go template (the first line says so). */
export function temporalServerConfig(input: TemporalServerConfigInput): string {
  for (const [service, port] of Object.entries(input.ports.membership)) {
    if (port > MAX_MEMBERSHIP_PORT)
      throw new Error(
        `membership port ${port} of ${service} is above ${MAX_MEMBERSHIP_PORT}: the schema cannot store it`,
      );
  }
  const frontend = `127.0.0.1:${input.ports.grpc.frontend}`;
  const services = Object.fromEntries(
    (Object.keys(input.ports.grpc) as TemporalService[]).map((service) => [
      service,
      {
        rpc: {
          grpcPort: input.ports.grpc[service],
          membershipPort: input.ports.membership[service],
          ...(service === 'frontend' && { httpPort: input.ports.frontendHttp }),
          bindOnIP: '127.0.0.1',
        },
      },
    ]),
  );
  const config = {
    log: { stdout: true, level: 'warn' },
    persistence: {
      defaultStore: 'postgres-default',
      visibilityStore: 'postgres-visibility',
      numHistoryShards: input.numHistoryShards,
      // Each service opens up to maxConns per store: 4 × (20 + 10) stays under max_connections 200.
      datastores: {
        'postgres-default': sqlStore('temporal', input, 20),
        'postgres-visibility': sqlStore('temporal_visibility', input, 10),
      },
    },
    global: { membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' } },
    services,
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'active',
      currentClusterName: 'active',
      clusterInformation: {
        active: {
          enabled: true,
          initialFailoverVersion: 1,
          rpcName: 'frontend',
          rpcAddress: frontend,
          httpAddress: `127.0.0.1:${input.ports.frontendHttp}`,
        },
      },
    },
    dcRedirectionPolicy: { policy: 'noop' },
    publicClient: { hostPort: frontend },
    dynamicConfigClient: { filepath: input.dynamicConfigFile, pollInterval: '10s' },
  };
  return `# enable-template\n${toYaml(config)}`;
}

/**
 * Dynamic config: ids up to 255 characters (the operations' ids name the cluster and the task
 * queue), and search attributes read fresh from the database (the worker registers PgCluster and
 * PgOperation at start; a test cluster must not wait for a cache to notice).
 */
export function temporalDynamicConfig(): string {
  const one = (value: unknown) => [{ value, constraints: {} }];
  return toYaml({
    'limit.maxIDLength': one(255),
    'system.forceSearchAttributesCacheRefreshOnRead': one(true),
    'system.namespaceCacheRefreshInterval': one('1s'),
  });
}
