// Ceph RBD snapshots (seed 000: `rbd snap create replicapool/<image>@<snap>`, `rbd snap
// rollback`). One snapshot per image, named pgops-<backup id>; the backup record is image
// metadata on the data volume's image under the key pgops.backup.<id>, so it lives and dies with
// the image, not with the worker. Snapshots made outside ceph-csi block the deletion of a PVC's
// image until they are removed: retention and deleteBackupWorkflow remove them.
import { relative, isAbsolute } from 'node:path';
import type { RbdStorageConfig } from '../../config/schema';
import { runCommand } from '../exec';
import { PermanentDriverError, type WaitOptions } from '../cluster/types';
import { RbdCli } from './rbdCli';
import { attachRbdVolume, cephArgs, detachRbdVolume, type RbdLocalVolume } from './rbdLocalAttach';
import { mountAt } from './mounts';
import { pauseForTests } from '../testPause';
import type { BackupRecord, DatabaseVolume, SnapshotDriver, SnapshotOptions, SnapshotPlan, SnapshotRef } from './types';

const META_PREFIX = 'pgops.backup.';
const SNAP_PREFIX = 'pgops-';

export class RbdSnapshotDriver implements SnapshotDriver {
  readonly kind = 'rbd' as const;
  private readonly rbd: RbdCli;

  constructor(
    private readonly storage: RbdStorageConfig,
    private readonly pgdata: string,
  ) {
    if (storage.runner !== 'local' || !storage.volumes)
      throw new PermanentDriverError(
        'storage kind "rbd" with runner "toolbox" needs a kubernetes target and is not available for this target; use runner "local" with volumes',
      );
    const args = cephArgs(storage);
    this.rbd = new RbdCli((rbdArgs, signal) =>
      runCommand('rbd', [...args, ...rbdArgs], { signal, timeoutMs: 600_000 }),
    );
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

  private imagesFor(volumes: DatabaseVolume[]): Array<{ image: RbdLocalVolume; role: DatabaseVolume['role'] }> {
    const seen = new Map<string, { image: RbdLocalVolume; role: DatabaseVolume['role'] }>();
    for (const volume of volumes) {
      const image = this.imageHolding(volume.path);
      if (image && !seen.has(this.spec(image))) seen.set(this.spec(image), { image, role: volume.role });
    }
    return [...seen.values()];
  }

  async createSnapshots(id: string, volumes: DatabaseVolume[], opts: SnapshotOptions): Promise<SnapshotRef[]> {
    const snap = `${SNAP_PREFIX}${id}`;
    const images = this.imagesFor(volumes);
    if (`${META_PREFIX}${id}` in (await this.rbd.listMetadata(this.spec(this.recordImage))))
      throw new Error(`backup ${id} already exists with its record; refusing to overwrite it`);
    for (const { image } of images) await this.rbd.removeSnapshot(this.spec(image), snap, opts.signal);
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
      for (const { image } of images) {
        opts.onProgress?.(`rbd snap create ${this.spec(image)}@${snap}`);
        await this.rbd.createSnapshot(this.spec(image), snap, opts.signal);
      }
    } finally {
      for (const mountpoint of frozen) await runCommand('fsfreeze', ['-u', mountpoint]);
    }
    for (const { image } of images) {
      if (!(await this.rbd.listSnapshots(this.spec(image))).some((s) => s.name === snap))
        throw new Error(`rbd snap ls ${this.spec(image)} does not show ${snap} after creating it`);
    }
    return images.map(({ image, role }) => ({
      role,
      source: this.spec(image),
      method: 'rbd' as const,
      ref: `${this.spec(image)}@${snap}`,
    }));
  }

  /** A file system left frozen by a crashed attempt blocks PostgreSQL (even pg_backup_start's checkpoint). */
  async recoverFromCrash(): Promise<void> {
    for (const image of this.images) {
      if (mountAt(image.mountpoint)) await runCommand('fsfreeze', ['-u', image.mountpoint]);
    }
  }

  async saveRecord(record: BackupRecord): Promise<void> {
    await this.rbd.setMetadata(this.spec(this.recordImage), `${META_PREFIX}${record.id}`, JSON.stringify(record));
  }

  async listRecords(): Promise<BackupRecord[]> {
    const meta = await this.rbd.listMetadata(this.spec(this.recordImage));
    return Object.entries(meta)
      .filter(([key]) => key.startsWith(META_PREFIX))
      .map(([, value]) => JSON.parse(value) as BackupRecord)
      .sort((a, b) => (a.id < b.id ? 1 : -1));
  }

  async strayIds(): Promise<string[]> {
    const recorded = new Set((await this.listRecords()).map((r) => r.id));
    const strays = new Set<string>();
    for (const image of this.images) {
      for (const snap of await this.rbd.listSnapshots(this.spec(image))) {
        if (!snap.name.startsWith(SNAP_PREFIX)) continue;
        const id = snap.name.slice(SNAP_PREFIX.length);
        if (!recorded.has(id)) strays.add(id);
      }
    }
    return [...strays];
  }

  async deleteBackup(id: string, opts: WaitOptions = {}): Promise<void> {
    await this.rbd.removeMetadata(this.spec(this.recordImage), `${META_PREFIX}${id}`);
    for (const image of this.images)
      await this.rbd.removeSnapshot(this.spec(image), `${SNAP_PREFIX}${id}`, opts.signal);
  }

  async rollback(record: BackupRecord, opts: WaitOptions = {}): Promise<{ ms: number; methods: string[] }> {
    const started = Date.now();
    const snaps = record.snapshots.map((s) => {
      const image = this.images.find((v) => this.spec(v) === s.source);
      if (!image)
        throw new PermanentDriverError(
          `backup ${record.id} has a snapshot of ${s.source}, which is not in storage.volumes`,
        );
      return { image, snap: s.ref.slice(s.ref.indexOf('@') + 1) };
    });
    for (const { image, snap } of snaps) {
      const present = (await this.rbd.listSnapshots(this.spec(image))).some((s) => s.name === snap);
      if (!present)
        throw new PermanentDriverError(`snapshot ${this.spec(image)}@${snap} of backup ${record.id} is missing`);
    }
    // As a kubelet would: nothing may hold the image while it is rolled back.
    for (const { image } of snaps) {
      opts.onProgress?.(`detaching ${this.spec(image)} from ${image.mountpoint}`);
      await detachRbdVolume(this.rbd, image, opts.signal);
    }
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
}
