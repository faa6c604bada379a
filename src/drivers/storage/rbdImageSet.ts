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
import { SET_ASIDE_MARK, isSetAsideOf, type SetAsideMark } from './rbdSetAside';

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

  /**
   * The image and those a clone-swap restore set aside from it (rbdSetAside.ts), where the
   * snapshots of the backups taken before that restore now live.
   */
  async lineage(spec: string): Promise<string[]> {
    const pool = spec.slice(0, spec.indexOf('/'));
    const image = spec.slice(spec.indexOf('/') + 1);
    const names = await this.rbd.listImages(pool);
    const aside = names.filter((name) => isSetAsideOf(image, name)).sort();
    // Between a clone-swap's rename and its clone, the name is free for an instant (or until the retry).
    return [...(names.includes(image) ? [spec] : []), ...aside.map((name) => `${pool}/${name}`)];
  }

  /** The image of spec's lineage that holds snapshot `snap`, or undefined. */
  async locate(spec: string, snap: string): Promise<string | undefined> {
    for (const image of await this.lineage(spec)) {
      if ((await this.rbd.listSnapshots(image)).some((s) => s.name === snap)) return image;
    }
    return undefined;
  }

  /**
   * Removes the images set aside by earlier restores that hold nothing any more: no snapshot (a
   * backup's, or one Ceph keeps in its trash for a clone not yet flattened). Returns what it did.
   */
  async pruneSetAside(spec: string, signal?: AbortSignal): Promise<string[]> {
    const said: string[] = [];
    for (const image of (await this.lineage(spec)).filter((i) => i !== spec)) {
      if ((await this.rbd.listAllSnapshots(image)).length) continue;
      if ((await this.rbd.watchers(image)) > 0) continue;
      const mark = await this.setAsideMark(image);
      await this.rbd.removeImage(image, signal);
      said.push(
        `removed ${image}${mark ? ` (set aside by restore ${mark.restoreId} on ${mark.at})` : ''}: no backup and no clone needs it any more`,
      );
    }
    return said;
  }

  /**
   * One line per image set aside from `spec` (by which restore, which backups' snapshots it holds,
   * a snapshot kept in Ceph's trash), and one when `spec` is a clone not yet flattened.
   */
  async describeLineage(spec: string, records: BackupRecord[]): Promise<string[]> {
    const lines: string[] = [];
    const { parent } = await this.rbd.info(spec).catch(() => ({ parent: undefined }));
    if (parent)
      lines.push(
        `${spec} is a clone of ${parent}, not flattened yet: it reads from that image, and first writes copy up`,
      );
    for (const image of (await this.lineage(spec)).filter((i) => i !== spec)) {
      const mark = await this.setAsideMark(image);
      const snaps = await this.rbd.listAllSnapshots(image);
      const ids = snaps
        .filter((s) => s.name.startsWith(RBD_SNAP_PREFIX))
        .map((s) => s.name.slice(RBD_SNAP_PREFIX.length));
      const held = records.filter((r) => ids.includes(r.id)).map((r) => r.id);
      const trashed = snaps.filter((s) => s.namespace === 'trash').length;
      lines.push(
        `${image}: set aside by restore ${mark?.restoreId ?? '(unknown)'}${mark ? ` on ${mark.at}` : ''}; holds ${held.length ? `backup(s) ${held.join(', ')}` : 'no backup'}${trashed ? `, and ${trashed} deleted snapshot(s) a clone still reads (Ceph's trash)` : ''}; removed once it holds nothing`,
      );
    }
    return lines;
  }

  async setAsideMark(image: string): Promise<SetAsideMark | undefined> {
    const value = (await this.rbd.listMetadata(image))[SET_ASIDE_MARK];
    return value ? (JSON.parse(value) as SetAsideMark) : undefined;
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

  /**
   * The record image's metadata. Between a clone-swap's rename and its clone (a worker killed there),
   * the name is free and the records are on the image just set aside, the one not yet marked: only
   * then is the pool listed.
   */
  private async recordMetadata(): Promise<Record<string, string>> {
    const own = await this.rbd.listMetadataIfExists(this.recordImage);
    if (own) return own;
    for (const image of await this.lineage(this.recordImage)) {
      const meta = await this.rbd.listMetadata(image);
      if (!(SET_ASIDE_MARK in meta)) return meta;
    }
    throw new PermanentDriverError(`RBD image ${this.recordImage}, which holds the backup records, does not exist`);
  }

  /** The records (pgops.backup.<id>) and the deletion marks (pgops.deleting.<id>), by id, in one read. */
  private async recordsAndMarks(): Promise<{ records: Map<string, BackupRecord>; marks: Map<string, MarkedRecord> }> {
    const meta = Object.entries(await this.recordMetadata());
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
    for (const spec of await this.allLineages()) {
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
    for (const [index, configured] of (await this.allImages()).entries()) {
      const spec = await this.locate(configured, snap);
      if (spec) {
        const clones = await this.rbd.children(spec, snap);
        opts.onProgress?.(
          `rbd snap rm ${spec}@${snap}${clones.length ? ` (Ceph keeps it in its trash until ${clones.join(', ')} no longer need it: flattened or removed)` : ''}`,
        );
        await this.rbd.removeSnapshot(spec, snap, opts.signal);
      }
      // A crash test kills the worker here: a snapshot removed, the mark still there.
      if (index === 0) await pauseForTests('delete-partly-removed', opts.signal);
    }
    await this.rbd.removeMetadata(this.recordImage, markKey);
    for (const configured of await this.allImages()) {
      for (const line of await this.pruneSetAside(configured, opts.signal)) opts.onProgress?.(line);
    }
  }

  /** Every image the backups may have snapshots on: the configured ones and those set aside from them. */
  private async allLineages(): Promise<string[]> {
    const all: string[] = [];
    for (const spec of await this.allImages()) all.push(...(await this.lineage(spec)));
    return all;
  }

  /**
   * The image and snapshot name of each snapshot of the record, all checked to be there. `spec` is the
   * image the record names (the volume's image); `holder` the one that holds the snapshot now: the same,
   * or an image a clone-swap restore set aside from it.
   */
  async snapshotsOf(
    record: BackupRecord,
  ): Promise<Array<{ spec: string; snap: string; source: string; holder: string }>> {
    const snaps = [];
    for (const s of record.snapshots) {
      const spec = s.ref.slice(0, s.ref.indexOf('@'));
      const snap = s.ref.slice(s.ref.indexOf('@') + 1);
      const holder = await this.locate(spec, snap);
      if (!holder)
        throw new PermanentDriverError(
          `snapshot ${spec}@${snap} of backup ${record.id} is missing (nor is it on an image set aside by a restore)`,
        );
      snaps.push({ spec, snap, source: s.source, holder });
    }
    return snaps;
  }
}
