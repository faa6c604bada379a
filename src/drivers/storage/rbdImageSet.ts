// What both RBD drivers (rbd on the worker host, rbd in the Rook toolbox pod) do the same way:
// one snapshot per image named pgops-<backup id>, the backup record as image metadata
// pgops.backup.<id> on the data volume's image (it lives and dies with the image, not with the
// worker), strays, deletion, and the checks before a rollback.
import { PermanentDriverError } from '../cluster/types';
import type { RbdCli } from './rbdCli';
import type { BackupRecord, DatabaseVolume, SnapshotRef } from './types';
import { newestFirst } from './recordOrder';

export const RBD_META_PREFIX = 'pgops.backup.';
export const RBD_SNAP_PREFIX = 'pgops-';

/** One RBD image holding a volume of the database. */
export interface RbdImageOf {
  /** pool/image */
  spec: string;
  role: DatabaseVolume['role'];
}

export class RbdImageSet {
  constructor(
    readonly rbd: RbdCli,
    /** pool/image of the data volume: it carries the records. */
    private readonly recordImage: string,
    /** Every image the backups of this cluster may have snapshots on. */
    private readonly allImages: () => Promise<string[]>,
  ) {}

  static snapName(id: string): string {
    return `${RBD_SNAP_PREFIX}${id}`;
  }

  /** Refuses to overwrite a finished backup, and deletes the half-made snapshots a crashed attempt left. */
  async prepare(id: string, images: RbdImageOf[], signal?: AbortSignal): Promise<void> {
    if (`${RBD_META_PREFIX}${id}` in (await this.rbd.listMetadata(this.recordImage)))
      throw new Error(`backup ${id} already exists with its record; refusing to overwrite it`);
    for (const { spec } of images) await this.rbd.removeSnapshot(spec, RbdImageSet.snapName(id), signal);
  }

  async snapshot(
    id: string,
    images: RbdImageOf[],
    onProgress?: (detail: string) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    const snap = RbdImageSet.snapName(id);
    for (const { spec } of images) {
      onProgress?.(`rbd snap create ${spec}@${snap}`);
      await this.rbd.createSnapshot(spec, snap, signal);
    }
  }

  /** Checks that every snapshot is there, and returns the references for the record. */
  async verify(id: string, images: RbdImageOf[], source: (image: RbdImageOf) => string): Promise<SnapshotRef[]> {
    const snap = RbdImageSet.snapName(id);
    for (const { spec } of images) {
      if (!(await this.rbd.listSnapshots(spec)).some((s) => s.name === snap))
        throw new Error(`rbd snap ls ${spec} does not show ${snap} after creating it`);
    }
    return images.map((image) => ({
      role: image.role,
      source: source(image),
      method: 'rbd' as const,
      ref: `${image.spec}@${snap}`,
    }));
  }

  async saveRecord(record: BackupRecord): Promise<void> {
    await this.rbd.setMetadata(this.recordImage, `${RBD_META_PREFIX}${record.id}`, JSON.stringify(record));
  }

  async listRecords(): Promise<BackupRecord[]> {
    const meta = await this.rbd.listMetadata(this.recordImage);
    return Object.entries(meta)
      .filter(([key]) => key.startsWith(RBD_META_PREFIX))
      .map(([, value]) => JSON.parse(value) as BackupRecord)
      .sort(newestFirst);
  }

  async strayIds(): Promise<string[]> {
    const recorded = new Set((await this.listRecords()).map((r) => r.id));
    const strays = new Set<string>();
    for (const spec of await this.allImages()) {
      for (const snap of await this.rbd.listSnapshots(spec)) {
        if (!snap.name.startsWith(RBD_SNAP_PREFIX)) continue;
        const id = snap.name.slice(RBD_SNAP_PREFIX.length);
        if (!recorded.has(id)) strays.add(id);
      }
    }
    return [...strays];
  }

  /** The record first: a crash half-way leaves strays (removed by retention), never a record without snapshots. */
  async deleteBackup(id: string, signal?: AbortSignal): Promise<void> {
    await this.rbd.removeMetadata(this.recordImage, `${RBD_META_PREFIX}${id}`);
    for (const spec of await this.allImages()) await this.rbd.removeSnapshot(spec, RbdImageSet.snapName(id), signal);
  }

  /** The image and snapshot name of each snapshot of the record, all checked to be there. */
  async snapshotsOf(record: BackupRecord): Promise<Array<{ spec: string; snap: string; source: string }>> {
    const snaps = record.snapshots.map((s) => ({
      spec: s.ref.slice(0, s.ref.indexOf('@')),
      snap: s.ref.slice(s.ref.indexOf('@') + 1),
      source: s.source,
    }));
    for (const { spec, snap } of snaps) {
      if (!(await this.rbd.listSnapshots(spec)).some((s) => s.name === snap))
        throw new PermanentDriverError(`snapshot ${spec}@${snap} of backup ${record.id} is missing`);
    }
    return snaps;
  }
}
