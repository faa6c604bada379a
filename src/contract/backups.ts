// The backup record and its parts: what a backup is, as workflows, the client and the drivers see it.
// Pure types: kept with the snapshots by the storage drivers, shown by listBackupsWorkflow.
import type { BackupVerification } from './verification';

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

/**
 * The storage kinds a catalog may name (`storage.kind`). The catalog schema (src/config/schema.ts) and the
 * table of snapshot drivers (src/drivers/clusterServices.ts) are checked against this list when compiled.
 */
export const STORAGE_KINDS = ['local', 'rbd', 'csi'] as const;
export type StorageKind = (typeof STORAGE_KINDS)[number];

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
  storage: StorageKind;
  snapshots: SnapshotRef[];
  /** A pre-restore safety snapshot is not pruned before this time. */
  keepUntil?: string;
  /** The last restore drill of this backup (verifyBackupWorkflow). */
  verification?: BackupVerification;
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

/** Whether the WAL archive still holds what a backup needs to be restored to any later target. */
export interface BackupCoverage {
  id: string;
  timeline: number;
  /** complete: every segment from the backup on is archived; gap: one is missing. */
  wal: 'complete' | 'gap';
  /** The first segment missing on the way, when wal is 'gap'. */
  missingSegment?: string;
  /** The timelines a restore of this backup can follow. */
  timelines: number[];
  /** The newest timeline of the archive, when this backup cannot reach it. */
  notOnCurrentTimeline?: number;
  /** One sentence for a DBA. */
  note: string;
}
