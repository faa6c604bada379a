// How a database's volumes are snapshotted, recorded and rolled back. RBD, CSI and local (btrfs
// or copy) sit side by side behind this interface, chosen by the catalog's `storage`. Drivers are
// plain TypeScript: no Temporal imports.
import type { WaitOptions } from '../cluster/types';

/** A volume that holds part of the database, as PostgreSQL sees it on the worker. */
export interface DatabaseVolume {
  /** 'claim': another claim of the pod (a pg_wal or tablespace volume, not looked into). */
  role: 'data' | 'wal' | 'tablespace' | 'claim';
  /** The directory PostgreSQL uses (PGDATA, the pg_wal target, a tablespace location), or a mount path in the pod. */
  path: string;
  /** Tablespace OID, for role 'tablespace'. */
  oid?: string;
  /** Kubernetes: the PersistentVolumeClaim this volume is. */
  claim?: string;
}

/** One snapshot of one volume, as stored in the backup record. */
export interface SnapshotRef {
  role: DatabaseVolume['role'];
  /** What was snapshotted: a directory on the worker, or pool/image for RBD. */
  source: string;
  /** How: a btrfs snapshot, a copy, an RBD snapshot, a VolumeSnapshot. */
  method: 'btrfs' | 'copy' | 'rbd' | 'csi';
  /** Where the snapshot is: a directory, pool/image@snap, or a VolumeSnapshot name. */
  ref: string;
}

export type BackupKind = 'backup' | 'pre-restore';

/** The backup record, kept with the snapshots (manifest, image metadata or annotations). */
export interface BackupRecord {
  /** Unique and sortable: <UTC time of the workflow start>-<8 hex of its run id>[-pre]. */
  id: string;
  cluster: string;
  kind: BackupKind;
  mode: 'online' | 'offline';
  label: string;
  /** PostgreSQL's database system identifier: a restore into another system is refused. */
  systemIdentifier: string;
  pgVersion: string;
  timeline: number;
  /** Online: pg_backup_start's LSN. Offline: the checkpoint's redo location. */
  startLsn: string;
  /** Online: pg_backup_stop's LSN. Offline: the shutdown checkpoint's location. */
  stopLsn: string;
  /** pg_backup_stop's labelfile (written as backup_label on restore); online only. */
  labelfile?: string;
  /** pg_backup_stop's spcmapfile (written as tablespace_map); online with tablespaces only. */
  spcmapfile?: string;
  startedAt: string;
  stoppedAt: string;
  /** Milliseconds PostgreSQL spent in backup mode (online). */
  backupModeMs?: number;
  /** Milliseconds spent after backup mode until the WAL the backup needs was archived. */
  archiveWaitMs?: number;
  /** Milliseconds the storage snapshot(s) took. */
  snapshotMs?: number;
  /** Offline: whether pg_control said the server was shut down cleanly. */
  cleanShutdown?: boolean;
  databaseSizeBytes?: number;
  storage: 'local' | 'rbd' | 'csi';
  snapshots: SnapshotRef[];
  /** A pre-restore safety snapshot is not pruned before this time. */
  keepUntil?: string;
  /** The workflow that made it. */
  workflowId: string;
}

/** Who began deleting a backup, and when: kept with the record until the deletion is finished. */
export interface DeletionMark {
  since: string;
  /** The workflow that began it ("unknown" for a deletion begun by an older worker). */
  by: string;
}

/**
 * A backup whose deletion has begun and not finished (the worker died half-way): no longer
 * restorable, and finished by the next prune or delete of its cluster.
 */
export interface BackupBeingDeleted extends BackupRecord {
  state: 'being deleted';
  deletion: DeletionMark;
}

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
  rollback(record: BackupRecord, opts: RollbackOptions): Promise<{ ms: number; methods: string[] }>;
  /**
   * After a successful restore: lets go of what the rollback kept in case it failed (CSI: the
   * replaced volumes, kept with reclaim policy Retain until now). Idempotent.
   */
  releaseReplaced?(restoreId: string, opts?: WaitOptions): Promise<string[]>;
}
