// What both RBD drivers (rbd on the worker host, rbd in the Rook toolbox pod) do the same way:
// one snapshot per image named pgops-<backup id>, the backup record as image metadata
// pgops.backup.<id> on the data volume's image (it lives and dies with the image, not with the
// worker), strays, deletion, and the checks before a rollback. A deletion moves the record to
// pgops.deleting.<id> first and removes that key last.
import { PermanentDriverError } from '../cluster/types';
import { pauseForTests } from '../testPause';
import type { RbdCli } from './rbdCli';
import type { DeleteOptions } from './types';
import type { BackupBeingDeleted, BackupRecord, DatabaseVolume, SnapshotRef } from '../../contract/backups';
import { newestFirst } from './recordOrder';
import { beingDeleted, markForDeletion, type MarkedRecord } from './deletionMark';

export const RBD_META_PREFIX = 'pgops.backup.';
/** A record whose deletion has begun (a key of its own: an older worker never takes it for a backup). */
export const RBD_DELETING_PREFIX = 'pgops.deleting.';
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

  /** The records (pgops.backup.<id>) and the deletion marks (pgops.deleting.<id>), by id, in one read. */
  private async recordsAndMarks(): Promise<{ records: Map<string, BackupRecord>; marks: Map<string, MarkedRecord> }> {
    const meta = Object.entries(await this.rbd.listMetadata(this.recordImage));
    const under = (prefix: string) =>
      new Map(
        meta
          .filter(([key]) => key.startsWith(prefix))
          .map(([key, value]) => [key.slice(prefix.length), JSON.parse(value) as MarkedRecord]),
      );
    return { records: under(RBD_META_PREFIX), marks: under(RBD_DELETING_PREFIX) };
  }

  async listRecords(): Promise<BackupRecord[]> {
    const { records, marks } = await this.recordsAndMarks();
    return [...records.values()].filter((r) => !marks.has(r.id)).sort(newestFirst);
  }

  async listBeingDeleted(): Promise<BackupBeingDeleted[]> {
    return [...(await this.recordsAndMarks()).marks.values()].map((r) => beingDeleted(r)).sort(newestFirst);
  }

  async strayIds(): Promise<string[]> {
    const { records, marks } = await this.recordsAndMarks();
    const recorded = new Set([...records.keys(), ...marks.keys()]);
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

  /** Marked first, the mark removed last: a crash anywhere leaves a deletion the next one finishes. */
  async deleteBackup(id: string, opts: DeleteOptions = {}): Promise<void> {
    const recordKey = `${RBD_META_PREFIX}${id}`;
    const markKey = `${RBD_DELETING_PREFIX}${id}`;
    const meta = await this.rbd.listMetadata(this.recordImage);
    if (recordKey in meta) {
      // A mark already there (a crash between these two writes) keeps who began the deletion.
      if (!(markKey in meta)) {
        const record = JSON.parse(meta[recordKey]!) as BackupRecord;
        await this.rbd.setMetadata(this.recordImage, markKey, JSON.stringify(markForDeletion(record, opts.by)));
      }
      await this.rbd.removeMetadata(this.recordImage, recordKey);
    }
    await pauseForTests('delete-marked', opts.signal);
    const snap = RbdImageSet.snapName(id);
    for (const [index, spec] of (await this.allImages()).entries()) {
      opts.onProgress?.(`rbd snap rm ${spec}@${snap}`);
      await this.rbd.removeSnapshot(spec, snap, opts.signal);
      // A crash test kills the worker here: a snapshot removed, the mark still there.
      if (index === 0) await pauseForTests('delete-partly-removed', opts.signal);
    }
    await this.rbd.removeMetadata(this.recordImage, markKey);
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
