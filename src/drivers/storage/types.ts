// How a database's volumes are snapshotted, recorded and rolled back. RBD, CSI and local (btrfs
// or copy) sit side by side behind this interface, chosen by the catalog's `storage`. Drivers are
// plain TypeScript: no Temporal imports.
import type { WaitOptions } from '../cluster/types';
import type { BackupBeingDeleted, BackupRecord, DatabaseVolume, SnapshotRef } from '../../contract/backups';
import type { ScratchVolume } from '../../contract/scratch';
import type { VolumeRestoreMethod, VolumesRolledBack } from '../../contract/operations/restoreSteps';

export type { VolumeRestoreMethod };

export interface DeleteOptions extends WaitOptions {
  /** The workflow deleting, kept in the deletion mark. */
  by?: string;
}

export interface SnapshotPlan {
  volumes: DatabaseVolume[];
  /** One line per volume: how it will be snapshotted. */
  methods: string[];
}

export interface SnapshotOptions extends WaitOptions {
  /** The server is running (online backup): flush or freeze the file system around the snapshot. */
  online: boolean;
}

export interface RollbackOptions extends WaitOptions {
  /** Names this restore (workflow id and run): a retried rollback recognises its own work by it. */
  restoreId: string;
  /** How the volumes are put back where the storage can do both (rbd): default auto, the fastest safe one. */
  method?: VolumeRestoreMethod;
  /** How long a clone-swap waits for the image's last client to let go (default 60 s). */
  clientWaitMs?: number;
}

/** Where a scratch clone goes: its id (a DNS label) and, for a clone used on the worker, its directory there. */
export interface ClonePlacement {
  id: string;
  /** The scratch instance's own directory on the worker (local targets): clones or their mount points go below it. */
  dir: string;
}

export interface ClonedVolumes {
  volumes: ScratchVolume[];
  /** How each volume was cloned, one line each. */
  methods: string[];
}

export interface SnapshotDriver {
  readonly kind: BackupRecord['storage'];
  /**
   * Checks that every volume can be snapshotted consistently and says how. Throws
   * PermanentDriverError with the reason when one cannot: before backup mode starts.
   */
  plan(volumes: DatabaseVolume[]): Promise<SnapshotPlan>;
  /**
   * Snapshots the volumes under the backup id. A snapshot left under this id by an earlier
   * attempt without its record is deleted first, so a retried step never keeps a half-made one.
   */
  createSnapshots(id: string, volumes: DatabaseVolume[], opts: SnapshotOptions): Promise<SnapshotRef[]>;
  /**
   * Undoes what a crashed attempt may have left behind (a frozen file system). Idempotent. The
   * backup steps call it first, before PostgreSQL is asked for anything (pg_backup_start's
   * checkpoint would block on a frozen file system).
   */
  recoverFromCrash(): Promise<void>;
  /** Stores the record with the snapshots: from then on the backup exists. */
  saveRecord(record: BackupRecord): Promise<void>;
  /** Every complete backup of this storage, newest first (not those being deleted). */
  listRecords(): Promise<BackupRecord[]>;
  /** Backups whose deletion began and has not finished, newest first. */
  listBeingDeleted(): Promise<BackupBeingDeleted[]>;
  /** Snapshots under backup ids that have neither a record nor a deletion mark (left by a crashed backup). */
  strayIds(): Promise<string[]>;
  /**
   * Deletes one backup so that a crash at any point leaves it resumable: the record is first
   * marked as being deleted (durably, in one write), then the snapshots go, the mark last.
   * Idempotent: a backup already marked is finished; with neither record nor mark, the
   * snapshots under the id (a half-made backup) are removed.
   */
  deleteBackup(id: string, opts?: DeleteOptions): Promise<void>;
  /**
   * Puts every volume back to its snapshot. The database must be stopped. Idempotent: a retry
   * after a crash finishes the same rollback. Leaves the volumes attached and ready to start.
   */
  rollback(record: BackupRecord, opts: RollbackOptions): Promise<VolumesRolledBack>;
  /**
   * What a DBA should know about where the backups live, one line each (rbd: images set aside by
   * clone-swap restores, which backups they hold, a clone not yet flattened). Empty when nothing.
   */
  describeLayout?(): Promise<string[]>;
  /** Why this storage cannot restore by `method`, or undefined when it can (checked before a restore touches anything). */
  restoreMethodProblem(method: VolumeRestoreMethod): string | undefined;
  /**
   * Copies into each clone-swapped image (VolumesRolledBack.flatten) what it still reads from the image
   * set aside, so it no longer depends on it (`rbd flatten`), then removes images set aside that hold
   * nothing any more. Idempotent and resumable: an image already flat is done.
   */
  flatten?(
    images: string[],
    opts?: WaitOptions & { onPercent?: (image: string, percent: number) => void },
  ): Promise<string[]>;
  /**
   * After a successful restore: lets go of what the rollback kept in case it failed (CSI: the
   * replaced volumes, kept with reclaim policy Retain until now). Idempotent.
   */
  releaseReplaced?(restoreId: string, opts?: WaitOptions): Promise<string[]>;
  /**
   * Clones the backup's snapshots into writable copies for a scratch instance, without touching the
   * cluster's own volumes or the snapshots: a writable btrfs snapshot or a copy (local), an RBD clone
   * mapped and mounted below `place.dir` (rbd), a claim restored from the VolumeSnapshot (csi).
   * Idempotent for the same `place.id`: a retry finishes or redoes the same clone.
   */
  cloneSnapshots(record: BackupRecord, place: ClonePlacement, opts?: WaitOptions): Promise<ClonedVolumes>;
  /** Removes every copy made for `place.id` (unmounted, unmapped, deleted). Idempotent: nothing there is fine. */
  removeClone(place: ClonePlacement, opts?: WaitOptions): Promise<void>;
}
