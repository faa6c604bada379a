// Runs the dev server defined in temporal-dev.yml with a local binary: the same command and
// flags, with the container's 0.0.0.0 bound to 127.0.0.1, the ports optionally overridden, and
// the database file placed on the local disk.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Connection } from '@temporalio/client';
import { ensureTemporalBinary } from './temporalBinary';
import { delay } from '../drivers/waiting';

export const DEV_SERVER_FILE = resolve(__dirname, '..', '..', 'temporal-dev.yml');

export interface DevServerSpec {
  args: string[];
  grpcPort: number;
  uiPort: number;
  namespace: string;
}

function flagValue(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

function setFlag(args: string[], flag: string, value: string): void {
  const i = args.indexOf(flag);
  if (i >= 0) args[i + 1] = value;
  else args.push(flag, value);
}

export function readDevServerSpec(file = DEV_SERVER_FILE): DevServerSpec {
  const doc = parseYaml(readFileSync(file, 'utf8')) as { services?: { temporal?: { command?: unknown } } };
  const command = doc.services?.temporal?.command;
  if (!Array.isArray(command) || !command.every((c) => typeof c === 'string')) {
    throw new Error(`${file}: services.temporal.command must be a list of strings`);
  }
  const args = [...command] as string[];
  return {
    args,
    grpcPort: Number(flagValue(args, '--port') ?? 7233),
    uiPort: Number(flagValue(args, '--ui-port') ?? 8233),
    namespace: flagValue(args, '--namespace') ?? 'default',
  };
}

export interface RunningDevServer {
  address: string;
  uiUrl: string;
  namespace: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface StartDevServerOptions {
  grpcPort?: number;
  uiPort?: number;
  /** Where the server keeps its state; the file persists runs across restarts. */
  dataDir: string;
  headless?: boolean;
  log?: (line: string) => void;
}

export async function startTemporalDevServer(opts: StartDevServerOptions): Promise<RunningDevServer> {
  const spec = readDevServerSpec();
  const binary = await ensureTemporalBinary(opts.log);
  const args = [...spec.args];
  const grpcPort = opts.grpcPort ?? spec.grpcPort;
  const uiPort = opts.uiPort ?? spec.uiPort;
  setFlag(args, '--ip', '127.0.0.1');
  setFlag(args, '--port', String(grpcPort));
  setFlag(args, '--ui-port', String(uiPort));
  mkdirSync(opts.dataDir, { recursive: true });
  setFlag(args, '--db-filename', join(opts.dataDir, 'temporal.db'));
  setFlag(args, '--log-level', 'error');
  if (opts.headless) args.push('--headless');
  const logFd = openSync(join(opts.dataDir, 'temporal-server.log'), 'a');
  // Daemons must not inherit our stdin/stdout, or a piped caller hangs.
  const child = spawn(binary, args, { stdio: ['ignore', logFd, logFd], detached: false });
  const address = `127.0.0.1:${grpcPort}`;
  let exited = false;
  // A server must not outlive the process that started it (a test run killed by a timeout).
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.on('exit', () => {
    exited = true;
    process.removeListener('exit', killOnExit);
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`temporal server exited at start-up; see ${join(opts.dataDir, 'temporal-server.log')}`);
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1000 });
      await connection.workflowService.getSystemInfo({});
      await connection.close();
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`temporal server did not answer on ${address} within 60s: ${(err as Error).message}`);
      }
      await delay(250);
    }
  }
  return {
    address,
    uiUrl: `http://127.0.0.1:${uiPort}`,
    namespace: spec.namespace,
    process: child,
    async stop() {
      if (exited) return;
      const gone = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(timer);
    },
  };
}
