// Rollback restore (docs/runbooks/rollback-restore.md), with the recovery the seed left out: refuse
// early touching nothing, stop, keep a safety snapshot of the current state (so a restore of the
// wrong backup can itself be undone), roll every volume back, write backup_label and the recovery
// settings, start, watch archive recovery to the target, verify and clean up.
import {
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  patched,
  workflowInfo,
  type WorkflowInfo,
} from '@temporalio/workflow';
import { backupIdFor } from '../common/backupIds';
import type { BackupRecord } from '../contract/backups';
import type { RollbackRestoreInput, RollbackRestoreResult } from '../contract/operations/rollbackRestore';
import type { PgOpsActivities } from '../activities';
import { bringUpStep, localStep, longStep, quickStep, replayStep } from './activityProxies';
import { trackProgress, type ProgressReporter } from './progress';
import { tagWorkflow } from './searchAttributes';
import { withClusterLock } from './clusterLock';
import { parseRollbackRestoreInput, type ParsedRollbackRestoreInput } from './backupInput';
import { undoFailedRestore } from './undoFailedRestore';
import { cancelBackgroundFlatten, startBackgroundFlatten } from './flattenVolumes';
import { replicaWarnings } from './restoreReplicas';
import { OPERATION_LABELS, WORKFLOW_TYPES } from '../contract/operations/registry';

type Result<K extends keyof PgOpsActivities> = Awaited<ReturnType<PgOpsActivities[K]>>;

export type { RollbackRestoreInput, RollbackRestoreResult };

const TYPE = WORKFLOW_TYPES.restore;

export async function rollbackRestoreWorkflow(input: RollbackRestoreInput): Promise<RollbackRestoreResult> {
  const opts = parseRollbackRestoreInput(input);
  const { cluster, backup, recoveryTarget, inclusive, timeline, lockWait } = opts;
  const info = workflowInfo();

  tagWorkflow(cluster, OPERATION_LABELS.restore);
  const progress = trackProgress(OPERATION_LABELS.restore, cluster);
  progress.step('resolve', 'looking the cluster up in the worker catalog');
  await localStep.resolveCluster({ cluster });

  return withClusterLock(cluster, TYPE, { ...lockWait, progress }, async () => {
    progress.step('check', `checking backup ${backup} against the cluster, its system identifier and the target`);
    const plan = await longStep.checkRestore({
      cluster,
      backup,
      recoveryTarget,
      inclusive,
      timeline,
      restoreMethod: opts.restoreMethod,
    });
    const restored = plan.backup;
    progress.note({ backupId: restored.id, backupStopLsn: restored.stopLsn });
    const run: RestoreRun = { opts, cluster, info, progress, plan, restored };

    // A background flatten of an earlier clone-swap holds the images open: it stops first.
    if (patched('clone-swap-restore')) await cancelBackgroundFlatten(cluster);
    const before = await stopForRestore(run);
    const safetySnapshot = await takeSafetySnapshot(run, before);
    const undo = safetySnapshot
      ? `run ${TYPE} with {"cluster": "${cluster}", "backup": "${safetySnapshot.id}", "confirm": "${cluster}", "safetySnapshot": false} to go back to the state before this restore`
      : undefined;
    const kept: BeforeRollback = { before, safetySnapshot, undo };

    const at: RestoreAt = { step: 'rollback' };
    try {
      const rolledBack = await rollBackAndStart(run, at);
      return await verifyAndFinish(run, at, kept, rolledBack);
    } catch (err) {
      return await failRestore(run, err, at.step, kept);
    }
  });
}

/** One run of the workflow, once the backup is checked: its input, its cluster, its progress and its plan. */
interface RestoreRun {
  opts: ParsedRollbackRestoreInput;
  cluster: string;
  info: WorkflowInfo;
  progress: ProgressReporter;
  plan: Result<'checkRestore'>;
  restored: BackupRecord;
}

/** The step the restore is at, named in the failure if it fails there. */
interface RestoreAt {
  step: string;
}

type Described = Result<'describeCluster'>;

/** What stands before the rollback: how the cluster was, and the snapshot to undo the restore with. */
interface BeforeRollback {
  before: Described;
  safetySnapshot: BackupRecord | undefined;
  undo: string | undefined;
}

type RolledBack = Awaited<ReturnType<typeof rollBackAndStart>>;

/** Stops the cluster if it runs; a cancel during the stop starts it again. Returns how it was before. */
async function stopForRestore({ cluster, progress }: RestoreRun): Promise<Described> {
  progress.step('stop', 'stopping the cluster: a restore needs the database down');
  const before = await localStep.describeCluster({ cluster });
  if (before.running) {
    try {
      await longStep.stopCluster({ cluster });
      await localStep.verifyQuiescent({ cluster });
    } catch (err) {
      // Cancelled before anything was rolled back: the cluster goes back to how it was. The stop
      // runs to its end; the start retries until it has.
      if (!isCancellation(err)) throw err;
      progress.step('start', 'cancelled during the stop: starting the cluster again');
      await CancellationScope.nonCancellable(() => bringUpStep.startCluster({ cluster }));
      throw err;
    }
  }
  return before;
}

/** If asked for, snapshots the current volumes so the restore can be undone; a failure starts the cluster again. */
async function takeSafetySnapshot(
  { opts, cluster, info, progress, restored }: RestoreRun,
  before: Described,
): Promise<BackupRecord | undefined> {
  let safetySnapshot: BackupRecord | undefined;
  if (opts.safety) {
    progress.step('safety-snapshot', 'snapshotting the current volumes first, so this restore can be undone');
    try {
      safetySnapshot = await longStep.takeOfflineSnapshot({
        cluster,
        id: backupIdFor(info.startTime, info.runId, true),
        kind: 'pre-restore',
        label: `before restoring ${restored.id}`,
        workflowId: info.workflowId,
      });
    } catch (err) {
      // Nothing was rolled back yet: the cluster goes back to how it was, then the restore stops.
      if (before.running) await CancellationScope.nonCancellable(() => bringUpStep.startCluster({ cluster }));
      if (isCancellation(err)) throw err;
      throw ApplicationFailure.nonRetryable(
        `${TYPE}: cluster "${cluster}": the safety snapshot failed, so nothing was restored${before.running ? ' and the cluster was started again' : ''}: ${messageOf(err)}`,
        'RestoreFailed',
        { step: 'safety-snapshot' },
      );
    }
    progress.note({ safetySnapshot: safetySnapshot.id });
  }
  return safetySnapshot;
}

/** Rolls every volume back, writes the recovery files, starts, and watches recovery to the target if there is one. */
async function rollBackAndStart({ opts, cluster, info, progress, plan, restored }: RestoreRun, at: RestoreAt) {
  const { inclusive, action, timeline } = opts;
  progress.step('rollback', `rolling every volume back to backup ${restored.id}`);
  const restoreId = `${info.workflowId}/${info.runId}`;
  // Never cancelled half way: a cancel takes effect after it, with every volume at the backup.
  const rollback = await CancellationScope.nonCancellable(() =>
    longStep.rollbackVolumes({ cluster, backup: restored.id, restoreId, method: opts.restoreMethod }),
  );
  if (rollback.method) progress.note({ restoreMethod: rollback.method });
  at.step = 'recovery-files';
  progress.step(
    'recovery-files',
    plan.target ? 'writing backup_label and the recovery settings' : 'preparing the data directory',
  );
  const recoveryFiles = await longStep.writeRecoveryFiles({
    cluster,
    backup: restored.id,
    target: plan.target,
    inclusive,
    action,
    timeline: plan.timeline ?? timeline,
  });
  at.step = 'start';
  progress.step(
    'start',
    plan.target ? 'starting: PostgreSQL replays archived WAL to the target' : 'starting the restored cluster',
  );
  // Not the patient bring-up step: a restored server that cannot start (WAL missing, a bad
  // label) is a failure to report, not a catalog to wait for.
  const started = await longStep.startCluster({ cluster });
  let recovery: Result<'watchRecovery'> | undefined;
  if (plan.target) {
    at.step = 'recovery';
    progress.step('recovery', 'watching archive recovery until it ends at the target');
    recovery = await replayStep.watchRecovery({
      cluster,
      targetLsn: typeof plan.target === 'object' && 'lsn' in plan.target ? plan.target.lsn : undefined,
    });
  }
  return { restoreId, rollback, recoveryFiles, started, recovery };
}

/** Verifies the restored server, lets go of the replaced volumes, checks the replicas; the result. */
async function verifyAndFinish(
  { opts, cluster, progress, plan, restored }: RestoreRun,
  at: RestoreAt,
  { before, safetySnapshot, undo }: BeforeRollback,
  { restoreId, rollback, recoveryFiles, started, recovery }: RolledBack,
): Promise<RollbackRestoreResult> {
  at.step = 'verify';
  progress.step('verify', 'checking the restored server and removing the recovery settings');
  const verified = await quickStep.finishRestore({ cluster, backup: restored.id });
  // The restore has succeeded: a failure to let go of the replaced volumes only leaves them kept.
  const released = await quickStep.releaseReplacedVolumes({ cluster, restoreId }).then(
    (r) => r.released,
    (err: unknown) => {
      if (isCancellation(err)) throw err;
      return [`the replaced volumes were kept (reclaim policy Retain): ${messageOf(err)}`];
    },
  );
  let replicas: RollbackRestoreResult['replicas'];
  if (!verified.inRecovery && patched('replicas-after-restore')) {
    progress.step('replicas', 'checking the replicas of the cluster against its new timeline');
    replicas = await longStep.reconcileReplicas({ cluster, mode: opts.replicaMode }).catch((err: unknown) => {
      if (isCancellation(err)) throw err;
      // The restore itself succeeded: a replica that could not be handled is a warning.
      return { warning: `the replicas were not checked: ${messageOf(err)}` };
    });
  }
  const flatten = await flattenInBackground(cluster, opts.flatten, rollback, restoreId);
  const warnings = [...replicaWarnings(replicas), ...(flatten?.warning ? [flatten.warning] : [])];
  progress.step(
    'done',
    `restored backup ${restored.id}: timeline ${verified.timeline}, ${verified.inRecovery ? `paused in recovery at ${verified.endLsn}` : `running at ${verified.endLsn}`}`,
  );
  return {
    cluster,
    restored,
    safetySnapshot,
    undo,
    stopped: { wasRunning: before.running },
    rollback,
    recoveryFiles,
    started,
    recovery,
    verified,
    released,
    ...(flatten ? { flatten } : {}),
    ...(replicas ? { replicas } : {}),
    ...(warnings.length ? { warnings } : {}),
    recoveryTimeline: plan.target
      ? { timeline: plan.timeline, note: plan.timelineNote, stopLsn: plan.stopLsn }
      : undefined,
  };
}

/** After a clone-swap: starts the background flatten of the clones, unless told never to. */
export async function flattenInBackground(
  cluster: string,
  asked: 'background' | 'never' | undefined,
  rollback: Result<'rollbackVolumes'>,
  restoreId: string,
): Promise<RollbackRestoreResult['flatten']> {
  if (!rollback.flatten?.length) return undefined;
  const images = rollback.flatten;
  if ((asked ?? rollback.flattenByDefault) === 'never')
    return {
      images,
      note: 'not flattened ("flatten": "never"): the restored images read from the images set aside, and first writes pay a copy-up, until rbd flatten',
    };
  return startBackgroundFlatten(cluster, images, restoreId);
}

/** A failure after the rollback began: undo it (since 'undo-failed-restore') and report the step it failed at. */
async function failRestore(
  { cluster, progress, restored }: RestoreRun,
  err: unknown,
  step: string,
  { before, safetySnapshot, undo }: BeforeRollback,
): Promise<never> {
  if (isCancellation(err)) throw err;
  if (!patched('undo-failed-restore'))
    throw ApplicationFailure.nonRetryable(
      `${TYPE}: cluster "${cluster}": the restore of backup ${restored.id} failed at step ${step}: ${messageOf(err)}. The cluster may be left stopped.${undo ? ` Nothing is lost: ${undo}.` : ''}`,
      'RestoreFailed',
      { step, safetySnapshot: safetySnapshot?.id },
    );
  const failed = `${TYPE}: cluster "${cluster}": the restore of backup ${restored.id} failed at step ${step}: ${messageOf(err)}.`;
  const outcome = await CancellationScope.nonCancellable(() =>
    undoFailedRestore({ cluster, restored, safetySnapshot, wasRunning: before.running, progress }),
  );
  throw ApplicationFailure.nonRetryable(`${failed} ${outcome.said}`, 'RestoreFailed', {
    step,
    safetySnapshot: safetySnapshot?.id,
    undone: outcome.undone,
  });
}

function messageOf(err: unknown): string {
  let cause: unknown = err;
  let message = err instanceof Error ? err.message : String(err);
  while (cause instanceof Error && cause.cause) {
    cause = cause.cause;
    if (cause instanceof Error && cause.message) message = cause.message;
  }
  return message;
}
