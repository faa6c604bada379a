// plannedStopWorkflow: its input and result (public: the client, the CLI and the UI read them).
import type { ClusterSnapshotState } from '../definitions';
import type { LockWait } from './lockWait';

export interface PlannedStopInput {
  cluster: string;
  reason?: string;
  /** Wait for the `resume` signal (or maxHold), then start the cluster again. */
  holdUntilResumed?: boolean;
  /** Longest hold before the cluster is started again anyway: "30m", "8h"… Default 8h, at most 30d. */
  maxHold?: string | number;
  /** Queue behind another operation on the cluster instead of failing (true, or a duration to wait at most). */
  waitForLock?: LockWait;
}

export type { ClusterSnapshotState };

export interface PlannedStopResult {
  cluster: string;
  reason?: string;
  before: ClusterSnapshotState;
  stopped: { replicasBefore: number; alreadyStopped: boolean; volumesKept: string[]; msToStop: number };
  hold?: { resumedBy: 'signal' | 'maxHold' | 'cancel'; resumeRequestedBy?: string; heldMs: number };
  restarted?: { replicas: number; readyReplicas: number; msToReady: number };
  after: ClusterSnapshotState;
}
