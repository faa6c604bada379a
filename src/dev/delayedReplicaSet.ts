// A real primary, its WAL archive and a delayed standby restoring from that archive, for the
// tests, the demo and the benchmarks: the set-up of GitLab's delayed replica (docs/runbooks/delayed-replica-pitr.md)
// on loopback. The standby is archive-only (no primary_conninfo), as in the seed, unless
// `streaming` asks for a streaming standby.
import { appendFileSync, chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../drivers/exec';
import { plainPathProblem } from '../common/shellPaths';
import type { PgEndpoint } from '../drivers/postgres/session';
import { waitForSql } from '../drivers/postgres/session';
import {
  endpointOf,
  initLocalCluster,
  pgOsUser,
  PG_BIN_DIR,
  startLocalCluster,
  stopLocalClusterIfRunning,
  type LocalCluster,
} from './localPostgres';
import { freePort } from './ports';

export interface DelayedReplicaSetOptions {
  /** An absolute directory the postgres OS user can reach; primary/, replica/ and archive/ go below it. */
  dir: string;
  /** recovery_min_apply_delay in PostgreSQL units, such as '30s', '5min', '8h'. */
  delay: string;
  primaryPort?: number;
  replicaPort?: number;
  /** Also stream from the primary (primary_conninfo); the default is archive-only like the seed. */
  streaming?: boolean;
}

export interface ReplicaSet {
  primary: LocalCluster;
  replica: LocalCluster;
  archiveDir: string;
  primaryEndpoint: PgEndpoint;
  replicaEndpoint: PgEndpoint;
  /** The replica's include file an orchestrator may own (last line of its postgresql.conf). */
  replicaIncludeFile: string;
  stop(): Promise<void>;
}

/** A duration recovery_min_apply_delay accepts; 'm' is taken as minutes, as in the project's durations. */
const APPLY_DELAY = /^(\d{1,9})\s*(ms|s|m|min|h|d)?$/;

/** '30s' → '30s', '15m' → '15min'; throws on anything PostgreSQL would not read as a duration. */
export function applyDelaySetting(delay: string): string {
  const match = APPLY_DELAY.exec(delay.trim());
  if (!match)
    throw new Error(
      `delay ${JSON.stringify(delay)} is not a duration recovery_min_apply_delay accepts: write e.g. '30s', '5min' or '8h'`,
    );
  const unit = match[2] === 'm' ? 'min' : (match[2] ?? 'ms');
  return `${match[1]}${unit}`;
}

/** A primary that archives every WAL segment into `archiveDir` (and at least every second). */
export function archivingSettings(archiveDir: string): Record<string, string> {
  const problem = plainPathProblem(archiveDir);
  if (problem) throw new Error(`cannot archive WAL: ${problem}`);
  // The .tmp + mv makes a segment appear complete or not at all: the standby's `cp` never
  // restores half a file, and `test ! -f` refuses to overwrite a segment already archived.
  const archiveCommand = `test ! -f ${archiveDir}/%f && cp %p ${archiveDir}/%f.tmp && mv ${archiveDir}/%f.tmp ${archiveDir}/%f`;
  return {
    wal_level: 'replica',
    archive_mode: 'on',
    archive_timeout: "'1s'",
    archive_command: `'${archiveCommand}'`,
    track_commit_timestamp: 'on',
    log_statement: 'none',
  };
}

/** Creates the archive directory, owned by the PostgreSQL OS user. */
export async function prepareArchiveDir(archiveDir: string, osUser: string): Promise<void> {
  mkdirSync(archiveDir, { recursive: true });
  chmodSync(archiveDir, 0o755);
  await chownTree(archiveDir, osUser);
}

function confLines(settings: Record<string, string>): string {
  return Object.entries(settings)
    .map(([name, value]) => `${name} = ${value}`)
    .join('\n');
}

async function chownTree(path: string, osUser: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const result = await runCommand('chown', ['-R', `${osUser}:`, path]);
  if (result.code !== 0) throw new Error(`chown ${path} failed: ${result.stderr}`);
}

export async function createDelayedReplicaSet(opts: DelayedReplicaSetOptions): Promise<ReplicaSet> {
  const dirProblem = plainPathProblem(opts.dir);
  if (dirProblem) throw new Error(`cannot build the delayed replica set: ${dirProblem}`);
  const delay = applyDelaySetting(opts.delay);
  const osUser = pgOsUser();
  const archiveDir = join(opts.dir, 'archive');
  mkdirSync(opts.dir, { recursive: true });
  chmodSync(opts.dir, 0o755);
  await prepareArchiveDir(archiveDir, osUser);

  const primary = await initLocalCluster({
    dir: join(opts.dir, 'primary'),
    port: opts.primaryPort ?? (await freePort()),
    settings: archivingSettings(archiveDir),
  });
  const replica: LocalCluster = {
    dir: join(opts.dir, 'replica'),
    pgdata: join(opts.dir, 'replica', 'data'),
    port: opts.replicaPort ?? (await freePort()),
    socketDir: join(opts.dir, 'replica', 'socket'),
    logFile: join(opts.dir, 'replica', 'data.server.log'),
    osUser,
    binDir: PG_BIN_DIR,
  };
  const primaryEndpoint = endpointOf(primary);
  const replicaEndpoint = endpointOf(replica);
  const stop = async () => {
    await stopLocalClusterIfRunning(replica);
    await stopLocalClusterIfRunning(primary);
  };
  try {
    await startLocalCluster(primary);
    mkdirSync(replica.socketDir, { recursive: true });
    chmodSync(replica.dir, 0o755);
    await chownTree(replica.dir, osUser);
    if (!existsSync(join(replica.pgdata, 'PG_VERSION'))) {
      const backup = await runCommand(
        join(PG_BIN_DIR, 'pg_basebackup'),
        [
          '-h',
          primary.socketDir,
          '-p',
          String(primary.port),
          '-U',
          'postgres',
          '-D',
          replica.pgdata,
          '-X',
          'stream',
          '-c',
          'fast',
          '--no-password',
        ],
        { asUser: osUser, timeoutMs: 300_000 },
      );
      if (backup.code !== 0)
        throw new Error(`pg_basebackup from the primary failed: ${backup.stderr || backup.stdout}`);
    }
    const replicaSettings: Record<string, string> = {
      port: String(replica.port),
      unix_socket_directories: `'${replica.socketDir}'`,
      // A standby with archive_mode=on archives nothing, but after a promotion it would write a
      // new timeline into the primary's archive (docs/runbooks/delayed-replica-pitr.md step 6): keep the archive clean.
      archive_mode: 'off',
      restore_command: `'cp ${archiveDir}/%f %p'`,
      recovery_target_timeline: "'latest'",
      hot_standby: 'on',
      recovery_min_apply_delay: `'${delay}'`,
      // Archive-only standbys retry a missing segment every wal_retrieve_retry_interval (5s by
      // default); 1s keeps tests short without changing what is replayed.
      wal_retrieve_retry_interval: "'1s'",
    };
    if (opts.streaming) {
      replicaSettings.primary_conninfo = `'host=${primary.socketDir} port=${primary.port} user=postgres application_name=delayed_replica'`;
    }
    const includeFile = join(replica.pgdata, 'pgops-recovery.conf');
    appendFileSync(
      join(replica.pgdata, 'postgresql.conf'),
      `\n# delayed standby (temporal-postgres-ops dev set)\n${confLines(replicaSettings)}\n# last, so an orchestrator-owned file wins over everything above (not over postgresql.auto.conf)\ninclude_if_exists = '${includeFile}'\n`,
    );
    // Present but empty: include_if_exists would log "skipping missing configuration file" at every read.
    writeFileSync(includeFile, '# recovery settings owned by the orchestrator\n');
    writeFileSync(join(replica.pgdata, 'standby.signal'), '');
    await chownTree(replica.pgdata, osUser);
    await startLocalCluster(replica);
    await waitForSql(replicaEndpoint, { timeoutMs: 120_000 });
    return { primary, replica, archiveDir, primaryEndpoint, replicaEndpoint, replicaIncludeFile: includeFile, stop };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
