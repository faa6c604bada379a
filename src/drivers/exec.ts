// Runs external programs with argument arrays (never a shell string). When the worker runs as
// root, PostgreSQL programs must run as the data directory's owner: pg_ctl and postgres refuse root.
import { execFile } from 'node:child_process';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Run as this OS user (only honoured when we are root). */
  asUser?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

const idCache = new Map<string, { uid: number; gid: number }>();

async function lookupUser(user: string): Promise<{ uid: number; gid: number }> {
  const cached = idCache.get(user);
  if (cached) return cached;
  const uid = await runCommand('id', ['-u', user]);
  const gid = await runCommand('id', ['-g', user]);
  if (uid.code !== 0 || gid.code !== 0)
    throw new Error(
      `operating-system user ${JSON.stringify(user)} does not exist on this worker: ${uid.stderr.trim()}`,
    );
  const ids = { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  idCache.set(user, ids);
  return ids;
}

/** Runs `file` with `args`; resolves with the exit code (never rejects on a non-zero exit). */
export async function runCommand(file: string, args: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
  const ids = opts.asUser && process.getuid?.() === 0 ? await lookupUser(opts.asUser) : undefined;
  return new Promise((resolveResult, reject) => {
    execFile(
      file,
      args,
      {
        timeout: opts.timeoutMs ?? 0,
        signal: opts.signal,
        env: opts.env ?? process.env,
        // A postgres-owned program started from /root would warn that it cannot read its cwd.
        cwd: opts.cwd ?? (ids ? '/tmp' : undefined),
        uid: ids?.uid,
        gid: ids?.gid,
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          // Not an exit code: the program could not be started, was killed, or was aborted.
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
            reject(
              new Error(`${file} was not found on this worker (is PostgreSQL installed? check the catalog's binDir)`),
            );
            return;
          }
          reject(error);
          return;
        }
        resolveResult({ code: error ? (error.code as number) : 0, stdout, stderr });
      },
    );
  });
}
