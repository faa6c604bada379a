// A real Ceph cluster for the tests: one monitor and one memstore OSD from Debian's packages,
// on loopback and free ports, everything under the test run's directory
// (../shared/design/test-harness.md). Started once per run (about 5 s), stopped by PID at the end.
// PostgreSQL runs on real RBD images: rbd-fuse exposes the image, a loop device and ext4 sit on it.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../../src/drivers/exec';
import { freePort } from '../../src/dev/ports';
import { pollUntil } from '../../src/drivers/waiting';
import type { RbdStorageConfig } from '../../src/config/schema';
import { RbdCli } from '../../src/drivers/storage/rbdCli';
import { detachRbdVolume, fuseDirOf, type RbdLocalVolume } from '../../src/drivers/storage/rbdLocalAttach';
import { registerTeardown, testEnv } from './testEnv';

export interface TestCeph {
  conf: string;
  pool: string;
  rbd: RbdCli;
  storage(volumes: RbdLocalVolume[]): RbdStorageConfig;
  /** Creates an image, puts ext4 on it and mounts it at `mountpoint`. */
  createVolume(image: string, sizeMB: number, mountpoint: string): Promise<RbdLocalVolume>;
}

let started: Promise<TestCeph> | undefined;

async function must(file: string, args: string[]): Promise<string> {
  const result = await runCommand(file, args, { timeoutMs: 120_000 });
  if (result.code !== 0)
    throw new Error(`${file} ${args.join(' ')} failed: ${(result.stderr || result.stdout).trim()}`);
  return result.stdout.trim();
}

function daemon(file: string, args: string[]): ChildProcess {
  // Own process group, no pipes: a daemon holding our stdout would hang the caller.
  const child = spawn(file, args, { stdio: 'ignore', detached: true });
  child.unref();
  return child;
}

async function stopDaemon(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  // ceph-osd may ignore SIGTERM for seconds: escalate.
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

async function startCeph(): Promise<TestCeph> {
  const { root } = await testEnv();
  const dir = join(root, 'ceph');
  for (const sub of ['mon', 'osd0', 'run']) mkdirSync(join(dir, sub), { recursive: true });
  const fsid = randomUUID();
  const monAddr = `[v2:127.0.0.1:${await freePort()},v1:127.0.0.1:${await freePort()}]`;
  const conf = join(dir, 'ceph.conf');
  writeFileSync(
    conf,
    `[global]
fsid = ${fsid}
mon host = ${monAddr}
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
mon data avail warn = 2
osd crush chooseleaf type = 0
run dir = ${dir}/run
log file = ${dir}/$name.log
admin socket = ${dir}/run/$name.$pid.asok
osd objectstore = memstore
memstore device bytes = ${Number(process.env.PGOPS_TEST_CEPH_MEMSTORE_GB ?? 6) * 1024 ** 3}
[mon.a]
mon data = ${dir}/mon
[osd.0]
osd data = ${dir}/osd0
`,
  );
  const c = ['-c', conf];
  await must('ceph-authtool', [
    '--create-keyring',
    join(dir, 'mon.keyring'),
    '--gen-key',
    '-n',
    'mon.',
    '--cap',
    'mon',
    'allow *',
  ]);
  await must('monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', monAddr, join(dir, 'monmap')]);
  await must('ceph-mon', [
    ...c,
    '--mkfs',
    '-i',
    'a',
    '--monmap',
    join(dir, 'monmap'),
    '--keyring',
    join(dir, 'mon.keyring'),
  ]);
  const daemons: ChildProcess[] = [daemon('ceph-mon', [...c, '-i', 'a', '-f'])];
  const volumes: RbdLocalVolume[] = [];
  const rbd = new RbdCli((args, signal) => runCommand('rbd', [...c, ...args], { signal, timeoutMs: 300_000 }));
  registerTeardown(async () => {
    for (const volume of volumes) await detachRbdVolume(rbd, volume).catch(() => undefined);
    for (const d of daemons.reverse()) await stopDaemon(d);
  });
  const uuid = randomUUID();
  const id = await must('ceph', [...c, '--connect-timeout', '30', 'osd', 'new', uuid]);
  await must('ceph-osd', [...c, '-i', id, '--mkfs', '--osd-uuid', uuid]);
  daemons.push(daemon('ceph-osd', [...c, '-i', id, '-f']));
  await pollUntil(
    async () => {
      const stat = await runCommand('ceph', [...c, 'osd', 'stat'], { timeoutMs: 10_000 });
      return /1 up/.test(stat.stdout) ? { done: true } : { waiting: stat.stdout };
    },
    { intervalMs: 250, timeoutMs: 60_000, what: 'the test OSD to be up' },
  );
  const pool = 'pgops';
  await must('ceph', [...c, 'osd', 'pool', 'create', pool, '8']);
  await must('rbd', [...c, 'pool', 'init', pool]);
  return {
    conf,
    pool,
    rbd,
    storage: (vols) => ({ kind: 'rbd', runner: 'local', cephConf: conf, volumes: vols, preRestoreRetentionDays: 7 }),
    async createVolume(image, sizeMB, mountpoint) {
      const volume: RbdLocalVolume = { pool, image, mountpoint };
      await must('rbd', [...c, 'create', `${pool}/${image}`, '--size', `${sizeMB}M`]);
      const fuseDir = fuseDirOf(volume);
      mkdirSync(fuseDir, { recursive: true });
      mkdirSync(mountpoint, { recursive: true });
      await new Promise<void>((resolve, reject) => {
        const child = spawn('rbd-fuse', [...c, '-p', pool, '-r', image, fuseDir], { stdio: 'ignore' });
        child.once('error', reject);
        child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`rbd-fuse exited with ${code}`))));
      });
      volumes.push(volume);
      const device = await must('losetup', ['-f', '--show', join(fuseDir, image)]);
      await must('mkfs.ext4', ['-q', device]);
      await must('mount', [device, mountpoint]);
      return volume;
    },
  };
}

export function testCeph(): Promise<TestCeph> {
  started ??= startCeph();
  return started;
}
