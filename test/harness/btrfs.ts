// A real btrfs file system on a loop file, mounted once per test run: copy-on-write subvolume
// snapshots for the local snapshot driver. Unmounted and detached when the run ends.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../../src/drivers/exec';
import { registerTeardown, testEnv } from './testEnv';

let mounted: Promise<string> | undefined;

async function must(file: string, args: string[]): Promise<string> {
  const result = await runCommand(file, args, { timeoutMs: 120_000 });
  if (result.code !== 0) throw new Error(`${file} ${args.join(' ')}: ${result.stderr.trim()}`);
  return result.stdout.trim();
}

async function mountBtrfs(): Promise<string> {
  const { root } = await testEnv();
  const image = join(root, 'btrfs.img');
  const mountpoint = join(root, 'btrfs');
  mkdirSync(mountpoint, { recursive: true });
  await must('truncate', ['-s', `${process.env.PGOPS_TEST_BTRFS_GB ?? 3}G`, image]);
  const device = await must('losetup', ['-f', '--show', image]);
  await must('mkfs.btrfs', ['-q', device]).catch((err: Error) => {
    // mkfs walks every mount: one loop device on a dead FUSE mount (an rbd-fuse whose run was
    // killed outside this machine's test roots) stops it. `findmnt` and `losetup -l` show which.
    throw /Transport endpoint is not connected/.test(err.message)
      ? new Error(`${err.message} (a loop device or mount on a dead FUSE mount, e.g. a killed rbd-fuse; see findmnt)`)
      : err;
  });
  await must('mount', [device, mountpoint]);
  registerTeardown(async () => {
    await runCommand('umount', ['-l', mountpoint]);
    await runCommand('losetup', ['-d', device]);
  });
  return mountpoint;
}

/** The mount point of the test run's btrfs file system. */
export function testBtrfs(): Promise<string> {
  mounted ??= mountBtrfs();
  return mounted;
}

/** A new btrfs subvolume (e.g. to hold PGDATA), owned by `owner`. */
export async function btrfsSubvolume(path: string): Promise<void> {
  await must('btrfs', ['subvolume', 'create', path]);
}
