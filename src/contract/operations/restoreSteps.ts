// The results of a restore's single steps that rollbackRestoreWorkflow's result carries: the
// rollback, the recovery files, the recovery watched, the restored server verified, and the
// catalog replicas reconciled. Pure types: the activities that produce them are annotated with them.

/**
 * How a restore puts the volumes back where the storage can do either (rbd, runner local): rollback
 * rewrites each image from its snapshot; clone-swap sets each image aside and gives a clone of the
 * snapshot its name; auto picks the fastest that can be used.
 */
export type VolumeRestoreMethod = 'auto' | 'clone-swap' | 'rollback';

/** rollbackVolumes: every volume rolled back to its snapshot. */
export interface VolumesRolledBack {
  ms: number;
  /** What was done to each volume, one line each. */
  methods: string[];
  /**
   * rollback: each volume rewritten from its snapshot (or, CSI, replaced by a claim restored from it);
   * clone-swap (rbd): each image renamed aside, a clone of the snapshot under its name.
   */
  method?: 'rollback' | 'clone-swap';
  /** Why this method, when the storage could do either (rbd). */
  methodNote?: string;
  /** pool/image of each clone that still reads from the image set aside, until it is flattened. */
  flatten?: string[];
  /** What the catalog says to do with them (storage.flatten): background (default) or never. */
  flattenByDefault?: 'background' | 'never';
}

/** writeRecoveryFiles: backup_label, tablespace_map, recovery.signal and the settings; stale files removed. */
export interface RecoveryFilesWritten {
  written: string[];
  removed: string[];
  settings: Record<string, string>;
  walFilesRemoved: number;
}

/** watchRecovery: archive recovery ended (promoted) or paused at the target. */
export interface RecoveryWatched {
  state: 'promoted' | 'paused';
  replayLsn: string | null;
  ms: number;
}

/** finishRestore: the restored server checked, its recovery settings removed once recovery has ended. */
export interface RestoreVerified {
  timeline: number;
  endLsn: string;
  systemIdentifier: string;
  inRecovery: boolean;
  /** The restore's settings taken out of postgresql.auto.conf (none while recovery goes on). */
  settingsRemoved: string[];
  lastRecoveryLog?: string;
}

/** One catalog replica of the restored primary and what was done to it. */
export interface ReplicaOutcome {
  replica: string;
  /** Where it stood against the restored primary's new history. */
  position: 'before-fork' | 'past-fork' | 'unknown';
  replayLsn?: string;
  replicaTimeline?: number;
  action: 'followed' | 'rebuilt' | 'left' | 'skipped';
  /** What was done, or what a DBA must do. */
  note: string;
}

/** reconcileReplicas: the restored primary's timeline, where it forked, and each catalog replica. */
export interface ReplicasReconciled {
  timeline: number;
  forkedFrom?: number;
  forkLsn?: string;
  replicas: ReplicaOutcome[];
}
