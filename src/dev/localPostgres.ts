// Creates throw-away local PostgreSQL clusters for the demo, the tests and the benchmarks: initdb
// on a free loopback port, its own socket directory, run as the `postgres` OS user when we are
// root (PostgreSQL refuses to run as root). Never touches the machine's own server on 5432.
import { appendFileSync, chmodSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../drivers/exec';
import { DEFAULT_PG_BIN_DIR } from '../config/binDir';
import type { LocalTarget } from '../config/schema';

export const PG_BIN_DIR = DEFAULT_PG_BIN_DIR;

export interface LocalCluster {
  dir: string;
  pgdata: string;
  port: number;
  socketDir: string;
  logFile: string;
  osUser: string;
  binDir: string;
}

export function pgOsUser(): string {
  return process.getuid?.() === 0 ? 'postgres' : (process.env.USER ?? 'postgres');
}

async function chownToOsUser(path: string, osUser: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const result = await runCommand('chown', ['-R', `${osUser}:`, path]);
  if (result.code !== 0) throw new Error(`chown ${path} failed: ${result.stderr}`);
}

/** Where a cluster made here lives: PGDATA (default <dir>/data), its socket directory and log. */
export function localClusterIn(dir: string, port: number, pgdata?: string): LocalCluster {
  return {
    dir,
    pgdata: pgdata ?? join(dir, 'data'),
    port,
    socketDir: join(dir, 'socket'),
    logFile: join(dir, 'data.server.log'),
    osUser: pgOsUser(),
    binDir: PG_BIN_DIR,
  };
}

/** initdb a new cluster in `dir/data` listening on 127.0.0.1:`port`. */
export async function initLocalCluster(opts: {
  dir: string;
  port: number;
  settings?: Record<string, string>;
  /** The data directory (default <dir>/data), e.g. on a volume mounted elsewhere. */
  pgdata?: string;
  /** A separate WAL directory (initdb --waldir): pg_wal becomes a link to it. */
  waldir?: string;
  /** initdb --data-checksums. */
  dataChecksums?: boolean;
}): Promise<LocalCluster> {
  const cluster = localClusterIn(opts.dir, opts.port, opts.pgdata);
  const { osUser } = cluster;
  mkdirSync(cluster.socketDir, { recursive: true });
  chmodSync(opts.dir, 0o755);
  await chownToOsUser(opts.dir, osUser);
  if (!existsSync(join(cluster.pgdata, 'PG_VERSION'))) {
    for (const dir of [cluster.pgdata, opts.waldir]) {
      if (!dir) continue;
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      await chownToOsUser(dir, osUser);
    }
    const result = await runCommand(
      join(PG_BIN_DIR, 'initdb'),
      [
        '-D',
        cluster.pgdata,
        ...(opts.waldir ? ['--waldir', opts.waldir] : []),
        ...(opts.dataChecksums ? ['--data-checksums'] : []),
        '-U',
        'postgres',
        '--auth=trust',
        '-E',
        'UTF8',
        '--locale=C.UTF-8',
        '--no-instructions',
      ],
      { asUser: osUser },
    );
    if (result.code !== 0) throw new Error(`initdb failed: ${result.stderr}`);
    const settings: Record<string, string> = {
      port: String(opts.port),
      listen_addresses: "'127.0.0.1'",
      unix_socket_directories: `'${cluster.socketDir}'`,
      max_connections: '40',
      shared_buffers: '64MB',
      ...opts.settings,
    };
    appendFileSync(
      join(cluster.pgdata, 'postgresql.conf'),
      `\n# temporal-postgres-ops test/demo settings\n${Object.entries(settings)
        .map(([k, v]) => `${k} = ${v}`)
        .join('\n')}\n`,
    );
    await chownToOsUser(cluster.pgdata, osUser);
  }
  return cluster;
}

export async function pgCtl(cluster: LocalCluster, args: string[]): Promise<void> {
  const result = await runCommand(
    join(cluster.binDir, 'pg_ctl'),
    [...args.slice(0, 1), '-D', cluster.pgdata, ...args.slice(1)],
    { asUser: cluster.osUser },
  );
  if (result.code !== 0) throw new Error(`pg_ctl ${args.join(' ')} failed: ${result.stderr || result.stdout}`);
}

export function startLocalCluster(cluster: LocalCluster): Promise<void> {
  return pgCtl(cluster, ['start', '-l', cluster.logFile, '-w', '-t', '300']);
}

/** Stops the cluster if it runs (immediate mode: for teardown only). */
export async function stopLocalClusterIfRunning(
  cluster: LocalCluster,
  mode: 'immediate' | 'fast' = 'immediate',
): Promise<void> {
  if (!existsSync(join(cluster.pgdata, 'postmaster.pid'))) return;
  await runCommand(join(cluster.binDir, 'pg_ctl'), ['stop', '-D', cluster.pgdata, '-m', mode, '-w', '-t', '60'], {
    asUser: cluster.osUser,
  });
}

/** The catalog's local target for a cluster made here (also what LocalClusterDriver takes). */
export function localTargetOf(cluster: LocalCluster, timeoutSeconds = 600): LocalTarget {
  return {
    kind: 'local',
    pgdata: cluster.pgdata,
    port: cluster.port,
    osUser: cluster.osUser,
    logFile: cluster.logFile,
    binDir: cluster.binDir,
    startTimeoutSeconds: timeoutSeconds,
    stopTimeoutSeconds: timeoutSeconds,
  };
}

export function endpointOf(cluster: LocalCluster) {
  return { host: '127.0.0.1', port: cluster.port, user: 'postgres', database: 'postgres', connectTimeoutMs: 5000 };
}
