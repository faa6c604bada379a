// Runs one command in a container through the API server's pods/exec (what `kubectl exec` does),
// always as an argument array: no shell ever parses anything that came from input. Collects
// stdout and stderr and reads the exit code from the status the kubelet sends at the end.
import { Writable } from 'node:stream';
import { Exec, type KubeConfig, type V1Status } from '@kubernetes/client-node';
import { translateKubeError } from './apiErrors';

export interface PodExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface PodExecTarget {
  namespace: string;
  pod: string;
  container: string;
}

function collector(chunks: Buffer[]): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(Buffer.from(chunk));
      done();
    },
  });
}

/** The exit code in a pods/exec status: 0 on Success, else the ExitCode cause (or -1). */
export function exitCodeOf(status: V1Status): number {
  if (status.status === 'Success') return 0;
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  const code = Number(cause?.message);
  return Number.isInteger(code) ? code : -1;
}

export async function execInPod(
  kubeConfig: KubeConfig,
  target: PodExecTarget,
  command: string[],
  opts: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<PodExecResult> {
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  const what = `exec ${command[0]} in pod ${target.namespace}/${target.pod}`;
  return new Promise<PodExecResult>((resolve, reject) => {
    let status: V1Status | undefined;
    let settled = false;
    let socket: { close(): void } | undefined;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) {
        socket?.close();
        reject(err);
        return;
      }
      if (!status) {
        reject(new Error(`${what}: the connection closed without an exit status`));
        return;
      }
      resolve({
        code: exitCodeOf(status),
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8') || (status.status === 'Success' ? '' : (status.message ?? '')),
      });
    };
    const timer = setTimeout(
      () => finish(new Error(`${what} did not finish within ${opts.timeoutMs} ms`)),
      opts.timeoutMs ?? 120_000,
    );
    const onAbort = () => finish(opts.signal?.reason instanceof Error ? opts.signal.reason : new Error('aborted'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    new Exec(kubeConfig)
      .exec(
        target.namespace,
        target.pod,
        target.container,
        command,
        collector(stdout),
        collector(stderr),
        null,
        false,
        (s) => {
          status = s;
        },
      )
      .then(
        (ws) => {
          socket = ws;
          ws.on('close', () => finish());
          ws.on('error', (e: Error) => finish(new Error(`${what}: ${e.message}`)));
        },
        (err: unknown) =>
          finish(
            translateKubeError(err, {
              verb: 'create',
              resource: 'pods/exec',
              group: '',
              namespace: target.namespace,
              name: target.pod,
            }),
          ),
      );
  });
}
