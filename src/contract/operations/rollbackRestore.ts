// rollbackRestoreWorkflow: its input and result.
import type { BackupRecord } from '../backups';
import type { RestoreTarget } from '../recovery';
import type { LockWait } from './lockWait';
import type { ClusterStarted } from './plannedStart';
import type {
  RecoveryFilesWritten,
  RecoveryWatched,
  ReplicasReconciled,
  RestoreVerified,
  VolumeRestoreMethod,
  VolumesRolledBack,
} from './restoreSteps';

export interface RollbackRestoreInput {
  cluster: string;
  /** A backup id from listBackupsWorkflow, or "latest" (the newest regular backup of the cluster). */
  backup: string;
  /** The cluster name again: a restore replaces the cluster's data. */
  confirm: string;
  /** Replay archived WAL forward from the snapshot to here ("immediate": just to consistency). */
  recoveryTarget?: RestoreTarget;
  inclusive?: boolean;
  afterRecovery?: 'promote' | 'pause';
  /** The timeline recovery follows: "current" (the backup's), "latest", or a number. Default: "current" without a target, else "latest". */
  recoveryTargetTimeline?: 'current' | 'latest' | number;
  /** Snapshot the current volumes first, as a backup of kind pre-restore (default true). */
  safetySnapshot?: boolean;
  /**
   * The catalog replicas of this cluster after the restore: follow the new timeline if they have not
   * replayed past its fork, else rebuild them (default); or always "rebuild", only "follow", or "leave".
   */
  replicas?: 'rebuild' | 'follow' | 'leave';
  /**
   * How the volumes are put back where the storage can do either (rbd, runner local): "auto" (default:
   * the catalog's storage.restoreMethod, else clone-swap where the images can be cloned), "clone-swap"
   * or "rollback". The result says which was used, and why.
   */
  restoreMethod?: VolumeRestoreMethod;
  /** After a clone-swap: flatten the clones in the background ("background") or leave them ("never"). Default: the catalog's storage.flatten, else background. */
  flatten?: 'background' | 'never';
  waitForLock?: LockWait;
}

export interface RollbackRestoreResult {
  cluster: string;
  restored: BackupRecord;
  safetySnapshot?: BackupRecord;
  /** How to undo this restore. */
  undo?: string;
  stopped: { wasRunning: boolean };
  rollback: VolumesRolledBack;
  recoveryFiles: RecoveryFilesWritten;
  started: ClusterStarted;
  recovery?: RecoveryWatched;
  verified: RestoreVerified;
  /** What the rollback kept until the restore succeeded and has now let go (CSI: replaced volumes). */
  released: string[];
  /** Each catalog replica of the cluster and what was done to it (README "History"). */
  replicas?: ReplicasReconciled | { warning: string };
  /** Warnings a DBA must read (a replica left on the old history, one that could not be checked). */
  warnings?: string[];
  /** After a clone-swap: the background flatten of the clones (its workflow id), or why it did not start. */
  flatten?: { images: string[]; workflowId?: string; warning?: string; note?: string };
  /** The timeline recovery followed (recovery_target_timeline) and why, when WAL was replayed. */
  recoveryTimeline?: { timeline?: number; note?: string; stopLsn?: string };
}
