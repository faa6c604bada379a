// Ceph RBD snapshots with `rbd` run on the worker host (runner: local), for a local target whose
// data directory is on RBD images the worker mounts (rbd-fuse + loop + ext4): docs/runbooks/snapshot-backup.md's
// `rbd snap create replicapool/<image>@<snap>` and `rbd snap rollback`. Snapshot naming and the
// backup record (image metadata) are shared with the toolbox runner (rbdImageSet.ts). Scratch clones
// are RBD clones (format 2) of the snapshots, attached the same way below the scratch instance's directory.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, relative, isAbsolute } from 'node:path';
import type { RbdStorageConfig } from '../../config/schema';
import { runCommand } from '../exec';
import { PermanentDriverError, type WaitOptions } from '../cluster/types';
import { RbdCli } from './rbdCli';
import { attachRbdVolume, cephArgs, detachRbdVolume, fuseDirOf, type RbdLocalVolume } from './rbdLocalAttach';
import { RBD_DELETING_PREFIX, RBD_META_PREFIX, RbdImageSet } from './rbdImageSet';
import { dropCopiedRecords, setAsideName, swapImage } from './rbdSetAside';
import { flattenImage } from './rbdFlatten';
import { mountAt } from './mounts';
import { pauseForTests } from '../testPause';
import type {
  DeleteOptions,
  SnapshotDriver,
  SnapshotOptions,
  SnapshotPlan,
  ClonedVolumes,
  ClonePlacement,
  RollbackOptions,
} from './types';
import type { VolumesRolledBack } from '../../contract/operations/restoreSteps';
import type { BackupBeingDeleted, BackupRecord, DatabaseVolume, SnapshotRef } from '../../contract/backups';

export class RbdSnapshotDriver implements SnapshotDriver {
  readonly kind = 'rbd' as const;
  private readonly rbd: RbdCli;
  private imageSet?: RbdImageSet;

  constructor(
    private readonly storage: RbdStorageConfig,
    private readonly pgdata: string,
  ) {
    if (storage.runner !== 'local' || !storage.volumes)
      throw new PermanentDriverError(
        'storage kind "rbd" with runner "toolbox" needs a kubernetes target; use runner "local" with volumes',
      );
    const args = cephArgs(storage);
    this.rbd = new RbdCli((rbdArgs, signal) =>
      runCommand('rbd', [...args, ...rbdArgs], { signal, timeoutMs: 600_000 }),
    );
  }

  /** Made on first use: PGDATA outside every image is reported by plan() with its reason first. */
  private get set(): RbdImageSet {
    this.imageSet ??= new RbdImageSet(this.rbd, this.spec(this.recordImage), async () =>
      this.images.map((v) => this.spec(v)),
    );
    return this.imageSet;
  }

  private get images(): RbdLocalVolume[] {
    return this.storage.volumes ?? [];
  }

  private spec(volume: RbdLocalVolume): string {
    return `${volume.pool}/${volume.image}`;
  }

  /** The image whose mount point holds PGDATA: it carries the backup records. */
  private get recordImage(): RbdLocalVolume {
    const image = this.imageHolding(this.pgdata);
    if (!image) throw new PermanentDriverError(`PGDATA ${this.pgdata} is not below any storage.volumes mountpoint`);
    return image;
  }

  private imageHolding(path: string): RbdLocalVolume | undefined {
    return this.images.find((v) => {
      const rel = relative(v.mountpoint, path);
      return !rel.startsWith('..') && !isAbsolute(rel);
    });
  }

  async plan(volumes: DatabaseVolume[]): Promise<SnapshotPlan> {
    const methods: string[] = [];
    for (const volume of volumes) {
      const image = this.imageHolding(volume.path);
      if (!image)
        throw new PermanentDriverError(
          `the ${volume.role} directory ${volume.path} is not on any RBD image of storage.volumes (${this.images.map((v) => v.mountpoint).join(', ')}): its snapshot would not be consistent with the others. Add its image to storage.volumes.`,
        );
      if (!mountAt(image.mountpoint))
        throw new PermanentDriverError(`${this.spec(image)} is not mounted on ${image.mountpoint}`);
      methods.push(`${volume.role} ${volume.path}: rbd snapshot of ${this.spec(image)}`);
    }
    return { volumes, methods };
  }

  private imagesFor(
    volumes: DatabaseVolume[],
  ): Array<{ image: RbdLocalVolume; spec: string; role: DatabaseVolume['role'] }> {
    const seen = new Map<string, { image: RbdLocalVolume; spec: string; role: DatabaseVolume['role'] }>();
    for (const volume of volumes) {
      const image = this.imageHolding(volume.path);
      if (image && !seen.has(this.spec(image)))
        seen.set(this.spec(image), { image, spec: this.spec(image), role: volume.role });
    }
    return [...seen.values()];
  }

  async createSnapshots(id: string, volumes: DatabaseVolume[], opts: SnapshotOptions): Promise<SnapshotRef[]> {
    const images = this.imagesFor(volumes);
    await this.set.prepare(id, images, opts.signal);
    // Freezing flushes the file system and holds writes for the instant of the snapshots, so every
    // image is taken at one file-system-consistent point (files not flushed could come back zeroed).
    const frozen: string[] = [];
    try {
      for (const { image } of images) {
        const result = await runCommand('fsfreeze', ['-f', image.mountpoint], { timeoutMs: 60_000 });
        if (result.code !== 0) throw new Error(`fsfreeze -f ${image.mountpoint} failed: ${result.stderr.trim()}`);
        frozen.push(image.mountpoint);
      }
      await pauseForTests('frozen', opts.signal);
      await this.set.snapshot(id, images, opts.onProgress, opts.signal);
    } finally {
      for (const mountpoint of frozen) await runCommand('fsfreeze', ['-u', mountpoint]);
    }
    return this.set.verify(id, images, (image) => image.spec);
  }

  /** A file system left frozen by a crashed attempt blocks PostgreSQL (even pg_backup_start's checkpoint). */
  async recoverFromCrash(): Promise<void> {
    for (const image of this.images) {
      if (mountAt(image.mountpoint)) await runCommand('fsfreeze', ['-u', image.mountpoint]);
    }
  }

  saveRecord(record: BackupRecord): Promise<void> {
    return this.set.saveRecord(record);
  }

  listRecords(): Promise<BackupRecord[]> {
    return this.set.listRecords();
  }

  listBeingDeleted(): Promise<BackupBeingDeleted[]> {
    return this.set.listBeingDeleted();
  }

  strayIds(): Promise<string[]> {
    return this.set.strayIds();
  }

  /**
   * A snapshot with scratch clones is deleted too: Ceph moves it to its trash namespace, where the
   * clones keep reading it, and purges it when the last clone is removed. Until then it keeps its space.
   */
  async deleteBackup(id: string, opts: DeleteOptions = {}): Promise<void> {
    const snap = RbdImageSet.snapName(id);
    for (const configured of this.images.map((v) => this.spec(v))) {
      const spec = await this.set.locate(configured, snap);
      if (!spec) continue;
      const clones = await this.rbd.children(spec, snap);
      if (clones.length)
        opts.onProgress?.(
          `${spec}@${snap} has the clone(s) ${clones.join(', ')} (a scratch instance, or the volume's image after a clone-swap restore not yet flattened): Ceph keeps the snapshot in its trash, and its space, until they are removed or flattened`,
        );
    }
    return this.set.deleteBackup(id, opts);
  }

  private configuredImage(record: BackupRecord, spec: string): RbdLocalVolume {
    const image = this.images.find((v) => this.spec(v) === spec);
    if (!image)
      throw new PermanentDriverError(`backup ${record.id} has a snapshot of ${spec}, which is not in storage.volumes`);
    return image;
  }

  async describeLayout(): Promise<string[]> {
    const records = await this.set.listRecords();
    const lines: string[] = [];
    for (const image of this.images) lines.push(...(await this.set.describeLineage(this.spec(image), records)));
    return lines;
  }

  restoreMethodProblem(): string | undefined {
    return undefined;
  }

  async rollback(record: BackupRecord, opts: RollbackOptions): Promise<VolumesRolledBack> {
    const started = Date.now();
    const snaps = (await this.set.snapshotsOf(record)).map(({ spec, snap, holder }) => ({
      image: this.configuredImage(record, spec),
      snap,
      holder,
      features: undefined as string[] | undefined,
    }));
    const { method, note } = await this.chooseMethod(snaps, opts);
    opts.onProgress?.(`${method}: ${note}`);
    // As a kubelet would: nothing may hold the image while it is rolled back or renamed.
    await Promise.all(
      snaps.map(({ image }) => {
        opts.onProgress?.(`detaching ${this.spec(image)} from ${image.mountpoint}`);
        return detachRbdVolume(this.rbd, image, opts.signal);
      }),
    );
    // A crash test kills the worker here: the images detached, not yet rolled back.
    await pauseForTests('rollback-detached', opts.signal);
    if (method === 'rollback') {
      for (const { image, snap } of snaps) {
        opts.onProgress?.(`rbd snap rollback ${this.spec(image)}@${snap}`);
        await this.rbd.rollback(this.spec(image), snap, opts.signal);
      }
      for (const { image } of snaps) await attachRbdVolume(this.storage, image, opts.signal);
      return {
        ms: Date.now() - started,
        method,
        methodNote: note,
        methods: snaps.map(({ image, snap }) => `rbd snap rollback ${this.spec(image)}@${snap}`),
      };
    }
    // Each image on its own: they are independent, and each swap is a few calls to the cluster.
    const swapped = await Promise.all(
      snaps.map(({ image, snap, holder, features }) =>
        swapImage(
          this.rbd,
          { spec: this.spec(image), snap, holder, features, restoreId: opts.restoreId, backup: record.id },
          opts,
        ),
      ),
    );
    await Promise.all(snaps.map(({ image }) => attachRbdVolume(this.storage, image, opts.signal)));
    return {
      ms: Date.now() - started,
      method,
      methodNote: note,
      methods: swapped.map(
        (s) => `clone-swap: ${s.spec} set aside as ${s.setAside}; ${s.spec} is now a clone of ${s.clonedFrom}`,
      ),
      flatten: swapped.map((s) => s.spec),
      flattenByDefault: this.storage.flatten ?? 'background',
    };
  }

  /** The restore method for these snapshots: what was asked, or (auto) the fastest one that can be used. */
  private async chooseMethod(
    snaps: Array<{ image: RbdLocalVolume; snap: string; holder: string; features?: string[] }>,
    opts: RollbackOptions,
  ): Promise<{ method: 'rollback' | 'clone-swap'; note: string }> {
    const asked = opts.method ?? this.storage.restoreMethod ?? 'auto';
    const pools = new Set(snaps.map(({ image }) => image.pool));
    for (const pool of pools) {
      const names = await this.rbd.listImages(pool);
      const begun = snaps.find(({ image }) => names.includes(setAsideName(image.image, opts.restoreId)));
      if (begun)
        return { method: 'clone-swap', note: `this restore's clone-swap was under way (${this.spec(begun.image)})` };
    }
    const elsewhere = snaps.find(({ image, holder }) => holder !== this.spec(image));
    if (elsewhere && asked === 'rollback')
      return {
        method: 'clone-swap',
        note: `the snapshot is on ${elsewhere.holder}, set aside by an earlier clone-swap restore: rbd snap rollback of ${this.spec(elsewhere.image)} cannot reach it`,
      };
    if (asked === 'rollback') return { method: 'rollback', note: 'asked for (restoreMethod rollback)' };
    for (const snap of snaps) {
      const { image } = snap;
      const { features } = await this.rbd.info(this.spec(image));
      snap.features = features;
      if (features.includes('layering')) continue;
      const why = `${this.spec(image)} has no layering feature, so it cannot be cloned`;
      if (asked === 'clone-swap' || elsewhere)
        throw new PermanentDriverError(`a clone-swap restore is needed but ${why}`);
      return { method: 'rollback', note: `${why}: rbd snap rollback (its time grows with the image's size)` };
    }
    return {
      method: 'clone-swap',
      note:
        asked === 'clone-swap'
          ? 'asked for (restoreMethod clone-swap)'
          : 'the fastest: renaming and cloning take the same time at any size, where a rollback rewrites every object',
    };
  }

  /**
   * Flattens each clone a clone-swap left (rbd flatten: it copies what the clone still reads from
   * the image set aside, reporting the percentage), then removes images set aside that hold nothing.
   * Resumable: objects already copied stay; an image with no parent is done.
   */
  async flatten(
    images: string[],
    opts: WaitOptions & { onPercent?: (image: string, percent: number) => void } = {},
  ): Promise<string[]> {
    const said: string[] = [];
    for (const spec of images) {
      const pool = spec.slice(0, spec.indexOf('/'));
      if (!(await this.rbd.listImages(pool)).includes(spec.slice(pool.length + 1))) {
        said.push(`${spec} is gone: nothing to flatten`);
        continue;
      }
      const { parent } = await this.rbd.info(spec);
      if (parent) {
        opts.onProgress?.(`rbd flatten ${spec} (a clone of ${parent})`);
        // A crash test kills the worker here: the flatten about to begin (or begun before, and resumed).
        await pauseForTests('flatten-started', opts.signal);
        const ms = await flattenImage(this.storage, spec, (p) => opts.onPercent?.(spec, p), opts.signal);
        said.push(`flattened ${spec} in ${(ms / 1000).toFixed(1)} s: it no longer reads from ${parent}`);
      }
      for (const line of await this.set.pruneSetAside(spec, opts.signal)) said.push(line);
    }
    return said;
  }

  /** After a clone-swap restore succeeded: the images set aside drop their copies of the backup records. */
  async releaseReplaced(restoreId: string): Promise<string[]> {
    const said: string[] = [];
    for (const image of this.images) {
      const spec = this.spec(image);
      const aside = `${image.pool}/${setAsideName(image.image, restoreId)}`;
      if (!(await this.set.lineage(spec)).includes(aside)) continue;
      const dropped = await dropCopiedRecords(this.rbd, aside, restoreId, [RBD_META_PREFIX, RBD_DELETING_PREFIX]);
      if (dropped === undefined) continue;
      said.push(
        `${aside} (the state before this restore) kept: it holds the earlier backups' snapshots${dropped ? `; its ${dropped} copied backup record(s) dropped` : ''}`,
      );
    }
    return said;
  }

  /** Attaches every image (before a start, after a crash between detach and attach). */
  async attachAll(signal?: AbortSignal): Promise<void> {
    for (const image of this.images) await attachRbdVolume(this.storage, image, signal);
  }

  /**
   * An RBD clone (format 2) of each snapshot of the backup, named <image>-<place.id> in the image's
   * pool, attached as the images are (rbd-fuse, loop, mount) on <place.dir>/mnt-<n>. The production
   * images and their snapshots are only read. A clone is marked (image-meta) once `rbd clone` has
   * returned: a retry keeps a marked one and attaches it, and removes and redoes an unmarked one.
   */
  async cloneSnapshots(record: BackupRecord, place: ClonePlacement, opts: WaitOptions = {}): Promise<ClonedVolumes> {
    const volumes: ClonedVolumes['volumes'] = [];
    const methods: string[] = [];
    for (const [n, { spec, snap, holder }] of (await this.set.snapshotsOf(record)).entries()) {
      const image = this.configuredImage(record, spec);
      const clone: RbdLocalVolume = {
        pool: image.pool,
        image: cloneImageName(image.image, place.id),
        mountpoint: join(place.dir, `mnt-${n}`),
        fuseDir: join(place.dir, `rbd-fuse-${n}`),
      };
      const parent = `${holder}@${snap}`;
      await this.makeClone(holder, snap, clone, place.id, opts);
      opts.onProgress?.(`attaching ${this.spec(clone)} on ${clone.mountpoint}`);
      await attachRbdVolume(this.storage, clone, opts.signal, true);
      volumes.push({
        role: record.snapshots.find((s) => s.source === spec)?.role ?? 'data',
        source: image.mountpoint,
        clone: this.spec(clone),
        path: clone.mountpoint,
      });
      methods.push(`rbd clone ${parent} → ${this.spec(clone)} (format 2), mounted on ${clone.mountpoint}`);
    }
    return { volumes, methods };
  }

  private async makeClone(
    parentImage: string,
    snap: string,
    clone: RbdLocalVolume,
    id: string,
    opts: WaitOptions,
  ): Promise<void> {
    const spec = this.spec(clone);
    const parent = `${parentImage}@${snap}`;
    if ((await this.rbd.listImages(clone.pool)).includes(clone.image)) {
      const mark = await this.cloneMark(spec);
      if (mark?.id === id && mark.parent === parent && mark.mountpoint === clone.mountpoint) return;
      // Attached a second time elsewhere, one file system would be mounted twice.
      if (mark)
        throw new PermanentDriverError(
          `${spec} is already the clone of ${mark.parent} for ${mark.id} on ${mark.mountpoint}, not of ${parent} for ${id} on ${clone.mountpoint}`,
        );
      // Never attached (that comes after the mark): nothing holds it.
      opts.onProgress?.(`rbd rm ${spec}, left half-made by an interrupted clone`);
      await this.rbd.removeImage(spec, opts.signal);
    }
    opts.onProgress?.(`rbd clone ${parent} → ${spec}`);
    await this.rbd.clone(parentImage, snap, spec, opts.signal);
    const mark: CloneMark = { id, parent, mountpoint: clone.mountpoint, fuseDir: fuseDirOf(clone) };
    await this.rbd.setMetadata(spec, CLONE_MARK, JSON.stringify(mark));
  }

  /** Where rbd-fuse exposes `image` below `dir` (rbd-fuse-<n>), with the mount point that goes with it (mnt-<n>). */
  private attachedBelow(dir: string, image: string): Array<{ mountpoint: string; fuseDir: string }> {
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((e) => /^rbd-fuse-\d+$/.test(e) && mountAt(join(dir, e)) && existsSync(join(dir, e, image)))
      .map((e) => ({ fuseDir: join(dir, e), mountpoint: join(dir, e.replace('rbd-fuse-', 'mnt-')) }));
  }

  /** The mark of a finished clone; undefined for one left half-made (unmarked, or without a header to read). */
  private async cloneMark(spec: string): Promise<CloneMark | undefined> {
    const value = (await this.rbd.listMetadataIfExists(spec))?.[CLONE_MARK];
    return value ? (JSON.parse(value) as CloneMark) : undefined;
  }

  /**
   * Detaches and deletes the clones of `place.id`, found by their name and mark in the pools of
   * storage.volumes (so that nothing but the images is needed), then removes the mount directories.
   */
  async removeClone(place: ClonePlacement, opts: WaitOptions = {}): Promise<void> {
    for (const pool of new Set(this.images.map((v) => v.pool))) {
      const ours = new Set(this.images.filter((v) => v.pool === pool).map((v) => cloneImageName(v.image, place.id)));
      for (const image of await this.rbd.listImages(pool)) {
        if (!image.endsWith(`-${place.id}`)) continue;
        const spec = `${pool}/${image}`;
        const mark = await this.cloneMark(spec);
        if (mark && mark.id !== place.id) continue;
        if (!mark && !ours.has(image)) continue;
        // An unmarked one was never attached, unless its mark was lost: then rbd-fuse shows it below place.dir.
        const attachedAt = mark ? [mark] : this.attachedBelow(place.dir, image);
        for (const { mountpoint, fuseDir } of attachedAt) {
          opts.onProgress?.(`detaching ${spec} from ${mountpoint}`);
          await detachRbdVolume(this.rbd, { pool, image, mountpoint, fuseDir }, opts.signal);
        }
        opts.onProgress?.(`rbd rm ${spec}`);
        await this.rbd.removeImage(spec, opts.signal);
      }
    }
    if (!existsSync(place.dir)) return;
    for (const entry of readdirSync(place.dir).filter((e) => /^(mnt|rbd-fuse)-\d+$/.test(e))) {
      const dir = join(place.dir, entry);
      if (mountAt(dir))
        throw new Error(
          `${dir} is still mounted, and by no clone of ${place.id} in storage.volumes' pools: unmount it`,
        );
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

/** Image metadata on a finished scratch clone: whose it is, of what, and where it is attached. */
const CLONE_MARK = 'pgops.scratch-clone';

interface CloneMark {
  id: string;
  /** pool/image@snap */
  parent: string;
  mountpoint: string;
  fuseDir: string;
}

/** <image>-<id>, within the catalog's 100 characters: a long image name is cut and made unique by a hash. */
export function cloneImageName(image: string, id: string): string {
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(id))
    throw new PermanentDriverError(`scratch id ${JSON.stringify(id)} is not a DNS label`);
  const name = `${image}-${id}`;
  if (name.length <= 100) return name;
  const hash = createHash('sha256').update(image).digest('hex').slice(0, 8);
  return `${image.slice(0, 100 - id.length - 10)}-${hash}-${id}`;
}
