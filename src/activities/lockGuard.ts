// Mutating steps check, before they act, that their workflow still holds the cluster's lock.
// The lock workflow is the one place that says who holds a cluster, but an operator can
// terminate or reset it: a lock started again asks the running workflows who holds the cluster
// (see clusterLockWorkflow.ts), and this check closes what remains. A workflow that is not the
// holder when one of its mutating steps begins fails that step with LockLost (non-retryable) and
// changes nothing more; whoever the lock names keeps the cluster.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { confirmLockHolder } from './lockSteps';

/** Activities that change a cluster, its volumes or its backups: run only by the lock's holder. */
export const MUTATING_STEPS = [
  'stopCluster',
  'startCluster',
  'applyPitrTarget',
  'restartReplicaIfPending',
  'insertMissingRowsIntoPrimary',
  'promoteReplica',
  'clearPitrTarget',
  'takeOnlineBackup',
  'takeOfflineSnapshot',
  'rollbackVolumes',
  'writeRecoveryFiles',
  'releaseReplacedVolumes',
  'deleteBackup',
  'pruneBackups',
] as const;

async function mustHoldLock(cluster: string, step: string): Promise<void> {
  const info = Context.current().info;
  const execution = info.workflowExecution;
  if (!execution) return; // a standalone activity: no workflow, no lock
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

/** Wraps each mutating step so that it first confirms its workflow holds the cluster. */
export function guardMutatingSteps<T extends Record<string, (...args: never[]) => Promise<unknown>>>(steps: T): T {
  const guarded: Record<string, unknown> = { ...steps };
  for (const name of MUTATING_STEPS) {
    const step = steps[name] as unknown as ((input: { cluster: string }) => Promise<unknown>) | undefined;
    if (!step) throw new Error(`guardMutatingSteps: no activity named ${name}`);
    // Named like the step: the worker registers activities under their property names.
    guarded[name] = async (input: { cluster: string }) => {
      await mustHoldLock(input.cluster, name);
      return step(input);
    };
  }
  return guarded as T;
}
