// SQL sessions over `pg`. Connection parameters come from the worker's catalog (see
// postgres/endpoint.ts); nothing here knows about Temporal.
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

/**
 * PostgreSQL answered and refused the login: a wrong password, an unknown role or database, or
 * no pg_hba.conf entry. Retrying cannot fix it, and the server is up.
 */
export class PostgresLoginError extends Error {
  override readonly name = 'PostgresLoginError';
}

/** SQLSTATEs of a refused login: invalid_password, invalid_authorization_specification, invalid_catalog_name. */
const LOGIN_REFUSED = new Set(['28P01', '28000', '3D000']);

export function loginRefusal(endpoint: PgEndpoint, err: unknown): PostgresLoginError | undefined {
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== 'string' || !LOGIN_REFUSED.has(code)) return undefined;
  const fix =
    code === '3D000'
      ? `the database "${endpoint.database}" does not exist: fix postgres.database in the catalog`
      : `fix the password (postgres.passwordEnv / passwordSecret), the role "${endpoint.user}" or pg_hba.conf`;
  return new PostgresLoginError(
    `PostgreSQL at ${endpoint.host}:${endpoint.port} refused the login of "${endpoint.user}": ${(err as Error).message} (SQLSTATE ${code}); ${fix}. Retrying cannot fix this.`,
  );
}

/** A connected session; a failed connect leaves nothing open. */
export async function openSession(endpoint: PgEndpoint): Promise<Client> {
  const client = new Client(clientConfig(endpoint));
  client.on('error', () => undefined); // a server shutdown mid-session must not crash the worker
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}

/** Opens one session, runs `fn`, and always closes the session. */
export async function withSession<T>(endpoint: PgEndpoint, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = await openSession(endpoint);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * One session kept open across calls, for a watch that asks many times a second: opened on the
 * first call, and again after any error (the server restarted, the connection dropped).
 */
export class KeptSession {
  private client: Client | undefined;

  constructor(private readonly endpoint: PgEndpoint) {}

  async run<T>(fn: (client: Client) => Promise<T>): Promise<T> {
    this.client ??= await openSession(this.endpoint);
    try {
      return await fn(this.client);
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
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
        const refusal = loginRefusal(endpoint, err);
        if (refusal) throw refusal;
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

/**
 * True when a connection attempt is refused or fails (the database is down). A refused login is
 * an answer from a running server: not "down".
 */
export async function refusesConnections(endpoint: PgEndpoint): Promise<boolean> {
  try {
    await withSession({ ...endpoint, connectTimeoutMs: 2000 }, (c) => c.query('SELECT 1'));
    return false;
  } catch (err) {
    return loginRefusal(endpoint, err) === undefined;
  }
}
