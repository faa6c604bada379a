// The checks of a restore drill on a scratch instance: pg_amcheck over every database (heap and
// B-tree indexes; the amcheck extension installed where missing, on the throwaway copy only) while
// it runs, and pg_checksums --check on the stopped copy where data checksums are on.
import { join } from 'node:path';
import { runCommand } from '../../exec';
import { parseControlData } from '../controlData';
import type { PgEndpoint } from '../session';
import { clientEnv, connectionArgs } from '../clientProgram';
import type { DrillChecks } from '../../../contract/scratch';

/** Runs pg_amcheck against the scratch server: every database, heap and B-tree, with the extension installed where missing. */
export async function runAmcheck(
  server: PgEndpoint,
  binDir: string,
  signal?: AbortSignal,
): Promise<NonNullable<DrillChecks['amcheck']>> {
  const result = await runCommand(
    join(binDir, 'pg_amcheck'),
    [
      '--all',
      '--install-missing',
      '--heapallindexed',
      ...connectionArgs(server),
      '--maintenance-db',
      server.database,
      '-w',
    ],
    {
      env: clientEnv(server, { LC_ALL: 'C' }),
      signal,
      timeoutMs: 6 * 3600_000,
    },
  );
  const problems = amcheckProblems(`${result.stdout}\n${result.stderr}`);
  if (result.code !== 0 && problems.length === 0)
    problems.push(`pg_amcheck exited with ${result.code}: ${(result.stderr || result.stdout).trim() || 'no output'}`);
  const databases = await countDatabases(server, binDir, signal);
  return { ok: result.code === 0 && problems.length === 0, databases, problems };
}

/** pg_amcheck's findings: each "heap table …" / "btree index …" block as one line, at most 20. */
export function amcheckProblems(output: string): string[] {
  const blocks: string[] = [];
  for (const line of output.split('\n')) {
    if (line.trim() === '') continue;
    if (/^\s/.test(line) && blocks.length > 0) blocks[blocks.length - 1] += ` ${line.trim()}`;
    else blocks.push(line.trim());
  }
  return blocks.slice(0, 20);
}

async function countDatabases(server: PgEndpoint, binDir: string, signal?: AbortSignal): Promise<number> {
  const result = await runCommand(
    join(binDir, 'psql'),
    [
      '-X',
      '-A',
      '-t',
      ...connectionArgs(server),
      '-d',
      server.database,
      '-c',
      'SELECT count(*) FROM pg_database WHERE datallowconn',
    ],
    { env: clientEnv(server), signal, timeoutMs: 60_000 },
  );
  return result.code === 0 ? Number(result.stdout.trim()) : 0;
}

/** Whether pg_controldata's output says data checksums are on. */
export function checksumsEnabled(controlDataText: string): boolean {
  const match = /Data page checksum version:\s*(\d+)/.exec(controlDataText);
  return match !== null && match[1] !== '0';
}

/** pg_checksums --check's verdict from its exit code and output. */
export function checksumVerdict(code: number, output: string): NonNullable<DrillChecks['checksums']> {
  const bad = Number(/Bad checksums:\s*(\d+)/.exec(output)?.[1] ?? (code === 0 ? 0 : NaN));
  const problems = output
    .split('\n')
    .filter((l) => /checksum verification failed|error:/i.test(l))
    .map((l) => l.trim())
    .slice(0, 20);
  if (code !== 0 && problems.length === 0) problems.push(`pg_checksums exited with ${code}: ${output.trim()}`);
  return { ok: code === 0, enabled: true, badBlocks: Number.isNaN(bad) ? problems.length : bad, problems };
}

export { parseControlData };
