// Local file-system operations for snapshots: btrfs subvolume snapshots (copy-on-write, near
// constant time) and plain copies (time grows with the data), run with argument arrays.
import { existsSync, lstatSync, statfsSync, statSync } from 'node:fs';
import { runCommand } from '../exec';

const BTRFS_SUPER_MAGIC = 0x9123683e;
/** The root directory of every btrfs subvolume has this inode number. */
const BTRFS_SUBVOLUME_ROOT_INODE = 256;

export function isBtrfs(path: string): boolean {
  try {
    return statfsSync(path).type === BTRFS_SUPER_MAGIC;
  } catch {
    return false;
  }
}

export function isBtrfsSubvolume(path: string): boolean {
  return existsSync(path) && isBtrfs(path) && statSync(path).ino === BTRFS_SUBVOLUME_ROOT_INODE;
}

async function run(file: string, args: string[], what: string, signal?: AbortSignal): Promise<void> {
  const result = await runCommand(file, args, { signal });
  if (result.code !== 0)
    throw new Error(`${what} failed (exit ${result.code}): ${(result.stderr || result.stdout).trim()}`);
}

export function btrfsSnapshot(source: string, dest: string, readOnly: boolean, signal?: AbortSignal): Promise<void> {
  return run(
    'btrfs',
    ['subvolume', 'snapshot', ...(readOnly ? ['-r'] : []), source, dest],
    `btrfs subvolume snapshot ${source} ${dest}`,
    signal,
  );
}

/**
 * Copies a directory tree keeping owners, modes and links (reflinks where the file system can).
 * Files that vanish during the copy are skipped, as pg_basebackup does: a running server in
 * backup mode removes temporary files and old WAL, and WAL replay repairs the rest.
 */
export async function copyTree(source: string, dest: string, signal?: AbortSignal): Promise<void> {
  const result = await runCommand('cp', ['-a', '--reflink=auto', '--no-target-directory', source, dest], { signal });
  if (result.code === 0) return;
  const problems = result.stderr.split('\n').filter((line) => line.trim() && !/No such file or directory/.test(line));
  if (problems.length > 0 || !existsSync(dest))
    throw new Error(`cp -a ${source} ${dest} failed (exit ${result.code}): ${result.stderr.trim()}`);
}

/** Removes a directory tree, or a btrfs subvolume (read-only snapshots included). Idempotent. */
export async function removeTree(path: string, signal?: AbortSignal): Promise<void> {
  if (!existsSync(path) && !isSymlink(path)) return;
  if (isBtrfsSubvolume(path)) {
    // Subvolumes nested below must go first; snapshots here are never nested, so one level is enough.
    await run('btrfs', ['subvolume', 'delete', path], `btrfs subvolume delete ${path}`, signal);
    return;
  }
  await run('rm', ['-rf', '--one-file-system', path], `rm -rf ${path}`, signal);
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}
