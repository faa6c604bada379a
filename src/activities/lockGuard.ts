// Mutating steps check, before they act, that their workflow still holds the cluster's lock.
// The lock workflow is the one place that says who holds a cluster, but an operator can
// terminate or reset it: a lock started again asks the running workflows who holds the cluster
// (see clusterLockWorkflow.ts), and this check closes what remains. A workflow that is not the
// holder when one of its mutating steps begins fails that step with LockLost (non-retryable) and
// changes nothing more; whoever the lock names keeps the cluster. The one exception: the first
// step after an immediate grant, started within seconds of it (`grantIsFresh`), is covered by
// the grant itself, which saves a round trip to the lock on every stop and start.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { confirmLockHolder } from './lockSteps';
import { MUTATING_STEPS, type MutatingStep } from '../contract/operations/registry';

/** Activities that change a cluster, its volumes or its backups: run only by the lock's holder. From the operations' table. */
export { MUTATING_STEPS };

/**
 * The other activities: they only read, or are the lock's own calls. Every activity is in this list or
 * among some operation's mutatingSteps (src/contract/operations/registry.ts): guardMutatingSteps does
 * not compile otherwise, so that a new step is never left unguarded by omission.
 */
export const READING_STEPS = [
  'resolveCluster',
  'describeCluster',
  'verifyQuiescent',
  'requestClusterLock',
  'releaseClusterLock',
  'findRunningMutators',
  'requestBackupSlot',
  'releaseBackupSlot',
  'isWorkflowRunning',
  'pauseReplicaReplay',
  'inspectReplica',
  'locateIncident',
  'checkPitrTarget',
  'waitForReplayTarget',
  'exportLostRows',
  'confirmDelayedReplay',
  'planSnapshotBackup',
  'listBackups',
  'checkRestore',
  'watchRecovery',
  'finishRestore',
  'archiveStatus',
  // Scratch instances: clones of backups, never the cluster's own volumes (docs/operations/scratch.md).
  'planScratch',
  'createScratch',
  'startScratch',
  'watchScratchRecovery',
  'scratchConnection',
  'removeScratch',
  'listScratch',
  'collectScratch',
  'checkScratch',
  'recordVerification',
  'exportFromScratch',
  'dumpFromScratch',
  // After a clone-swap restore, outside the lock: rbd flatten changes where a clone's data lives, never
  // what it holds; a restore cancels it before it touches the images (src/workflows/flattenVolumes.ts).
  'flattenVolumes',
] as const;

type Step = (...args: never[]) => Promise<unknown>;
type ReadingStep = (typeof READING_STEPS)[number];
/** `unknown` when every activity of `T` is classified once; else an object naming the activities at fault. */
type EveryStepClassified<T> = [Exclude<keyof T, MutatingStep | ReadingStep>] extends [never]
  ? [Extract<MutatingStep, ReadingStep>] extends [never]
    ? unknown
    : { mutatingAndReading: Extract<MutatingStep, ReadingStep> }
  : { unclassifiedActivities: Exclude<keyof T, MutatingStep | ReadingStep> };

/**
 * How soon after the grant a step may act without asking the lock again: the grant itself is
 * that confirmation. A check made now would leave the same kind of window (between its answer
 * and the act) that trusting a grant this recent leaves.
 */
export const FRESH_GRANT_MS = 3000;

/**
 * A first attempt, scheduled (by the server's clock, as the grant's) and started (by this
 * worker's clock, allowing 1 s of skew either way) within FRESH_GRANT_MS of the grant. Retries
 * and late starts (no worker for a while) always ask.
 */
export function grantIsFresh(
  info: { attempt: number; currentAttemptScheduledTimestampMs: number },
  lockGrantedAt: string | undefined,
  now = Date.now(),
): boolean {
  if (info.attempt !== 1 || !lockGrantedAt) return false;
  const granted = Date.parse(lockGrantedAt);
  if (!Number.isFinite(granted)) return false;
  const scheduledAfterGrant = info.currentAttemptScheduledTimestampMs - granted;
  const startedAfterSchedule = now - info.currentAttemptScheduledTimestampMs;
  return (
    scheduledAfterGrant >= -1000 &&
    scheduledAfterGrant < FRESH_GRANT_MS &&
    startedAfterSchedule >= -1000 &&
    startedAfterSchedule < FRESH_GRANT_MS
  );
}

async function mustHoldLock(cluster: string, step: string, lockGrantedAt: string | undefined): Promise<void> {
  const info = Context.current().info;
  const execution = info.workflowExecution;
  if (!execution) return; // a standalone activity: no workflow, no lock
  if (grantIsFresh(info, lockGrantedAt)) return;
  const answer = await confirmLockHolder(cluster, {
    workflowId: execution.workflowId,
    runId: execution.runId,
    operation: info.workflowType ?? 'unknown',
    wait: false,
  });
  if (answer.held) return;
  const holder = answer.holder;
  throw ApplicationFailure.nonRetryable(
    `cluster "${cluster}", step ${step}: this workflow no longer holds the cluster's lock` +
      (holder ? `: ${holder.operation} (workflow id "${holder.workflowId}") holds it since ${holder.since}` : '') +
      ' (the lock workflow was terminated or reset while this workflow held it). Nothing was changed by this step; ' +
      'check the cluster and the other workflow before running this one again.',
    'LockLost',
  );
}

/** What every mutating step's input carries; `lockGrantedAt` only right after the grant. */
export interface LockedStepInput {
  cluster: string;
  lockGrantedAt?: string;
}

/** Wraps each mutating step so that it first confirms its workflow holds the cluster. */
export function guardMutatingSteps<T extends Record<MutatingStep | ReadingStep, Step>>(
  steps: T & EveryStepClassified<T>,
): T {
  const guarded: Record<string, unknown> = { ...steps };
  for (const name of MUTATING_STEPS) {
    const step = steps[name] as unknown as ((input: LockedStepInput) => Promise<unknown>) | undefined;
    if (!step) throw new Error(`guardMutatingSteps: no activity named ${name}`);
    // Named like the step: the worker registers activities under their property names.
    guarded[name] = async (input: LockedStepInput) => {
      await mustHoldLock(input.cluster, name, input.lockGrantedAt);
      return step(input);
    };
  }
  return guarded as T;
}
