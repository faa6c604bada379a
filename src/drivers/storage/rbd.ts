// Ceph RBD snapshots with `rbd` run on the worker host (runner: local), for a local target whose
// data directory is on RBD images the worker mounts (rbd-fuse + loop + ext4): docs/runbooks/snapshot-backup.md's
// `rbd snap create replicapool/<image>@<snap>` and `rbd snap rollback`. Snapshot naming and the
// backup record (image metadata) are shared with the toolbox runner (rbdImageSet.ts).
import { relative, isAbsolute } from 'node:path';
import type { RbdStorageConfig } from '../../config/schema';
import { runCommand } from '../exec';
import { PermanentDriverError, type WaitOptions } from '../cluster/types';
import { RbdCli } from './rbdCli';
import { attachRbdVolume, cephArgs, detachRbdVolume, type RbdLocalVolume } from './rbdLocalAttach';
import { RbdImageSet } from './rbdImageSet';
import { mountAt } from './mounts';
import { pauseForTests } from '../testPause';
import type {
  DeleteOptions,
  SnapshotDriver,
  SnapshotOptions,
  SnapshotPlan,
  ClonedVolumes,
  ClonePlacement,
} from './types';
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

  deleteBackup(id: string, opts: DeleteOptions = {}): Promise<void> {
    return this.set.deleteBackup(id, opts);
  }

  async rollback(record: BackupRecord, opts: WaitOptions = {}): Promise<{ ms: number; methods: string[] }> {
    const started = Date.now();
    const snaps = (await this.set.snapshotsOf(record)).map(({ spec, snap }) => {
      const image = this.images.find((v) => this.spec(v) === spec);
      if (!image)
        throw new PermanentDriverError(
          `backup ${record.id} has a snapshot of ${spec}, which is not in storage.volumes`,
        );
      return { image, snap };
    });
    // As a kubelet would: nothing may hold the image while it is rolled back.
    for (const { image } of snaps) {
      opts.onProgress?.(`detaching ${this.spec(image)} from ${image.mountpoint}`);
      await detachRbdVolume(this.rbd, image, opts.signal);
    }
    // A crash test kills the worker here: the images detached, not yet rolled back.
    await pauseForTests('rollback-detached', opts.signal);
    for (const { image, snap } of snaps) {
      opts.onProgress?.(`rbd snap rollback ${this.spec(image)}@${snap}`);
      await this.rbd.rollback(this.spec(image), snap, opts.signal);
    }
    for (const { image } of snaps) await attachRbdVolume(this.storage, image, opts.signal);
    return {
      ms: Date.now() - started,
      methods: snaps.map(({ image, snap }) => `rbd snap rollback ${this.spec(image)}@${snap}`),
    };
  }

  /** Attaches every image (before a start, after a crash between detach and attach). */
  async attachAll(signal?: AbortSignal): Promise<void> {
    for (const image of this.images) await attachRbdVolume(this.storage, image, signal);
  }

  // Scratch clones of this storage kind are not built yet: the scratch workflows refuse with this message.
  async cloneSnapshots(record: BackupRecord, _place: ClonePlacement): Promise<ClonedVolumes> {
    throw new PermanentDriverError(
      `scratch clones of backup ${record.id} are not supported on storage kind "${this.kind}" yet`,
    );
  }

  async removeClone(_place: ClonePlacement): Promise<void> {
    // Nothing is ever cloned on this storage kind yet.
  }
}
