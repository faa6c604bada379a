// Exports tables from a replica paused at a recovery target (COPY … TO STDOUT, CSV with header,
// plus the table's definition from pg_dump --schema-only), and puts back into the primary the
// rows it is missing, in one transaction. The anti-join on the primary key makes a repeated
// insert add nothing: safe to retry.
import { createReadStream, createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Client } from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { runCommand } from '../exec';
import { pauseForTests } from '../testPause';
import { withSession, type PgEndpoint } from './session';
import { clientEnv, connectionArgs } from './clientProgram';
import type { InsertResult, TableExport } from '../../contract/operations/pitrSteps';

const QUALIFIED_TABLE = /^(?:([A-Za-z_][A-Za-z0-9_$]{0,62})\.)?([A-Za-z_][A-Za-z0-9_$]{0,62})$/;

export interface TableName {
  schema: string;
  table: string;
}

export function parseTableName(text: string): TableName | undefined {
  const match = QUALIFIED_TABLE.exec(text);
  return match ? { schema: match[1] ?? 'public', table: match[2] as string } : undefined;
}

export function tableNameProblem(text: unknown): string | undefined {
  if (typeof text !== 'string' || !parseTableName(text))
    return `table ${JSON.stringify(text)} is not a plain name such as "orders" or "sales.orders"`;
  return undefined;
}

function sqlName(client: Client, name: TableName): string {
  return `${client.escapeIdentifier(name.schema)}.${client.escapeIdentifier(name.table)}`;
}

async function tableColumns(client: Client, name: TableName): Promise<string[] | undefined> {
  const exists = (
    await client.query<{ oid: string | null }>('SELECT to_regclass($1)::oid AS oid', [
      `${client.escapeIdentifier(name.schema)}.${client.escapeIdentifier(name.table)}`,
    ])
  ).rows[0]?.oid;
  if (!exists) return undefined;
  const rows = (
    await client.query<{ attname: string }>(
      "SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
      [exists],
    )
  ).rows;
  return rows.map((r) => r.attname);
}

export async function exportTables(
  replica: PgEndpoint,
  tables: string[],
  dir: string,
  opts: { binDir: string; asUser?: string },
): Promise<TableExport[]> {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const results: TableExport[] = [];
  for (const text of tables) {
    const name = parseTableName(text);
    if (!name) throw new Error(tableNameProblem(text));
    const base = `${name.schema}.${name.table}`;
    const file = join(dir, `${base}.csv`);
    const schemaFile = join(dir, `${base}.schema.sql`);
    const exported = await withSession(replica, async (client) => {
      // A table locked by the replayed-but-uncommitted bad transaction would block forever.
      await client.query("SET lock_timeout = '30s'");
      const columns = await tableColumns(client, name);
      if (!columns)
        throw new MissingTableError(
          `table ${base} does not exist on the replica at the recovery target: check the name (it existed before the incident?)`,
        );
      // Read-only repeatable-read snapshot: the count and the COPY see the same rows.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const rows = Number((await client.query(`SELECT count(*) AS n FROM ${sqlName(client, name)}`)).rows[0].n);
      const list = columns.map((c) => client.escapeIdentifier(c)).join(', ');
      await pipeline(
        client.query(
          copyTo(`COPY (SELECT ${list} FROM ${sqlName(client, name)}) TO STDOUT WITH (FORMAT csv, HEADER true)`),
        ),
        createWriteStream(file),
      );
      await client.query('COMMIT');
      return { rows, columns };
    });
    const dump = await runCommand(
      join(opts.binDir, 'pg_dump'),
      [
        '--schema-only',
        '--no-owner',
        '--no-privileges',
        ...connectionArgs(replica),
        '-d',
        replica.database,
        '-t',
        `${JSON.stringify(name.schema)}.${JSON.stringify(name.table)}`,
        '-f',
        schemaFile,
      ],
      { env: clientEnv(replica) },
    );
    if (dump.code !== 0) throw new Error(`pg_dump --schema-only of ${base} failed: ${dump.stderr.trim()}`);
    results.push({ table: base, file, schemaFile, rows: exported.rows, columns: exported.columns });
  }
  return results;
}

export class MissingTableError extends Error {
  override readonly name = 'MissingTableError';
}

/** Inserts the exported rows the primary lacks (by primary key), creating a dropped table first. */
export async function insertMissingRows(primary: PgEndpoint, exported: TableExport): Promise<InsertResult> {
  const name = parseTableName(exported.table) as TableName;
  return withSession(primary, async (client) => {
    await client.query('BEGIN');
    try {
      let createdTable = false;
      if (!(await tableColumns(client, name))) {
        // pg_dump's plain output may carry psql meta-commands (\restrict…): not SQL, drop them.
        const ddl = readFileSync(exported.schemaFile, 'utf8')
          .split('\n')
          .filter((line) => !line.startsWith('\\'))
          .join('\n');
        await client.query(ddl);
        await client.query("SELECT pg_catalog.set_config('search_path', 'public', true)");
        createdTable = true;
      }
      const key = (
        await client.query<{ attname: string }>(
          'SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)',
          [sqlName(client, name)],
        )
      ).rows.map((r) => r.attname);
      if (key.length === 0 && !createdTable) {
        throw new NoPrimaryKeyError(
          `table ${exported.table} has no primary key on the primary: missing rows cannot be told apart from present ones. The rows are exported in ${exported.file}; load them by hand.`,
        );
      }
      const columns = exported.columns.map((c) => client.escapeIdentifier(c)).join(', ');
      await client.query(`CREATE TEMP TABLE pgops_import (LIKE ${sqlName(client, name)}) ON COMMIT DROP`);
      await pipeline(
        createReadStream(exported.file),
        client.query(copyFrom(`COPY pgops_import (${columns}) FROM STDIN WITH (FORMAT csv, HEADER true)`)),
      );
      // A crash test kills the worker here: inside the transaction, the rows loaded, none inserted.
      await pauseForTests('insert-loaded');
      const missing =
        key.length === 0
          ? 'TRUE'
          : `NOT EXISTS (SELECT 1 FROM ${sqlName(client, name)} x WHERE ${key.map((k) => `x.${client.escapeIdentifier(k)} = r.${client.escapeIdentifier(k)}`).join(' AND ')})`;
      const inserted = await client.query(
        `INSERT INTO ${sqlName(client, name)} (${columns}) SELECT ${exported.columns.map((c) => `r.${client.escapeIdentifier(c)}`).join(', ')} FROM pgops_import r WHERE ${missing}`,
      );
      await client.query('COMMIT');
      return { table: exported.table, inserted: inserted.rowCount ?? 0, createdTable };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  });
}

export class NoPrimaryKeyError extends Error {
  override readonly name = 'NoPrimaryKeyError';
}
