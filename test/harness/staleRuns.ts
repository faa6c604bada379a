// What a test run that was killed leaves behind, cleaned up by the next one. A run stopped by
// SIGKILL, a second Ctrl-C or a CI timeout skips its teardown: its Ceph daemons (an OSD holding
// gigabytes of memstore), rbd-fuse, PostgreSQL servers, loop devices and mounts stay. A dead
// rbd-fuse under a mounted loop device breaks every later `mkfs.btrfs` on the machine ("cannot check
// mount status of /dev/loopN: Transport endpoint is not connected"), since mkfs walks every mount.
//
// Every scratch root a run creates holds an owner file with the run's PID. A root whose owner is
// gone (or that has no owner file and is older than a minute) is stale: the processes that refer to
// it are killed, the mounts below it unmounted (lazily: a dead FUSE mount cannot be stat'ed), its
// loop devices detached and the directory removed. Roots of a run still going are never touched,
// so the two mocha processes of `npm test` may both clean at start. Roots kept on purpose
// (PGOPS_KEEP_TEST_DIRS) are marked so and left alone.
import { existsSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from '../../src/drivers/exec';
import { mountTable } from '../../src/drivers/storage/mounts';

const OWNER_FILE = '.pgops-test-owner';
const ROOT_PREFIXES = ['pgops-test-', 'pgops-kube-', 'pgops-node-', 'pgops-etcd-', 'pgops-pitr-'];
const GRACE_MS = 60_000;

/** Marks a scratch root as this process's, so that a later run can tell when it is left over. */
export function claimTestDir(dir: string): void {
  writeFileSync(join(dir, OWNER_FILE), `${process.pid}\n`);
}

/** Marks a root kept on purpose (PGOPS_KEEP_TEST_DIRS): never cleaned up as left over. */
export function keepTestDir(dir: string): void {
  writeFileSync(join(dir, OWNER_FILE), 'kept\n');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isStale(root: string, now: number): boolean {
  const owner = join(root, OWNER_FILE);
  if (existsSync(owner)) {
    const text = readFileSync(owner, 'utf8').trim();
    if (text === 'kept') return false;
    const pid = Number(text);
    return !(Number.isInteger(pid) && pid > 0 && alive(pid));
  }
  return now - statSync(root).mtimeMs > GRACE_MS;
}

function candidateRoots(): string[] {
  const parents = [...new Set([tmpdir(), '/tmp', '/dev/shm'])].filter((p) => existsSync(p));
  return parents.flatMap((parent) =>
    readdirSync(parent, { withFileTypes: true })
      .filter((e) => e.isDirectory() && ROOT_PREFIXES.some((p) => e.name.startsWith(p)))
      .map((e) => join(parent, e.name)),
  );
}

function under(path: string, root: string): boolean {
  return path === root || path.startsWith(`${root}/`);
}

/** PIDs of processes whose command line names `root`, or whose root directory lies in it. */
function processesIn(root: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      // A container of the real node: its root directory is a snapshot below the node's root.
      let rootDir = '';
      try {
        rootDir = readlinkSync(`/proc/${pid}/root`);
      } catch {
        // not ours to read
      }
      if (args.some((a) => a.includes(root)) || under(rootDir, root)) pids.push(pid);
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Mount points below `root`, deepest first. */
function mountsUnder(root: string): string[] {
  return mountTable()
    .map((m) => m.mountpoint)
    .filter((m) => under(m, root))
    .sort((a, b) => b.length - a.length);
}

async function loopDevicesOn(root: string): Promise<string[]> {
  const out = await runCommand('losetup', ['--list', '--json', '--output', 'NAME,BACK-FILE'], { timeoutMs: 10_000 });
  if (out.code !== 0 || !out.stdout.trim()) return [];
  const list = (JSON.parse(out.stdout) as { loopdevices?: Array<{ name: string; 'back-file'?: string | null }> })
    .loopdevices;
  return (list ?? [])
    .filter((d) => d['back-file'] && under(d['back-file'].replace(/ \(deleted\)$/, ''), root))
    .map((d) => d.name);
}

async function cleanRoot(root: string): Promise<void> {
  for (const pid of processesIn(root)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const mountpoint of mountsUnder(root)) await runCommand('umount', ['-l', mountpoint], { timeoutMs: 30_000 });
  for (const device of await loopDevicesOn(root)) await runCommand('losetup', ['-d', device], { timeoutMs: 30_000 });
  rmSync(root, { recursive: true, force: true, maxRetries: 3 });
}

/** Cleans up what killed test runs left; returns the roots it cleaned. */
export async function cleanStaleTestRuns(): Promise<string[]> {
  const now = Date.now();
  const stale = candidateRoots().filter((root) => {
    try {
      return isStale(root, now);
    } catch {
      return false;
    }
  });
  for (const root of stale) await cleanRoot(root);
  return stale;
}
