// SQL sessions over `pg`. Connection parameters come from the worker's catalog (see
// config/credentials.ts); nothing here knows about Temporal.
import { Client, type ClientConfig } from 'pg';
import { pollUntil } from '../waiting';

export interface PgEndpoint {
  host: string;
  port: number;
  user: string;
  database: string;
  password?: string;
  connectTimeoutMs: number;
}

export function clientConfig(endpoint: PgEndpoint): ClientConfig {
  return {
    host: endpoint.host,
    port: endpoint.port,
    user: endpoint.user,
    database: endpoint.database,
    password: endpoint.password,
    connectionTimeoutMillis: endpoint.connectTimeoutMs,
    application_name: 'temporal-postgres-ops',
  };
}

/** Opens one session, runs `fn`, and always closes the session. */
export async function withSession<T>(endpoint: PgEndpoint, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client(clientConfig(endpoint));
  client.on('error', () => undefined); // a server shutdown mid-session must not crash the worker
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export interface SqlReadiness {
  serverVersion: string;
  inRecovery: boolean;
}

/** Waits until the server accepts a query (it may be replaying WAL before it does). */
export async function waitForSql(
  endpoint: PgEndpoint,
  opts: { timeoutMs: number; signal?: AbortSignal; onProgress?: (detail: string) => void },
): Promise<SqlReadiness> {
  return pollUntil<SqlReadiness>(
    async () => {
      try {
        const row = await withSession(
          endpoint,
          async (c) =>
            (
              await c.query<{ v: string; r: boolean }>(
                "SELECT current_setting('server_version') AS v, pg_is_in_recovery() AS r",
              )
            ).rows[0],
        );
        const done: SqlReadiness = { serverVersion: row?.v ?? '?', inRecovery: row?.r ?? false };
        return { done };
      } catch (err) {
        return {
          waiting: `PostgreSQL at ${endpoint.host}:${endpoint.port} not accepting queries yet: ${(err as Error).message}`,
        };
      }
    },
    {
      intervalMs: 250,
      timeoutMs: opts.timeoutMs,
      signal: opts.signal,
      onProgress: opts.onProgress,
      what: `PostgreSQL at ${endpoint.host}:${endpoint.port} to accept a query`,
    },
  );
}

/** True when a connection attempt is refused or fails (the database is down). */
export async function refusesConnections(endpoint: PgEndpoint): Promise<boolean> {
  try {
    await withSession({ ...endpoint, connectTimeoutMs: 2000 }, (c) => c.query('SELECT 1'));
    return false;
  } catch {
    return true;
  }
}
