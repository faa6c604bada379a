// How the worker runs PostgreSQL's client programs (pg_dump, pg_restore, pg_amcheck, psql) against a
// server: host, port and user as arguments; the password only in the child's environment, never in
// its arguments; a bounded connect timeout.
import type { PgEndpoint } from './session';

/** `-h host -p port -U user`. */
export function connectionArgs(server: PgEndpoint): string[] {
  return ['-h', server.host, '-p', String(server.port), '-U', server.user];
}

/** The child's environment: the worker's, with the password and a 10 s connect timeout. */
export function clientEnv(server: PgEndpoint, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, PGPASSWORD: server.password ?? '', PGCONNECT_TIMEOUT: '10', ...extra };
}
