// Attaching an RBD image on the worker host the way a kubelet would, without kernel rbd:
// rbd-fuse exposes the image as a file, a loop device sits on it, and its file system is mounted.
// Detach undoes it in reverse order and waits until no client holds the image (a rollback of an
// image that rbd-fuse still holds fails with "Read-only file system").
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RbdStorageConfig } from '../../config/schema';
import { runCommand } from '../exec';
import { pollUntil } from '../waiting';
import { mountAt } from './mounts';
import type { RbdCli } from './rbdCli';

export type RbdLocalVolume = NonNullable<RbdStorageConfig['volumes']>[number];

export function fuseDirOf(volume: RbdLocalVolume): string {
  return volume.fuseDir ?? `${volume.mountpoint}.rbd-fuse`;
}

export function cephArgs(storage: RbdStorageConfig): string[] {
  return [
    ...(storage.cephConf ? ['-c', storage.cephConf] : []),
    ...(storage.cephUser ? ['--id', storage.cephUser] : []),
  ];
}

async function must(file: string, args: string[], signal?: AbortSignal): Promise<string> {
  const result = await runCommand(file, args, { signal, timeoutMs: 120_000 });
  if (result.code !== 0)
    throw new Error(`${file} ${args.join(' ')} failed (exit ${result.code}): ${result.stderr.trim()}`);
  return result.stdout;
}

/** rbd-fuse daemonizes: run it with no pipes, or the caller waits for the daemon forever. */
function startDaemon(file: string, args: string[]): Promise<number> {
  return new Promise((resolveCode, reject) => {
    const child = spawn(file, args, { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', (code) => resolveCode(code ?? 1));
  });
}

async function loopDeviceOf(file: string): Promise<string | undefined> {
  const out = await must('losetup', ['-j', file]);
  return out.split(':')[0]?.trim() || undefined;
}

/**
 * `clone`: the image is a clone of another that may be mounted too, with the same file system UUID.
 * ext4 mounts it beside its source as it is; XFS refuses a UUID mounted twice unless told `nouuid`.
 */
export async function attachRbdVolume(
  storage: RbdStorageConfig,
  volume: RbdLocalVolume,
  signal?: AbortSignal,
  clone = false,
): Promise<void> {
  const fuseDir = fuseDirOf(volume);
  const imageFile = join(fuseDir, volume.image);
  mkdirSync(fuseDir, { recursive: true });
  mkdirSync(volume.mountpoint, { recursive: true });
  if (!mountAt(fuseDir)) {
    const code = await startDaemon('rbd-fuse', [
      ...(storage.cephConf ? ['-c', storage.cephConf] : []),
      // A flatten of an image rbd-fuse holds (its exclusive lock) runs inside rbd-fuse: librbd hands
      // maintenance to the lock's owner. Fewer objects at once leave more to PostgreSQL's own I/O.
      ...(storage.flattenConcurrency ? ['--rbd_concurrent_management_ops', String(storage.flattenConcurrency)] : []),
      '-p',
      volume.pool,
      '-r',
      volume.image,
      fuseDir,
    ]);
    if (code !== 0) throw new Error(`rbd-fuse for ${volume.pool}/${volume.image} on ${fuseDir} exited with ${code}`);
  }
  await pollUntil(async () => (existsSync(imageFile) ? { done: true } : { waiting: `waiting for ${imageFile}` }), {
    intervalMs: 100,
    timeoutMs: 30_000,
    signal,
    what: `rbd-fuse to expose ${imageFile}`,
  });
  const mounted = mountAt(volume.mountpoint);
  if (mounted) return;
  const device = (await loopDeviceOf(imageFile)) ?? (await must('losetup', ['-f', '--show', imageFile], signal)).trim();
  const fsType = clone ? (await runCommand('blkid', ['-p', '-o', 'value', '-s', 'TYPE', device])).stdout.trim() : '';
  await must('mount', [...(fsType === 'xfs' ? ['-o', 'nouuid'] : []), device, volume.mountpoint], signal);
}

export async function detachRbdVolume(rbd: RbdCli, volume: RbdLocalVolume, signal?: AbortSignal): Promise<void> {
  const fuseDir = fuseDirOf(volume);
  const imageFile = join(fuseDir, volume.image);
  if (mountAt(volume.mountpoint)) await must('umount', [volume.mountpoint], signal);
  if (mountAt(fuseDir)) {
    const device = await loopDeviceOf(imageFile);
    if (device) await must('losetup', ['-d', device], signal);
    await must('umount', [fuseDir], signal);
  }
  const spec = `${volume.pool}/${volume.image}`;
  await pollUntil(
    async () => {
      const watchers = await rbd.watchers(spec);
      return watchers === 0 ? { done: true } : { waiting: `${spec} still has ${watchers} client(s)` };
    },
    { intervalMs: 200, timeoutMs: 60_000, signal, what: `the last client of ${spec} to let go` },
  );
}
