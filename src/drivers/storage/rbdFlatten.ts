// `rbd flatten` on the worker host, with its progress: rbd prints "Image flatten: N% complete..."
// on stderr while it copies the parent's objects into the clone. Interrupted (a signal, a dead
// worker), the objects already copied stay, so the next flatten goes on from there.
import { spawn } from 'node:child_process';
import type { RbdStorageConfig } from '../../config/schema';
import { cephArgs } from './rbdLocalAttach';

/** Flattens pool/image; `onPercent` gets each percentage rbd reports. Resolves with the milliseconds taken. */
export function flattenImage(
  storage: RbdStorageConfig,
  spec: string,
  onPercent: (percent: number) => void,
  signal?: AbortSignal,
): Promise<number> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(
      'rbd',
      [
        ...cephArgs(storage),
        ...(storage.flattenConcurrency ? ['--rbd-concurrent-management-ops', String(storage.flattenConcurrency)] : []),
        'flatten',
        spec,
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
        signal,
      },
    );
    let tail = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      tail = (tail + chunk).slice(-4000);
      const percents = [...chunk.matchAll(/(\d{1,3})% complete/g)];
      const last = percents.at(-1);
      if (last) onPercent(Number(last[1]));
    });
    child.once('error', (err) => reject(err));
    child.once('close', (code, sig) => {
      if (code === 0) resolve(Date.now() - started);
      else
        reject(
          new Error(
            `rbd flatten ${spec} ${sig ? `was stopped by ${sig}` : `failed (exit ${code})`}: ${tail.replace(/\r/g, '\n').trim().split('\n').at(-1) ?? ''}`,
          ),
        );
    });
  });
}
