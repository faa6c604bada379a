// A local PostgreSQL data directory driven with pg_ctl: the embedded default and the test target.
// "Replicas" is 1 (a postmaster runs) or 0 (none does).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import type { LocalTarget } from '../../config/schema';
import { runCommand, type CommandResult } from '../exec';
import { pollUntil } from '../waiting';
import { startupFailure } from '../postgres/restore/startupFailure';
import {
  PermanentDriverError,
  type ClusterDriver,
  type ClusterState,
  type QuiescentCheck,
  type RestartOptions,
  type WaitOptions,
} from './types';

export class LocalClusterDriver implements ClusterDriver {
  readonly kind = 'local' as const;

  constructor(private readonly target: LocalTarget) {}

  get logFile(): string {
    return this.target.logFile ?? join(dirname(this.target.pgdata), `${basename(this.target.pgdata)}.server.log`);
  }

  private pgCtl(args: string[], timeoutMs: number, signal?: AbortSignal): Promise<CommandResult> {
    return runCommand(join(this.target.binDir, 'pg_ctl'), args, { asUser: this.target.osUser, timeoutMs, signal });
  }

  /** The postmaster PID from postmaster.pid, if the file exists and its process is alive. */
  livePostmasterPid(): number | undefined {
    const pidFile = join(this.target.pgdata, 'postmaster.pid');
    if (!existsSync(pidFile)) return undefined;
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    return processAlive(pid) ? pid : undefined;
  }

  private assertDataDirectory(): void {
    if (!existsSync(join(this.target.pgdata, 'PG_VERSION'))) {
      throw new PermanentDriverError(
        `${this.target.pgdata} is not a PostgreSQL data directory (no PG_VERSION): check the catalog's target.pgdata`,
      );
    }
  }

  async describe(): Promise<ClusterState> {
    this.assertDataDirectory();
    const pid = this.livePostmasterPid();
    if (pid === undefined) return { running: false, replicas: 0, readyReplicas: 0, members: [] };
    return { running: true, replicas: 1, readyReplicas: this.postmasterReady() ? 1 : 0, members: [String(pid)] };
  }

  /**
   * What the postmaster wrote as its status (postmaster.pid line 8, PostgreSQL 10+): "ready" for a
   * primary, "standby" for a hot standby accepting connections; "starting"/"stopping" otherwise.
   * Read from the file, not by spawning pg_ctl status (which only checks that the PID lives).
   */
  private postmasterReady(): boolean {
    try {
      const status = readFileSync(join(this.target.pgdata, 'postmaster.pid'), 'utf8').split('\n')[7]?.trim();
      return status === 'ready' || status === 'standby';
    } catch {
      return false;
    }
  }

  async recordedReplicas(): Promise<number | undefined> {
    return 1;
  }

  async stop(
    opts: WaitOptions & { mode?: 'fast' | 'immediate' } = {},
  ): Promise<{ replicasBefore: number; alreadyStopped: boolean }> {
    this.assertDataDirectory();
    const pid = this.livePostmasterPid();
    if (pid === undefined) return { replicasBefore: 1, alreadyStopped: true };
    const mode = opts.mode ?? 'fast';
    opts.onProgress?.(`stopping postmaster ${pid} (pg_ctl stop -m ${mode})`);
    const timeoutMs = this.target.stopTimeoutSeconds * 1000;
    const result = await this.pgCtl(
      ['stop', '-D', this.target.pgdata, '-m', mode, '-w', '-t', String(this.target.stopTimeoutSeconds)],
      timeoutMs + 10_000,
      opts.signal,
    );
    // Exit 1 with "PID file does not exist" means another attempt stopped it first: fine.
    if (result.code !== 0 && this.livePostmasterPid() !== undefined) {
      throw new Error(`pg_ctl stop failed for ${this.target.pgdata}: ${(result.stderr || result.stdout).trim()}`);
    }
    // pg_ctl returns when postmaster.pid is gone; the process can linger a moment after that, and
    // a start before it exits fails with "lock file postmaster.pid already exists".
    await pollUntil(async () => (processAlive(pid) ? { waiting: `postmaster ${pid} still exiting` } : { done: true }), {
      intervalMs: 10,
      timeoutMs,
      signal: opts.signal,
      onProgress: opts.onProgress,
      what: `postmaster ${pid} to exit`,
    });
    return { replicasBefore: 1, alreadyStopped: false };
  }

  async verifyQuiescent(): Promise<QuiescentCheck> {
    this.assertDataDirectory();
    const pid = this.livePostmasterPid();
    if (pid !== undefined)
      throw new Error(
        `postmaster ${pid} is still running on ${this.target.pgdata}: the database is not at a quiescent point`,
      );
    return { noServerRunning: true, volumesKept: [this.target.pgdata] };
  }

  async start(replicas: number, opts: WaitOptions = {}): Promise<{ readyReplicas: number; alreadyRunning: boolean }> {
    this.assertDataDirectory();
    if (replicas !== 1)
      throw new PermanentDriverError(`a local cluster runs exactly 1 server; ${replicas} replicas were asked for`);
    if (this.livePostmasterPid() !== undefined) {
      await this.waitReady(opts);
      return { readyReplicas: 1, alreadyRunning: true };
    }
    opts.onProgress?.(
      'starting postmaster (pg_ctl start); it replays WAL from the last checkpoint before accepting connections',
    );
    const timeoutMs = this.target.startTimeoutSeconds * 1000;
    const logFrom = fileSize(this.logFile);
    // No abort signal: killing pg_ctl does not stop the postmaster it launched, so a cancelled
    // start would leave a server coming up behind the workflow's back (and the lock's). A start,
    // like a stop, runs to its end (bounded by startTimeoutSeconds); the cancel takes effect after.
    const started = this.pgCtl(
      ['start', '-D', this.target.pgdata, '-l', this.logFile, '-w', '-t', String(this.target.startTimeoutSeconds)],
      timeoutMs + 10_000,
    );
    const ticker = setInterval(() => opts.onProgress?.('waiting for the postmaster to accept connections'), 2000);
    let result: CommandResult;
    try {
      result = await started;
    } finally {
      clearInterval(ticker);
    }
    if (result.code !== 0) {
      // Only what this start wrote: an older run's FATAL says nothing about this one.
      const refused = startupFailure(readFrom(this.logFile, logFrom).split('\n'), this.logFile);
      if (refused) throw refused;
      throw new Error(
        `pg_ctl start failed for ${this.target.pgdata} (exit ${result.code}): ${(result.stderr || result.stdout).trim()}; server log: ${this.logFile}\n${tail(this.logFile)}`,
      );
    }
    return { readyReplicas: 1, alreadyRunning: false };
  }

  async restartServer(opts: RestartOptions = {}): Promise<void> {
    await this.stop({ ...opts, mode: opts.immediate ? 'immediate' : 'fast' });
    await this.start(1, opts);
  }

  private async waitReady(opts: WaitOptions): Promise<void> {
    await pollUntil(
      async () => {
        const status = await this.pgCtl(['status', '-D', this.target.pgdata], 30_000);
        if (status.code !== 0) throw new Error(`postmaster stopped while starting: ${tail(this.logFile)}`);
        const result = await runCommand(join(this.target.binDir, 'pg_isready'), [
          '-h',
          '127.0.0.1',
          '-p',
          String(this.target.port),
          '-t',
          '2',
        ]);
        return result.code === 0 ? { done: true } : { waiting: `pg_isready: ${result.stdout.trim()}` };
      },
      {
        intervalMs: 500,
        timeoutMs: this.target.startTimeoutSeconds * 1000,
        signal: opts.signal,
        onProgress: opts.onProgress,
        what: 'the server to accept connections',
      },
    );
  }
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // An exited postmaster can stay a zombie until its parent (often PID 1 in a container) reaps
  // it: it holds no lock file and no port, so it counts as gone.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc here: trust kill(pid, 0)
  }
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

function readFrom(file: string, offset: number): string {
  try {
    const bytes = readFileSync(file);
    return bytes.subarray(bytes.length >= offset ? offset : 0).toString('utf8'); // a rotated log starts anew
  } catch {
    return '';
  }
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no server log)';
  }
}
