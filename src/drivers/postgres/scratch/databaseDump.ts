// Whole databases out of a scratch instance (pg_dump -Fc) and back into the running primary under a
// new name (CREATE DATABASE, then pg_restore): the way back after DROP DATABASE. The dump is read
// from the scratch copy only; the primary gets a database that did not exist, never a change to one
// that does.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../../exec';
import { withSession, type PgEndpoint } from '../session';
import { clientEnv, connectionArgs } from '../clientProgram';
import type { DatabaseDump } from '../../../contract/operations/scratchRestores';

const DATABASE = /^[A-Za-z_][A-Za-z0-9_-]{0,62}$/;

export function databaseNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || !DATABASE.test(name))
    return `database ${JSON.stringify(name)} is not a plain name (letters, digits, _ and -, at most 63)`;
  return undefined;
}

/** The databases the server has (that allow connections). */
export async function listDatabases(server: PgEndpoint): Promise<string[]> {
  return withSession(server, async (client) =>
    (await client.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1')).rows.map(
      (r) => r.datname,
    ),
  );
}

export async function dumpDatabase(
  server: PgEndpoint,
  database: string,
  dir: string,
  opts: { binDir: string; signal?: AbortSignal },
): Promise<DatabaseDump> {
  const file = join(dir, `${database}.dump`);
  const result = await runCommand(
    join(opts.binDir, 'pg_dump'),
    ['-Fc', ...connectionArgs(server), '-d', database, '-f', file],
    { env: clientEnv(server), signal: opts.signal, timeoutMs: 12 * 3600_000 },
  );
  if (result.code !== 0) throw new Error(`pg_dump -Fc of database ${database} failed: ${result.stderr.trim()}`);
  return { database, file, bytes: statSync(file).size };
}

export class DatabaseExistsError extends Error {
  override readonly name = 'DatabaseExistsError';
}

/**
 * Creates `name` on the primary from template0 and restores the dump into it. Safe to retry: the
 * database's comment says "pgops restoring: <marker>" until the restore is whole, then "pgops
 * restored: <marker>". A retry finds a whole one done, drops and redoes a half-made one, and refuses
 * a database of that name that this restore did not make (untouched). Returns false when it was done.
 */
export async function restoreDatabaseAs(
  primary: PgEndpoint,
  dump: DatabaseDump,
  name: string,
  opts: { binDir: string; signal?: AbortSignal; marker: string },
): Promise<boolean> {
  const restoring = `pgops restoring: ${opts.marker}`;
  const restored = `pgops restored: ${opts.marker}`;
  const done = await withSession(primary, async (client) => {
    const found = (
      await client.query<{ comment: string | null }>(
        'SELECT shobj_description(oid, $2) AS comment FROM pg_database WHERE datname = $1',
        [name, 'pg_database'],
      )
    ).rows[0];
    if (found?.comment === restored) return true;
    if (found && found.comment !== restoring)
      throw new DatabaseExistsError(
        `database "${name}" already exists on the primary: choose another name for restoreAs (nothing was changed)`,
      );
    const ident = client.escapeIdentifier(name);
    if (found) await client.query(`DROP DATABASE ${ident} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${ident} TEMPLATE template0`);
    await client.query(`COMMENT ON DATABASE ${ident} IS ${client.escapeLiteral(restoring)}`);
    return false;
  });
  if (done) return false;
  const result = await runCommand(
    join(opts.binDir, 'pg_restore'),
    ['--no-owner', '--exit-on-error', ...connectionArgs(primary), '-d', name, dump.file],
    { env: clientEnv(primary), signal: opts.signal, timeoutMs: 12 * 3600_000 },
  );
  if (result.code !== 0) throw new Error(`pg_restore into database ${name} failed: ${result.stderr.trim()}`);
  await withSession(primary, (client) =>
    client.query(`COMMENT ON DATABASE ${client.escapeIdentifier(name)} IS ${client.escapeLiteral(restored)}`),
  );
  return true;
}
