// listBackupsWorkflow (read-only) and deleteBackupWorkflow: their inputs and results.
import type { BackupBeingDeleted, BackupCoverage, BackupRecord } from '../backups';
import type { LockWait } from './lockWait';

/** The input of the read-only operations: a cluster of the catalog. */
export interface ClusterInput {
  cluster: string;
}

export interface ListBackupsResult {
  cluster: string;
  /** Complete, restorable backups, newest first. */
  backups: BackupRecord[];
  /**
   * Backups whose deletion began and was interrupted (state "being deleted"): not restorable; the
   * next deleteBackupWorkflow or prune of the cluster finishes them.
   */
  beingDeleted: BackupBeingDeleted[];
  /** Snapshots under a backup id with neither record nor deletion mark (left by a crashed backup). */
  strays: string[];
  /** Per backup: its timeline, and whether the WAL archive still holds every segment from its start on. */
  archive?: BackupCoverage[];
  /**
   * Where the backups live, one line each, when a DBA should know: rbd images set aside by clone-swap
   * restores (which restore, which backups they hold, snapshots kept in Ceph's trash) and clones not yet flattened.
   */
  storage?: string[];
}

export interface DeleteBackupInput {
  cluster: string;
  backup: string;
  confirm: string;
  waitForLock?: LockWait;
}

export interface DeleteBackupResult {
  cluster: string;
  /** The record of the backup deleted. */
  deleted: BackupRecord;
  /** The backup was being deleted already (an interrupted deletion): this run finished it. */
  resumed: boolean;
  /** Other interrupted deletions of the cluster, finished first. */
  finished: string[];
}
