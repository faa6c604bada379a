// Scratch clones on Ceph RBD (runner local): RbdSnapshotDriver.cloneSnapshots/removeClone against the
// test Ceph, with a real PostgreSQL on RBD images (data and WAL each on their own) and a backup of it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { backupFixture, type BackupFixture } from './harness/backupFixture';
import { testCeph, type TestCeph } from './harness/ceph';
import { scratchDir } from './harness/testEnv';
import { runCommand } from '../src/drivers/exec';
import { RbdSnapshotDriver } from '../src/drivers/storage/rbd';
import { detachRbdVolume, fuseDirOf, type RbdLocalVolume } from '../src/drivers/storage/rbdLocalAttach';
import { mountTable } from '../src/drivers/storage/mounts';
import type { RbdStorageConfig } from '../src/config/schema';
import type { ClonedVolumes, ClonePlacement } from '../src/drivers/storage/types';
import type { BackupRecord } from '../src/contract/backups';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';

async function must(file: string, args: string[]): Promise<string> {
  const result = await runCommand(file, args, { timeoutMs: 120_000 });
  if (result.code !== 0)
    throw new Error(`${file} ${args.join(' ')} failed: ${(result.stderr || result.stdout).trim()}`);
  return result.stdout;
}

interface SnapEntry {
  name: string;
  protected: string;
  namespace: { type: string; original_name?: string };
}

describe('scratch clones on Ceph RBD (runner local)', () => {
  let fx: BackupFixture;
  let ceph: TestCeph;
  let storage: RbdStorageConfig;
  let driver: RbdSnapshotDriver;
  let place: ClonePlacement;
  let backup: BackupRecord;
  let cloned: ClonedVolumes;
  let rowsBefore: string;
  const rbd = (...args: string[]) => must('rbd', ['-c', ceph.conf, ...args]);
  const snapsOf = async (spec: string) =>
    JSON.parse(await rbd('snap', 'ls', '--all', spec, '--format', 'json')) as SnapEntry[];
  const imageOf = (role: string) => {
    const snap = backup.snapshots.find((s) => s.role === role)!;
    return storage.volumes!.find((v) => `${v.pool}/${v.image}` === snap.source)!;
  };
  const spec = (v: RbdLocalVolume) => `${v.pool}/${v.image}`;
  /** md5 of the whole snapshot, read by a fresh client. */
  const snapshotMd5 = async (v: RbdLocalVolume) =>
    (
      await must('bash', [
        '-o',
        'pipefail',
        '-c',
        `rbd -c ${ceph.conf} export --no-progress ${spec(v)}@pgops-${backup.id} - | md5sum`,
      ])
    ).split(' ')[0];
  const mountsBelow = (dir: string) => mountTable().filter((m) => m.mountpoint.startsWith(`${dir}/`));
  const clonesIn = async (pool: string) =>
    (JSON.parse(await rbd('ls', pool, '--format', 'json')) as string[]).filter((i) => i.endsWith(place.id));
  const volume = (role: string) => cloned.volumes.find((v) => v.role === role)!;
  /** PGDATA in the clone: at the same place below the clone's root as below the image's mount point. */
  const clonePgdata = () => join(volume('data').path, relative(volume('data').source, fx.cluster.pgdata));

  before(async function () {
    this.timeout(180_000);
    fx = await backupFixture('scratch-rbd', { storage: 'rbd', waldir: true, rows: 2000, dataVolumeMB: 256 });
    ceph = await testCeph();
    storage = fx.storage as RbdStorageConfig;
    driver = new RbdSnapshotDriver(storage, fx.cluster.pgdata);
    place = { id: 'pgops-scratch-5c7a7c4e', dir: await scratchDir('scratch-rbd-place') };
    backup = (await fx.run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: fx.name })).backup;
    rowsBefore = await fx.checksum();
  });
  after(async function () {
    this.timeout(120_000);
    await driver?.removeClone(place).catch((err: unknown) => console.error('removeClone in after():', err));
    await fx?.teardown();
  });

  it('clones each snapshot into a writable copy mounted below the scratch directory, production untouched', async function () {
    this.timeout(120_000);
    const data = imageOf('data');
    const wal = imageOf('wal');
    const prodSnaps = [await snapsOf(spec(data)), await snapsOf(spec(wal))];
    const md5Before = await snapshotMd5(data);
    const autoConf = join(fx.cluster.pgdata, 'postgresql.auto.conf');
    const autoConfBefore = readFileSync(autoConf, 'utf8');
    const progress: string[] = [];

    cloned = await driver.cloneSnapshots(backup, place, { onProgress: (d) => progress.push(d) });

    assert.equal(cloned.volumes.length, 2);
    assert.deepEqual(volume('data'), {
      role: 'data',
      source: data.mountpoint,
      clone: `${data.pool}/${data.image}-${place.id}`,
      path: join(place.dir, 'mnt-0'),
    });
    assert.equal(volume('wal').source, wal.mountpoint);
    assert.equal(volume('wal').clone, `${wal.pool}/${wal.image}-${place.id}`);
    assert.equal(
      readFileSync(join(clonePgdata(), 'PG_VERSION'), 'utf8'),
      readFileSync(join(fx.cluster.pgdata, 'PG_VERSION'), 'utf8'),
    );
    // pg_wal links to the WAL image: the same directory is below the WAL clone's root, with segments.
    const walDir = readlinkSync(join(fx.cluster.pgdata, 'pg_wal'));
    const walInClone = join(volume('wal').path, relative(wal.mountpoint, walDir));
    assert.ok(
      readdirSync(walInClone).some((f) => /^[0-9A-F]{24}$/.test(f)),
      `WAL segments in ${walInClone}`,
    );
    assert.equal(cloned.methods.length, 2);
    for (const line of cloned.methods)
      assert.match(
        line,
        new RegExp(
          `^rbd clone \\S+@pgops-${backup.id} → \\S+-${place.id} \\(format 2\\), mounted on ${place.dir}/mnt-\\d$`,
        ),
      );
    // Real clones, format 2 (clone-child), of the backup's snapshots.
    for (const v of cloned.volumes) {
      const info = JSON.parse(await rbd('info', v.clone, '--format', 'json')) as {
        op_features: string[];
        parent?: { image: string; snapshot: string };
      };
      assert.ok(info.op_features.includes('clone-child'), `${v.clone} is a v2 clone`);
      assert.equal(info.parent?.snapshot, `pgops-${backup.id}`);
      assert.equal(mountTable().filter((m) => m.mountpoint === v.path).length, 1, `${v.path} mounted once`);
    }
    assert.ok(progress.some((p) => p.startsWith('rbd clone ')));

    // Writable, and only the copy changes: a new file and an existing file rewritten.
    writeFileSync(join(clonePgdata(), 'scratch-only.txt'), 'written in the clone');
    writeFileSync(join(clonePgdata(), 'postgresql.auto.conf'), '# the clone only\n');
    await must('sync', ['-f', join(clonePgdata(), 'scratch-only.txt')]);
    assert.equal(existsSync(join(fx.cluster.pgdata, 'scratch-only.txt')), false);
    assert.equal(readFileSync(autoConf, 'utf8'), autoConfBefore);
    assert.equal(await fx.checksum(), rowsBefore);
    assert.equal(await snapshotMd5(data), md5Before, 'the snapshot is unchanged');
    assert.deepEqual(
      [await snapsOf(spec(data)), await snapsOf(spec(wal))],
      prodSnaps,
      'no snapshot protected, added or removed',
    );
    assert.equal(prodSnaps[0]!.find((s) => s.name === `pgops-${backup.id}`)?.protected, 'false');
    // The clones are not taken for backups or strays.
    assert.deepEqual(await driver.strayIds(), []);
    assert.deepEqual(
      (await driver.listRecords()).map((r) => r.id),
      [backup.id],
    );
  });

  it('finishes the same clone after a crash anywhere, and redoes a half-made one', async function () {
    this.timeout(120_000);
    const first = cloned;
    const marker = join(clonePgdata(), 'scratch-only.txt');
    const again = async () => {
      const progress: string[] = [];
      const result = await driver.cloneSnapshots(backup, place, { onProgress: (d) => progress.push(d) });
      assert.deepEqual(result, first);
      for (const v of result.volumes) assert.equal(mountTable().filter((m) => m.mountpoint === v.path).length, 1);
      return progress;
    };
    // Mapped (rbd-fuse, loop) but not mounted.
    await must('umount', [volume('data').path]);
    await again();
    assert.ok(existsSync(marker), 'the same clone, with what was written to it');
    // Cloned but not attached at all.
    const dataClone: RbdLocalVolume = {
      pool: imageOf('data').pool,
      image: volume('data').clone.split('/')[1]!,
      mountpoint: volume('data').path,
      fuseDir: join(place.dir, 'rbd-fuse-0'),
    };
    await detachRbdVolume(ceph.rbd, dataClone);
    await again();
    assert.ok(existsSync(marker), 'the same clone, with what was written to it');
    // Already whole: nothing is redone.
    assert.ok(!(await again()).some((p) => p.startsWith('rbd clone') || p.startsWith('rbd rm')));
    // `rbd clone` interrupted: the image is there without the mark it gets once whole.
    const walClone: RbdLocalVolume = {
      pool: imageOf('wal').pool,
      image: volume('wal').clone.split('/')[1]!,
      mountpoint: volume('wal').path,
      fuseDir: join(place.dir, 'rbd-fuse-1'),
    };
    writeFileSync(join(walClone.mountpoint, 'half-made.txt'), 'x');
    await detachRbdVolume(ceph.rbd, walClone);
    await ceph.rbd.removeMetadata(spec(walClone), 'pgops.scratch-clone');
    const progress = await again();
    assert.ok(
      progress.some((p) => p.includes('half-made')),
      progress.join('\n'),
    );
    assert.equal(
      existsSync(join(walClone.mountpoint, 'half-made.txt')),
      false,
      'the half-made clone was redone from the snapshot',
    );
    assert.ok(existsSync(marker), 'the whole data clone was kept');
  });

  it('deletes a backup under a live clone: Ceph keeps the snapshot in its trash until the clone goes', async function () {
    this.timeout(60_000);
    const data = imageOf('data');
    const progress: string[] = [];
    await driver.deleteBackup(backup.id, { onProgress: (d) => progress.push(d) });
    assert.ok(
      progress.some((p) => p.includes(`has the clone(s) ${volume('data').clone}`) && p.includes('trash')),
      progress.join('\n'),
    );
    assert.deepEqual(await driver.listRecords(), []);
    assert.deepEqual(await driver.listBeingDeleted(), []);
    assert.deepEqual(await driver.strayIds(), []);
    const snaps = await snapsOf(spec(data));
    assert.ok(!snaps.some((s) => s.name === `pgops-${backup.id}`));
    assert.ok(snaps.some((s) => s.namespace.type === 'trash' && s.namespace.original_name === `pgops-${backup.id}`));
    // The clone still reads its parent's data: through a fresh client, and through the mount.
    await must('bash', [
      '-o',
      'pipefail',
      '-c',
      `rbd -c ${ceph.conf} export --no-progress ${volume('data').clone} - | wc -c`,
    ]);
    writeFileSync('/proc/sys/vm/drop_caches', '3');
    assert.match(readFileSync(join(clonePgdata(), 'PG_VERSION'), 'utf8'), /^\d+\n$/);
    assert.ok(readdirSync(join(clonePgdata(), 'base')).length > 0);
  });

  it('removes the clone: no image, mount, loop device or directory left, the trashed snapshot purged; again, nothing', async function () {
    this.timeout(60_000);
    // One clone's mark lost while it is attached: still found (by name), and detached where rbd-fuse shows it.
    await ceph.rbd.removeMetadata(volume('wal').clone, 'pgops.scratch-clone');
    await driver.removeClone(place);
    const check = async () => {
      assert.deepEqual(await clonesIn(imageOf('data').pool), []);
      assert.deepEqual(mountsBelow(place.dir), []);
      assert.doesNotMatch(await must('losetup', ['-a']), new RegExp(place.dir));
      assert.deepEqual(readdirSync(place.dir), []);
      assert.deepEqual(await snapsOf(spec(imageOf('data'))), [], 'the trashed snapshot went with its last clone');
    };
    await check();
    const started = Date.now();
    await driver.removeClone(place);
    await check();
    assert.ok(Date.now() - started < 10_000);
    // Production is as it was, and still in use.
    assert.equal(await fx.checksum(), rowsBefore);
    assert.ok(mountTable().some((m) => m.mountpoint === imageOf('data').mountpoint));
  });

  it('mounts the clone of an XFS image beside its mounted source (same UUID: nouuid)', async function () {
    this.timeout(90_000);
    const dir = await scratchDir('scratch-rbd-xfs');
    const source: RbdLocalVolume = {
      pool: ceph.pool,
      image: `xfs-${Math.random().toString(36).slice(2, 8)}`,
      mountpoint: join(dir, 'xfs'),
    };
    const xfsPlace: ClonePlacement = { id: 'pgops-scratch-0000beef', dir: join(dir, 'scratch') };
    const xfsStorage = ceph.storage([source]);
    const xdriver = new RbdSnapshotDriver(xfsStorage, join(source.mountpoint, 'data'));
    await rbd('create', spec(source), '--size', '320M');
    try {
      mkdirSync(fuseDirOf(source), { recursive: true });
      mkdirSync(source.mountpoint, { recursive: true });
      // rbd-fuse daemonizes: no pipes, or this waits for the daemon.
      const fuse = spawn('rbd-fuse', ['-c', ceph.conf, '-p', source.pool, '-r', source.image, fuseDirOf(source)], {
        stdio: 'ignore',
      });
      assert.equal(await new Promise((r) => fuse.once('exit', r)), 0);
      const device = (await must('losetup', ['-f', '--show', join(fuseDirOf(source), source.image)])).trim();
      await must('mkfs.xfs', ['-q', device]);
      await must('mount', [device, source.mountpoint]);
      mkdirSync(join(source.mountpoint, 'data'));
      writeFileSync(join(source.mountpoint, 'data', 'hello'), 'xfs');
      const refs = await xdriver.createSnapshots(
        'xfs-backup',
        [{ role: 'data', path: join(source.mountpoint, 'data') }],
        { online: false },
      );
      const record: BackupRecord = { ...backup, id: 'xfs-backup', snapshots: refs };
      const xcloned = await xdriver.cloneSnapshots(record, xfsPlace);
      const mounted = mountTable().find((m) => m.mountpoint === xcloned.volumes[0]!.path);
      assert.equal(mounted?.type, 'xfs');
      assert.equal(readFileSync(join(xcloned.volumes[0]!.path, 'data', 'hello'), 'utf8'), 'xfs');
      assert.ok(
        mountTable().some((m) => m.mountpoint === source.mountpoint),
        'the source stays mounted',
      );
      await xdriver.removeClone(xfsPlace);
      assert.deepEqual(mountsBelow(xfsPlace.dir), []);
    } finally {
      await xdriver.removeClone(xfsPlace).catch(() => undefined);
      await detachRbdVolume(ceph.rbd, source).catch(() => undefined);
      await rbd('snap', 'purge', '--no-progress', spec(source)).catch(() => undefined);
      await rbd('rm', '--no-progress', spec(source)).catch(() => undefined);
    }
  });
});
