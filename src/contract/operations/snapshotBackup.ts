// snapshotBackupWorkflow: its input and result.
import type { BackupRecord } from '../backups';
import type { ArchivePruneResult } from '../archive';
import type { LockWait } from './lockWait';

export interface SnapshotBackupInput {
  cluster: string;
  mode?: 'online' | 'offline';
  label?: string;
  /** Retention after a successful backup: keep the newest `count` and/or those younger than `age`. */
  keep?: { count?: number; age?: string | number };
  waitForLock?: LockWait;
}

export interface SnapshotBackupResult {
  cluster: string;
  backup: BackupRecord;
  /** What was done: online (backup mode), offline (stopped, snapshot, started) or offline of a stopped cluster. */
  took: 'online' | 'offline' | 'offline-of-stopped-cluster';
  note?: string;
  volumes: string[];
  /** Milliseconds PostgreSQL spent in backup mode (online). */
  backupModeMs?: number;
  snapshotMs?: number;
  restarted?: { readyReplicas: number; msToReady: number };
  /** Retention: deleted, kept, and deletions a crash had interrupted that it finished first. */
  pruned?: { deleted: string[]; kept: string[]; finished?: string[] };
  /** After retention: the WAL archive segments no kept backup or replica needs, removed. */
  archivePruned?: ArchivePruneResult;
}
