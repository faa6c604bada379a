// A killed test run's leftovers (processes, mounts, loop devices) are cleaned by the next run;
// a run still going and a directory kept on purpose are not touched.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMountPoint } from '../src/drivers/storage/mounts';
import { claimTestDir, cleanStaleTestRuns, keepTestDir } from './harness/staleRuns';

function run(file: string, args: string[]): string {
  const r = spawnSync(file, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

function aliveProcess(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

describe('cleaning up after a killed test run', () => {
  const made: string[] = [];
  after(() => {
    for (const dir of made) {
      if (isMountPoint(join(dir, 'mnt'))) spawnSync('umount', ['-l', join(dir, 'mnt')]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("kills a dead run's daemons, unmounts its loop-mounted file system and detaches the device; leaves live and kept roots alone", async function () {
    this.timeout(60_000);
    // The dead run: its owner PID is a process that has exited.
    const gone = spawnSync('true').pid ?? 0;
    const dead = mkdtempSync(join(tmpdir(), 'pgops-test-'));
    const live = mkdtempSync(join(tmpdir(), 'pgops-test-'));
    const kept = mkdtempSync(join(tmpdir(), 'pgops-test-'));
    made.push(dead, live, kept);
    writeFileSync(join(dead, '.pgops-test-owner'), `${gone}\n`);
    claimTestDir(live);
    keepTestDir(kept);

    const image = join(dead, 'fs.img');
    run('truncate', ['-s', '64M', image]);
    const device = run('losetup', ['-f', '--show', image]);
    run('mkfs.ext4', ['-q', device]);
    mkdirSync(join(dead, 'mnt'));
    run('mount', [device, join(dead, 'mnt')]);
    // Daemons that name their run's root on the command line, as postgres -D or rbd-fuse do.
    const idle = (root: string) =>
      spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)', join(root, 'data')], { stdio: 'ignore' });
    const daemon = idle(dead);
    const liveDaemon = idle(live);
    try {
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(daemon.pid && aliveProcess(daemon.pid));
      const cleaned = await cleanStaleTestRuns();
      assert.ok(cleaned.includes(dead), `cleaned ${cleaned.join(', ')}`);
      assert.ok(!cleaned.includes(live) && !cleaned.includes(kept));
      assert.equal(isMountPoint(join(dead, 'mnt')), false, 'the file system is unmounted');
      assert.equal(run('losetup', ['--list', '--noheadings', '--output', 'NAME']).split('\n').includes(device), false);
      assert.equal(existsSync(dead), false, 'the root is removed');
      assert.ok(existsSync(live) && existsSync(kept));
      if (daemon.pid) assert.equal(aliveProcess(daemon.pid), false, "the dead run's process is killed");
      if (liveDaemon.pid) assert.equal(aliveProcess(liveDaemon.pid), true, "the live run's process runs on");
    } finally {
      liveDaemon.kill('SIGKILL');
      daemon.kill('SIGKILL');
      if (isMountPoint(join(dead, 'mnt'))) spawnSync('umount', ['-l', join(dead, 'mnt')]);
      spawnSync('losetup', ['-d', device]);
    }
  });
});
