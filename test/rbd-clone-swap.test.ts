// Clone-swap restores on Ceph RBD (runner local), on the test Ceph with PostgreSQL on two RBD images
// (data and WAL): the image renamed aside and the backup's snapshot cloned under its name, the
// background flatten, and each hazard of ../shared/design/ceph-bluestore.md: a client still holding
// the image, snapshots that move with the renamed image, metadata copied by `rbd clone`, names
// never reused, a deleted snapshot kept in Ceph's trash for an unflattened clone, and the images
// set aside removed only once nothing needs them.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { backupFixture, type BackupFixture } from './harness/backupFixture';
import { testCeph, type TestCeph } from './harness/ceph';
import { scratchDir, testEnv } from './harness/testEnv';
import { attemptsByActivity, runThroughKills } from './harness/crashRuns';
import { withWorker, type WorkerProcess } from './harness/workers';
import { runCommand } from '../src/drivers/exec';
import { RbdSnapshotDriver } from '../src/drivers/storage/rbd';
import { detachRbdVolume, type RbdLocalVolume } from '../src/drivers/storage/rbdLocalAttach';
import { isSetAsideOf, setAsideName, swapImage } from '../src/drivers/storage/rbdSetAside';
import { RbdImageSet } from '../src/drivers/storage/rbdImageSet';
import type { RbdStorageConfig } from '../src/config/schema';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';
import type { DeleteBackupResult, ListBackupsResult } from '../src/workflows/backupCatalog';

describe('clone-swap restores on Ceph RBD (runner local)', () => {
  let fx: BackupFixture;
  let ceph: TestCeph;
  let storage: RbdStorageConfig;
  let data: RbdLocalVolume;
  const workers: WorkerProcess[] = [];
  const rbd = async (...args: string[]) => {
    const r = await runCommand('rbd', ['-c', ceph.conf, ...args], { timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`rbd ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  const spec = (v: RbdLocalVolume) => `${v.pool}/${v.image}`;
  const parentOf = async (image: string) =>
    (JSON.parse(await rbd('info', image, '--format', 'json')) as { parent?: { image: string; snapshot: string } })
      .parent;
  const imagesInPool = async () => JSON.parse(await rbd('ls', ceph.pool, '--format', 'json')) as string[];
  const setAsideOf = async (v: RbdLocalVolume) =>
    (await imagesInPool()).filter((name) => isSetAsideOf(v.image, name)).map((name) => `${v.pool}/${name}`);
  const metaKeys = async (image: string) =>
    Object.keys(JSON.parse((await rbd('image-meta', 'list', image, '--format', 'json')).trim() || '{}'));
  const backup = (extra: Record<string, unknown> = {}) =>
    fx.run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: fx.name, ...extra });
  const restore = (extra: Record<string, unknown>) =>
    fx.run<RollbackRestoreResult>('rollbackRestoreWorkflow', { cluster: fx.name, confirm: fx.name, ...extra });
  const list = () => fx.run<ListBackupsResult>('listBackupsWorkflow', { cluster: fx.name });
  /** The background flatten's result, with a worker to run it. */
  const flattenResult = async (workflowId: string) => {
    const { client } = await testEnv();
    return withWorker(fx.taskQueue, fx.catalogPath, () => client.workflow.getHandle(workflowId).result()) as Promise<{
      said: string[];
    }>;
  };

  before(async function () {
    this.timeout(180_000);
    fx = await backupFixture('clone-swap', { storage: 'rbd', waldir: true, rows: 3000, dataVolumeMB: 256 });
    ceph = await testCeph();
    storage = fx.storage as RbdStorageConfig;
    data = storage.volumes!.find((v) => fx.cluster.pgdata.startsWith(`${v.mountpoint}/`))!;
  });
  after(async function () {
    this.timeout(120_000);
    for (const w of workers) await w.kill();
    await fx?.teardown();
  });

  let first: SnapshotBackupResult;
  let atFirst: string;
  let afterChange: string;
  let restored: RollbackRestoreResult;

  it('restores by clone-swap by default: exact rows, the image set aside, the records on the volume only, flattened in the background', async function () {
    this.timeout(240_000);
    first = await backup({ label: 'first' });
    atFirst = await fx.checksum();
    await fx.sql('DELETE FROM orders WHERE id % 4 = 0');
    afterChange = await fx.checksum();
    assert.notEqual(afterChange, atFirst);

    restored = await restore({ backup: first.backup.id, flatten: 'never' });
    assert.equal(restored.rollback.method, 'clone-swap');
    assert.match(restored.rollback.methodNote ?? '', /fastest/);
    assert.equal(await fx.checksum(), atFirst, 'exactly the rows of the backup');
    assert.equal(restored.verified.inRecovery, false);

    // Each image (data and WAL) was renamed aside under a name of this restore, and a clone took its name.
    for (const v of storage.volumes!) {
      const aside = await setAsideOf(v);
      assert.equal(aside.length, 1, `${spec(v)} has one image set aside: ${aside.join(', ')}`);
      assert.deepEqual(await parentOf(spec(v)), {
        ...(await parentOf(spec(v)))!,
        image: aside[0]!.slice(v.pool.length + 1),
        snapshot: RbdImageSet.snapName(first.backup.id),
      });
      // `rbd clone` copied the records too: the image set aside drops its copies once the restore succeeded.
      assert.deepEqual(
        (await metaKeys(aside[0]!)).filter((k) => k.startsWith('pgops.backup.') || k.startsWith('pgops.deleting.')),
        [],
      );
    }
    assert.match(restored.released.join('\n'), /the state before this restore\) kept/);
    assert.deepEqual(restored.flatten?.images.sort(), storage.volumes!.map(spec).sort());
    assert.match(restored.flatten?.note ?? '', /not flattened/);

    // The earlier backup and the safety snapshot are listed once each, and resolve on the images set aside.
    const listed = await list();
    assert.deepEqual(listed.strays, []);
    assert.deepEqual(listed.backups.map((b) => b.id).sort(), [first.backup.id, restored.safetySnapshot!.id].sort());
    assert.ok((await metaKeys(spec(data))).includes(`pgops.backup.${first.backup.id}`));
    // The listing says where they live, and that the volumes are clones not yet flattened.
    const layout = listed.storage?.join('\n') ?? '';
    assert.match(layout, new RegExp(`${spec(data)} is a clone of .*@pgops-${first.backup.id}, not flattened yet`));
    assert.match(
      layout,
      new RegExp(`set aside by restore rollbackRestoreWorkflow.*holds backup\\(s\\) .*${first.backup.id}`),
    );
  });

  it('refuses to set an image aside while a client still has it open (rbd rename would not), and swaps once it is let go', async function () {
    this.timeout(120_000);
    // An image of its own with a snapshot, held open by rbd-fuse as another node's mapping would hold it.
    const held = `${ceph.pool}/held-${Date.now().toString(36)}`;
    await rbd('create', held, '--size', '64M');
    await rbd('snap', 'create', `${held}@pgops-snap`);
    const dir = join(await scratchDir('clone-swap-client'), 'fuse');
    mkdirSync(dir, { recursive: true });
    await new Promise<void>((resolve, reject) => {
      const child = spawn('rbd-fuse', ['-c', ceph.conf, '-p', ceph.pool, '-r', held.split('/')[1]!, dir], {
        stdio: 'ignore',
      });
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`rbd-fuse exited with ${code}`))));
    });
    const fuseFile = join(dir, held.split('/')[1]!);
    const holdOpen = async () => (await runCommand('losetup', ['-f', '--show', fuseFile])).stdout.trim();
    const step = { spec: held, snap: 'pgops-snap', holder: held, restoreId: 'test/held', backup: 'none' };
    const before = await imagesInPool();
    try {
      // rbd-fuse opens the image when its file is opened: a loop device on it, as the attach makes.
      const device = await holdOpen();
      assert.match(device, /^\/dev\/loop/);
      const err = await swapImage(ceph.rbd, step, { clientWaitMs: 1500 }).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      assert.match(String(err), /still open by 1 client/);
      assert.deepEqual(await imagesInPool(), before, 'nothing was renamed');
    } finally {
      await detachRbdVolume(ceph.rbd, {
        pool: ceph.pool,
        image: held.split('/')[1]!,
        mountpoint: join(dir, 'none'),
        fuseDir: dir,
      });
    }
    const swapped = await swapImage(ceph.rbd, step, { clientWaitMs: 1500 });
    assert.equal(swapped.setAside, `${ceph.pool}/${setAsideName(held.split('/')[1]!, 'test/held')}`);
    assert.equal(swapped.clonedFrom, `${swapped.setAside}@pgops-snap`);
    // A retry of the same swap (the caller finds the snapshot on the image set aside now) finds its work done.
    assert.deepEqual(await swapImage(ceph.rbd, { ...step, holder: swapped.setAside }), swapped);
    assert.equal((await parentOf(held))?.image, swapped.setAside.split('/')[1]);
  });

  it('undoes the restore from its safety snapshot by a second swap under a new name; earlier backups still restore', async function () {
    this.timeout(300_000);
    const undone = await restore({ backup: restored.safetySnapshot!.id, safetySnapshot: false, flatten: 'never' });
    assert.equal(undone.rollback.method, 'clone-swap');
    assert.equal(await fx.checksum(), afterChange, 'the state before the restore is back');
    const aside = await setAsideOf(data);
    assert.equal(aside.length, 2, `a second name, never the first one again: ${aside.join(', ')}`);
    // A chain: the volume is a clone of the first image set aside (the safety snapshot is on it)...
    assert.equal((await parentOf(spec(data)))?.snapshot, RbdImageSet.snapName(restored.safetySnapshot!.id));
    // ...and the second image set aside (the first restore's clone, never flattened) is a clone of it too.
    const parents = await Promise.all(aside.map((a) => parentOf(a)));
    assert.ok(
      parents.some((p) => p?.snapshot === RbdImageSet.snapName(first.backup.id)),
      "the first restore's clone, set aside, still reads the first backup",
    );

    // rollback asked for a backup whose snapshot is on an image set aside: it cannot reach it, so a clone-swap.
    const again = await restore({ backup: first.backup.id, safetySnapshot: false, restoreMethod: 'rollback' });
    assert.equal(again.rollback.method, 'clone-swap');
    assert.match(again.rollback.methodNote ?? '', /set aside by an earlier clone-swap/);
    assert.equal(await fx.checksum(), atFirst);
    // The background flatten ran (the default): the volume no longer reads from an image set aside.
    assert.ok(again.flatten?.workflowId, JSON.stringify(again.flatten));
    const flattened = await flattenResult(again.flatten!.workflowId!);
    assert.match(flattened.said.join('\n'), /flattened/);
    for (const v of storage.volumes!) assert.equal(await parentOf(spec(v)), undefined, `${spec(v)} is flat`);
  });

  it('rolls back when asked for a snapshot on the image itself, and says so', async function () {
    this.timeout(240_000);
    const second = await backup({ label: 'second' });
    const atSecond = await fx.checksum();
    await fx.sql("INSERT INTO orders VALUES (990001, 'after the second', 1)");
    const rolled = await restore({ backup: second.backup.id, safetySnapshot: false, restoreMethod: 'rollback' });
    assert.equal(rolled.rollback.method, 'rollback');
    assert.match(rolled.rollback.methods.join('\n'), /rbd snap rollback/);
    assert.equal(rolled.flatten, undefined);
    assert.equal(await fx.checksum(), atSecond);
  });

  it('deletes backups whose snapshots are on images set aside: trashed while a clone reads them, the image removed when nothing needs it', async function () {
    this.timeout(300_000);
    const third = await backup({ label: 'third' });
    const beforeThird = await fx.checksum();
    const swapped = await restore({ backup: third.backup.id, flatten: 'never' });
    assert.equal(swapped.rollback.method, 'clone-swap');
    const kept = swapped.safetySnapshot!.id;
    // Every backup but the newest safety snapshot: the one the clone reads (third) goes to Ceph's trash.
    for (const b of (await list()).backups.filter((b) => b.id !== kept)) {
      const result = await fx.run<DeleteBackupResult>('deleteBackupWorkflow', {
        cluster: fx.name,
        backup: b.id,
        confirm: fx.name,
      });
      assert.equal(result.deleted.id, b.id);
    }
    const after = await list();
    assert.deepEqual(
      after.backups.map((b) => b.id),
      [kept],
    );
    assert.deepEqual(after.strays, []);
    assert.match(after.storage?.join('\n') ?? '', /1 deleted snapshot\(s\) a clone still reads \(Ceph's trash\)/);
    const holder = `${data.pool}/${(await parentOf(spec(data)))!.image}`;
    const snapsOfHolder = async () =>
      (
        JSON.parse(await rbd('snap', 'ls', '--all', holder, '--format', 'json')) as Array<{
          name: string;
          namespace: { type: string };
        }>
      ).map((s) => (s.namespace.type === 'trash' ? 'trash' : s.name));
    assert.deepEqual(
      (await snapsOfHolder()).sort(),
      [RbdImageSet.snapName(kept), 'trash'].sort(),
      'the snapshot the clone reads is in the trash, not gone, beside the safety snapshot',
    );
    // The images set aside by the earlier restores held only deleted backups: removed with them.
    assert.deepEqual(await setAsideOf(data), [holder]);

    // The flatten: the clone no longer reads the trashed snapshot, and Ceph purges it.
    const driver = new RbdSnapshotDriver(storage, fx.cluster.pgdata);
    const said = await driver.flatten(swapped.flatten!.images);
    assert.match(said.join('\n'), /flattened/);
    assert.deepEqual(await snapsOfHolder(), [RbdImageSet.snapName(kept)]);
    // The safety snapshot still restores from the image set aside that holds it.
    await restore({ backup: kept, safetySnapshot: false, flatten: 'never' });
    assert.equal(await fx.checksum(), beforeThird);
    // Deleted too, its image set aside holds nothing: removed, once no clone reads it (after a flatten).
    await fx.run<DeleteBackupResult>('deleteBackupWorkflow', { cluster: fx.name, backup: kept, confirm: fx.name });
    await driver.flatten(storage.volumes!.map(spec));
    assert.deepEqual(await setAsideOf(data), []);
  });

  it('finishes a background flatten whose worker was SIGKILLed', async function () {
    this.timeout(300_000);
    const b = await backup({ label: 'flatten crash' });
    const swapped = await restore({ backup: b.backup.id, safetySnapshot: false, flatten: 'never' });
    const { result, handle } = await runThroughKills<{ said: string[] }>(
      fx,
      workers,
      'flattenVolumesWorkflow',
      { cluster: fx.name, images: swapped.flatten!.images, restoreId: 'test/flatten-crash' },
      [{ pause: 'flatten-started' }],
    );
    assert.ok((await attemptsByActivity(handle)).get('flattenVolumes')! >= 2);
    assert.match(result.said.join('\n'), /flattened/);
    for (const v of storage.volumes!) assert.equal(await parentOf(spec(v)), undefined);
  });
});
