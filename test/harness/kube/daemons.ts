// The test cluster's daemons: each in its own process group (a new session, like setsid), its
// output in a log file, and stopped by PID: SIGTERM to the group, SIGKILL after a grace period.
// If the test process dies without its after hooks, the 'exit' handler still kills every group.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

export interface Daemon {
  name: string;
  pid: number;
  logFile: string;
  child: ChildProcess;
  exited: Promise<void>;
  /** The end of the log, for error messages. */
  logTail(lines?: number): string;
}

const running = new Set<Daemon>();

process.on('exit', () => {
  for (const daemon of running) killGroup(daemon.pid, 'SIGKILL');
});

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

export function startDaemon(name: string, file: string, args: string[], logDir: string): Daemon {
  const logFile = join(logDir, `${name}.log`);
  const log = openSync(logFile, 'a');
  const child = spawn(file, args, { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  if (child.pid === undefined) throw new Error(`could not start ${name} (${file})`);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('error', () => undefined); // reported through exited + the log
  const daemon: Daemon = {
    name,
    pid: child.pid,
    logFile,
    child,
    exited,
    logTail: (lines = 15) => {
      try {
        return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        return '';
      }
    },
  };
  child.unref();
  running.add(daemon);
  void exited.then(() => running.delete(daemon));
  return daemon;
}

export function isAlive(daemon: Daemon): boolean {
  return daemon.child.exitCode === null && daemon.child.signalCode === null;
}

/** SIGTERM to the daemon's process group, SIGKILL after `graceMs`; resolves when it has exited. */
export async function stopDaemon(daemon: Daemon, graceMs = 5000): Promise<void> {
  if (!isAlive(daemon)) return;
  killGroup(daemon.pid, 'SIGTERM');
  const stopped = await Promise.race([daemon.exited.then(() => true), delay(graceMs).then(() => false)]);
  if (!stopped) {
    killGroup(daemon.pid, 'SIGKILL');
    await daemon.exited;
  }
  killGroup(daemon.pid, 'SIGKILL'); // anything it left in its group
}
