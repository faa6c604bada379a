// plannedStartWorkflow: its input and result, and what the start step (startCluster) returns.
import type { LockWait } from './lockWait';

export interface PlannedStartInput {
  cluster: string;
  /** Replicas to start; default: the count recorded at the last planned stop, else the catalog's. */
  replicas?: number;
  waitForLock?: LockWait;
}

/** A catalog replica of a cluster that was just started: on its history or not, and how it follows. */
export interface FollowerState {
  cluster: string;
  reachable: boolean;
  timeline?: number;
  replayLsn?: string;
  /** Streaming from the primary again (pg_stat_wal_receiver), else restoring from the archive. */
  source?: 'streaming' | 'archive';
  onPrimaryHistory?: boolean;
  note: string;
}

/** What the start step (the startCluster activity) reports: by a planned start, a hold's end, a restore. */
export interface ClusterStarted {
  replicas: number;
  replicasFrom: 'input' | 'recorded' | 'catalog';
  readyReplicas: number;
  alreadyRunning: boolean;
  msToReady: number;
  serverVersion: string;
  /** The catalog's replicas of this cluster once it is up: timeline, replay position, stream or archive (issue 19). */
  followers?: FollowerState[];
}

export interface PlannedStartResult extends ClusterStarted {
  cluster: string;
}
