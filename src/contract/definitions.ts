// Signals, queries and shared types: the contract with the Temporal UI, the CLI and other
// services. Names here are public: keep them stable.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

export const DEFAULT_TASK_QUEUE = 'pg-ops';

export interface Progress {
  operation: string;
  cluster: string;
  step: string;
  detail: string;
  /** Numbers a step reports (replica counts, LSNs, bytes left, milliseconds). */
  numbers: Record<string, number | string>;
  /** Steps finished so far, in order. */
  done: string[];
}

/** Every workflow answers this with where it is. */
export const progressQuery = defineQuery<Progress>('progress');
/** Ends the hold of a planned stop: the cluster is started again. Sendable from the Temporal UI. */
export const resumeSignal = defineSignal<[{ by?: string }?]>('resume');
/** Ends an openScratchWorkflow: its scratch server is stopped and removed. */
export const closeScratchSignal = defineSignal<[{ by?: string }?]>('close');
/** Activities that run long report numbers through this signal (throttled). */
export const activityProgressSignal =
  defineSignal<[{ detail: string; numbers?: Record<string, number | string> }]>('activityProgress');

// --- The per-cluster lock: one lock workflow per cluster and task queue: `pgops-lock/<queue>/<cluster>`

export interface LockRequest {
  workflowId: string;
  runId: string;
  operation: string;
  /** Queue behind the current holder instead of being refused. */
  wait: boolean;
}

export interface LockHolder extends LockRequest {
  /** ISO time the lock was granted. */
  since: string;
}

export type LockAnswer =
  /** `since`: when the lock workflow granted it (its workflow clock, i.e. the server's). */
  | { status: 'granted'; lockWorkflowId: string; since?: string }
  | { status: 'queued'; holder: LockHolder; position: number }
  | { status: 'refused'; holder: LockHolder };

export interface LockState {
  cluster: string;
  holder: LockHolder | null;
  queue: LockRequest[];
}

/** The answer to a mutating step that asks whether its workflow still holds the cluster. */
export type LockConfirmation = { held: true } | { held: false; holder: LockHolder | null };

/**
 * A request for the lock, sent with update-with-start (the lock workflow is started if it is not
 * running): answered at once with granted, queued or refused. A queued requester is told
 * `granted` later by `lockAnswer`.
 */
export const lockAcquireUpdate = defineUpdate<LockAnswer, [LockRequest]>('acquireLock');
/** Asked by every mutating step before it acts: does this workflow still hold the cluster? */
export const lockConfirmUpdate = defineUpdate<LockConfirmation, [LockRequest]>('confirmLockHolder');
export const lockReleaseSignal = defineSignal<[{ workflowId: string }]>('lockRelease');
export const lockAnswerSignal = defineSignal<[LockAnswer]>('lockAnswer');
export const lockStateQuery = defineQuery<LockState>('lockState');
/** Answered by every mutating workflow: whether it holds its cluster's lock right now. */
export const holdsClusterLockQuery = defineQuery<boolean>('holdsClusterLock');

/** What the describe step records of a cluster (before a planned stop, and in its result). */
export interface ClusterSnapshotState {
  running: boolean;
  replicas: number;
  readyReplicas: number;
}

/** An idle lock ends after this long (unless its input says otherwise); the next request starts it again. */
export const DEFAULT_IDLE_END_MS = 60_000;

/**
 * The lock of a cluster within one worker fleet. A cluster name means something only in the
 * catalog of the workers on one task queue, and the lock workflow must run where those workers
 * are: a lock started on another queue would wait forever for workers that never come.
 */
export function lockWorkflowId(cluster: string, taskQueue: string): string {
  return `pgops-lock/${taskQueue}/${cluster}`;
}
