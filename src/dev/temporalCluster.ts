// A self-hosted Temporal cluster for the production-shape tests, the fleet bench and `npm run
// temporal:cluster`: the Temporal server built from go.temporal.io/server (scripts/temporal-server/build.sh),
// its own PostgreSQL 15 instance for persistence and SQL visibility, and frontend, history, matching and
// worker as four processes, each started, killed and restarted on its own (by PID).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { msToTs } from '@temporalio/common/lib/time';
import { runCommand } from '../drivers/exec';
import { delay, pollUntil } from '../drivers/waiting';
import { freePort, isPortFree } from './ports';
import { initLocalCluster, startLocalCluster, stopLocalClusterIfRunning, type LocalCluster } from './localPostgres';
import {
  MAX_MEMBERSHIP_PORT,
  TEMPORAL_SERVICES,
  temporalDynamicConfig,
  temporalServerConfig,
  type TemporalClusterPorts,
  type TemporalService,
} from './temporalServerConfig';

export const TEMPORAL_SERVER_VERSION = process.env.PGOPS_TEMPORAL_SERVER_VERSION ?? 'v1.32.2';
const BUILD_SCRIPT = resolve(__dirname, '..', '..', 'scripts', 'temporal-server', 'build.sh');
/** Not a secret: the test cluster's database listens on loopback only. Production reads its own from a secret. */
const TEST_DB_PASSWORD = 'temporal';

export function temporalServerBinDir(): string {
  const cache = process.env.PGOPS_TEMPORAL_SERVER_CACHE ?? join(homedir(), '.cache', 'pgops', 'temporal-server');
  return join(cache, TEMPORAL_SERVER_VERSION, 'bin');
}

/** The server and sql binaries, built once (about 3.5 min) when they are not cached yet. */
export async function ensureTemporalServerBinaries(log: (line: string) => void = () => undefined): Promise<string> {
  const bin = temporalServerBinDir();
  if (existsSync(join(bin, 'server')) && existsSync(join(bin, 'sql'))) return bin;
  log(`building the Temporal server ${TEMPORAL_SERVER_VERSION} (about 3.5 min, once)`);
  const built = await runCommand('bash', [BUILD_SCRIPT], { timeoutMs: 30 * 60_000 });
  if (built.code !== 0) throw new Error(`building the Temporal server failed:\n${built.stderr.slice(-2000)}`);
  return bin;
}

/** A free loopback port at or below 32767, for ringpop membership (the schema stores it as SMALLINT). */
async function freeLowPort(taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20000 + Math.floor(Math.random() * (MAX_MEMBERSHIP_PORT - 20000));
    if (taken.has(port)) continue;
    if (await isPortFree(port)) {
      taken.add(port);
      return port;
    }
  }
  throw new Error(`no free loopback port between 20000 and ${MAX_MEMBERSHIP_PORT}`);
}

async function pickPorts(): Promise<TemporalClusterPorts> {
  const taken = new Set<number>();
  const grpc = {} as Record<TemporalService, number>;
  const membership = {} as Record<TemporalService, number>;
  for (const service of TEMPORAL_SERVICES) {
    grpc[service] = await freePort();
    membership[service] = await freeLowPort(taken);
  }
  return { grpc, membership, frontendHttp: await freePort() };
}

export interface StartTemporalClusterOptions {
  /** Where its PostgreSQL, config, logs and PID files go. */
  dir: string;
  numHistoryShards?: number;
  namespace?: string;
  log?: (line: string) => void;
}

export interface RunningTemporalCluster {
  address: string;
  namespace: string;
  dir: string;
  database: LocalCluster;
  pid(service: TemporalService): number | undefined;
  /** Sends `signal` to one service and waits until it has exited. */
  kill(service: TemporalService, signal?: NodeJS.Signals): Promise<void>;
  /** Starts one service again (after kill) and waits until the cluster answers again. */
  restart(service: TemporalService): Promise<void>;
  /** Until the frontend, history and matching answer a call that needs each. */
  waitReady(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Creates the two databases (persistence and visibility) with the schema the server's sql tool embeds. */
async function createSchema(bin: string, db: LocalCluster, log: (line: string) => void): Promise<void> {
  // Once per database: a cluster started again on the same directory keeps its data.
  const done = join(db.dir, `schema-${TEMPORAL_SERVER_VERSION}.done`);
  if (existsSync(done)) return;
  const base = ['--plugin', 'postgres12', '--ep', '127.0.0.1', '-p', String(db.port), '-u', 'temporal'];
  const env = { ...process.env, SQL_PASSWORD: TEST_DB_PASSWORD };
  for (const [database, schema] of [
    ['temporal', 'postgresql/v12/temporal'],
    ['temporal_visibility', 'postgresql/v12/visibility'],
  ] as const) {
    for (const args of [['create-database'], ['setup-schema', '-v', '0.0'], ['update-schema', '-s', schema]]) {
      const run = await runCommand(join(bin, 'sql'), [...base, '--db', database, ...args], { env, timeoutMs: 120_000 });
      if (run.code !== 0) throw new Error(`temporal sql ${args[0]} (${database}) failed: ${run.stderr || run.stdout}`);
    }
  }
  writeFileSync(done, `${new Date().toISOString()}\n`);
  log('Temporal schema created (temporal, temporal_visibility)');
}

/** The port a database made by an earlier start listens on (the last `port =` of its settings). */
function configuredPort(pgdata: string): number | undefined {
  const conf = join(pgdata, 'postgresql.conf');
  if (!existsSync(join(pgdata, 'PG_VERSION')) || !existsSync(conf)) return undefined;
  const ports = [...readFileSync(conf, 'utf8').matchAll(/^port = (\d+)/gm)];
  return ports.length ? Number(ports[ports.length - 1]![1]) : undefined;
}

async function startDatabase(dir: string): Promise<LocalCluster> {
  const db = await initLocalCluster({
    dir: join(dir, 'postgres'),
    port: configuredPort(join(dir, 'postgres', 'data')) ?? (await freePort()),
    settings: { max_connections: '200', shared_buffers: '128MB', fsync: 'on' },
  });
  await startLocalCluster(db);
  await psql(
    db,
    'postgres',
    `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'temporal') THEN CREATE ROLE temporal LOGIN CREATEDB PASSWORD '${TEST_DB_PASSWORD}'; END IF; END $$`,
  );
  return db;
}

/** One statement through psql as the database's superuser; its unaligned output. */
async function psql(db: LocalCluster, database: string, sql: string): Promise<string> {
  const args = ['-h', db.socketDir, '-p', String(db.port), '-U', 'postgres', '-d', database];
  const out = await runCommand(join(db.binDir, 'psql'), [...args, '-v', 'ON_ERROR_STOP=1', '-tAc', sql], {
    asUser: db.osUser,
  });
  if (out.code !== 0) throw new Error(`psql on ${database} failed: ${out.stderr.trim()}`);
  return out.stdout.trim();
}

/**
 * Whether a service has written the cluster's metadata record. Every service writes it when it
 * finds none, and all but one of several starting at once on a new database exit ("Failed to apply
 * cluster metadata"): the first start waits for one service to have written it.
 */
async function clusterMetadataWritten(db: LocalCluster): Promise<boolean> {
  return (await psql(db, 'temporal', 'SELECT count(*) FROM cluster_metadata_info')) !== '0';
}

function isUnavailable(err: unknown): boolean {
  const message = (err as Error).message ?? String(err);
  return !/not found/i.test(message) || /namespace/i.test(message);
}

export async function startTemporalCluster(opts: StartTemporalClusterOptions): Promise<RunningTemporalCluster> {
  const log = opts.log ?? (() => undefined);
  const namespace = opts.namespace ?? 'default';
  const bin = await ensureTemporalServerBinaries(log);
  mkdirSync(join(opts.dir, 'logs'), { recursive: true });
  mkdirSync(join(opts.dir, 'pids'), { recursive: true });
  const db = await startDatabase(opts.dir);
  await createSchema(bin, db, log);
  const ports = await pickPorts();
  const configFile = join(opts.dir, 'temporal.yaml');
  const dynamicConfigFile = join(opts.dir, 'dynamic.yaml');
  writeFileSync(dynamicConfigFile, temporalDynamicConfig());
  writeFileSync(
    configFile,
    temporalServerConfig({
      ports,
      database: { host: '127.0.0.1', port: db.port, user: 'temporal' },
      numHistoryShards: opts.numHistoryShards ?? 4,
      dynamicConfigFile,
    }),
  );
  const address = `127.0.0.1:${ports.grpc.frontend}`;
  const children = new Map<TemporalService, ChildProcess>();
  // No server outlives the process that started it (a test run killed by a timeout).
  const killAll = () => children.forEach((child) => child.kill('SIGKILL'));
  process.once('exit', killAll);

  const startService = (service: TemporalService) => {
    const logFd = openSync(join(opts.dir, 'logs', `${service}.log`), 'a');
    const child = spawn(
      join(bin, 'server'),
      ['--config-file', configFile, '--allow-no-auth', 'start', '--service', service],
      {
        stdio: ['ignore', logFd, logFd],
        detached: true, // its own process group: a Ctrl-C in the terminal reaches only our handler
        env: { ...process.env, TEMPORAL_DB_PASSWORD: TEST_DB_PASSWORD },
      },
    );
    writeFileSync(join(opts.dir, 'pids', `${service}.pid`), `${child.pid}\n`);
    children.set(service, child);
  };
  /** A service that exited, with why from its log. */
  const exited = (service: TemporalService) =>
    new Error(`the Temporal ${service} service exited: ${serviceLogErrors(join(opts.dir, 'logs', `${service}.log`))}`);
  const running = (service: TemporalService) => {
    const child = children.get(service);
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  };

  const waitReady = async (timeoutMs = 90_000) => {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    while (Date.now() < deadline) {
      for (const service of TEMPORAL_SERVICES) if (!running(service)) throw exited(service);
      let connection: Connection | undefined;
      try {
        connection = await Connection.connect({ address, connectTimeout: 2000 });
        const service = connection.workflowService;
        await service.getSystemInfo({});
        try {
          await service.registerNamespace({
            namespace,
            workflowExecutionRetentionPeriod: msToTs('72h'),
          });
          log(`namespace ${namespace} registered`);
        } catch (err) {
          if (!/already exists/i.test((err as Error).message)) throw err;
        }
        await service.describeNamespace({ namespace });
        // History answers "not found" for a workflow that never ran; while down, the call is unavailable.
        try {
          await service.getWorkflowExecutionHistory({ namespace, execution: { workflowId: 'pgops-readiness-probe' } });
        } catch (err) {
          if (isUnavailable(err)) throw err;
        }
        await service.describeTaskQueue({
          namespace,
          taskQueue: { name: 'pgops-readiness-probe' },
          taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        });
        return;
      } catch (err) {
        lastError = err;
        await delay(500);
      } finally {
        await connection?.close().catch(() => undefined);
      }
    }
    throw new Error(
      `the Temporal cluster on ${address} was not ready within ${timeoutMs} ms: ${(lastError as Error)?.message}`,
    );
  };

  const kill = async (service: TemporalService, signal: NodeJS.Signals = 'SIGKILL') => {
    const child = children.get(service);
    if (!child || !running(service)) return;
    const gone = new Promise<void>((done) => child.once('exit', () => done()));
    child.kill(signal);
    const force = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await gone;
    clearTimeout(force);
  };

  try {
    if (!(await clusterMetadataWritten(db))) {
      startService('frontend');
      await pollUntil(
        async () => {
          if (!running('frontend')) throw exited('frontend');
          return (await clusterMetadataWritten(db)) ? { done: undefined } : { waiting: 'no row yet' };
        },
        { intervalMs: 200, timeoutMs: 60_000, what: 'the Temporal frontend to write the cluster metadata' },
      );
    }
    for (const service of TEMPORAL_SERVICES) if (!running(service)) startService(service);
    await waitReady();
  } catch (err) {
    killAll();
    await stopLocalClusterIfRunning(db);
    throw err;
  }
  log(`Temporal ${TEMPORAL_SERVER_VERSION} on PostgreSQL: frontend ${address}, namespace ${namespace}`);
  return {
    address,
    namespace,
    dir: opts.dir,
    database: db,
    pid: (service) => (running(service) ? children.get(service)?.pid : undefined),
    kill,
    async restart(service) {
      await kill(service);
      startService(service);
      await waitReady();
    },
    waitReady,
    async stop() {
      // Frontend first, so that no new call reaches a service that is going away.
      for (const service of ['frontend', 'worker', 'matching', 'history'] as const) await kill(service, 'SIGTERM');
      process.removeListener('exit', killAll);
      await stopLocalClusterIfRunning(db, 'fast');
    },
  };
}

/** A service log's error lines (the last three; else its last lines), and where the log is. */
function serviceLogErrors(file: string): string {
  let lines: string[] = [];
  try {
    lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  } catch {
    return `no log at ${file}`;
  }
  const errors = lines.filter((line) => /"level":"(error|fatal|panic)"|^panic:|\bfatal\b/i.test(line));
  const shown = (errors.length ? errors : lines).slice(-3).map((line) => {
    // JSON log lines: the message and the error, without the stack trace.
    try {
      const entry = JSON.parse(line) as { msg?: string; error?: string };
      return [entry.msg, entry.error].filter(Boolean).join(': ');
    } catch {
      return line.slice(0, 500);
    }
  });
  return `${shown.join('; ')} (log: ${file})`;
}
