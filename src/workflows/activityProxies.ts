// Timeouts and retry policies for every activity, chosen per kind of step. Quick steps fail fast
// and retry; long waits heartbeat so that a worker crash is noticed within the heartbeat timeout
// and another worker repeats the (idempotent) step.
import {
  ActivityCancellationType,
  proxyActivities,
  proxyLocalActivities,
  type RetryPolicy,
} from '@temporalio/workflow';
import type { ActivityOptions, Duration } from '@temporalio/common';
import type { PgOpsActivities } from '../activities';
import { withSummaries } from './activitySummaries';

/** Activities with these options, each call with a summary for the UI (cluster and step). */
const activitiesWith = (options: ActivityOptions) => withSummaries(proxyActivities<PgOpsActivities>(options));

/**
 * A cancelled workflow goes on (its cancel handler, the lock's release) only once the cancelled
 * activity has really ended: a step that was cancelled while it ran, or that ignores the cancel
 * (a shutdown is never taken back half way), must not race with the handler's start, nor leave
 * the lock free while it still acts on the cluster.
 */
const waitForTheStepToEnd = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED;

/** Error types activities use for problems a retry cannot fix. */
export const NON_RETRYABLE = [
  'InvalidInput',
  'UnknownCluster',
  'ConfigurationError',
  'ClusterBusy',
  'PreconditionFailed',
  'AuthenticationFailed',
  'PostgresError',
  'LockLost',
];

function retryPolicy(
  initialInterval: Duration,
  maximumInterval: Duration,
  maximumAttempts: number,
  backoffCoefficient = 2,
): RetryPolicy {
  return {
    initialInterval,
    backoffCoefficient,
    maximumInterval,
    maximumAttempts,
    nonRetryableErrorTypes: NON_RETRYABLE,
  };
}

// Every activity heartbeats while it runs (keepAlive in src/activities/heartbeat.ts): a worker
// SIGKILLed inside a quick step is noticed within the heartbeat timeout, not the whole minute.
export const quickStep = activitiesWith({
  cancellationType: waitForTheStepToEnd,
  startToCloseTimeout: '1 minute',
  heartbeatTimeout: '10 seconds',
  retry: retryPolicy('1s', '20s', 8),
});

/**
 * Short read-only steps (catalog look-up, describe, verify) and the lock's calls to the server run
 * as local activities: in the worker, inside the workflow task, with no activity task round trip
 * through the server (10–40 ms each, more under load). The workflow task retries them after a
 * worker crash, so each must be safe to run again; none may take long (the workflow task
 * heartbeats while one runs, and a long one holds the workflow's other events back).
 */
export const localStep = proxyLocalActivities<PgOpsActivities>({
  startToCloseTimeout: '1 minute',
  retry: retryPolicy('200ms', '10s', 10),
});

/**
 * The lock's requests and releases, local activities too. A lock workflow takes at most 10
 * updates in flight (the server's limit), so 30 workflows asking at once are partly turned
 * away with ResourceExhausted and ask again: patience of minutes, retried every few seconds.
 */
export const lockStep = proxyLocalActivities<PgOpsActivities>({
  // An update the lock never answers (its workflow task was on a worker that died, and the
  // server dropped the update with it) is asked again after this long, not after a minute.
  startToCloseTimeout: '15 seconds',
  scheduleToCloseTimeout: '10 minutes',
  retry: {
    initialInterval: '200ms',
    backoffCoefficient: 2,
    maximumInterval: '5s',
    nonRetryableErrorTypes: NON_RETRYABLE,
  },
});

export const longStep = activitiesWith({
  cancellationType: waitForTheStepToEnd,
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '10 seconds',
  retry: retryPolicy('2s', '1 minute', 10),
});

/** Pausing replay stops the damage: retried fast and often, never left waiting long. */
export const urgentStep = activitiesWith({
  startToCloseTimeout: '15 seconds',
  heartbeatTimeout: '5 seconds',
  retry: retryPolicy('200ms', '2s', 30, 1.5),
});

/**
 * The pause as a local activity: it runs inside the workflow's first task, without the round
 * trip of scheduling an activity task and waiting for a worker to pick it up. A worker killed
 * inside it loses that task, which times out (10 s) and runs again on another worker.
 */
export const urgentLocalStep = proxyLocalActivities<PgOpsActivities>({
  startToCloseTimeout: '15 seconds',
  retry: retryPolicy('200ms', '2s', 30, 1.5),
});

/** WAL replay can take hours (GitLab's took 50 minutes): a long bound, heartbeats to notice crashes. */
export const replayStep = activitiesWith({
  cancellationType: waitForTheStepToEnd,
  startToCloseTimeout: '24 hours',
  heartbeatTimeout: '10 seconds',
  retry: retryPolicy('2s', '1 minute', 20),
});

/**
 * Steps that bring a cluster back up (the end of a hold, after an offline snapshot or a restore):
 * a planned stop must always have a way back. A broken catalog or a cluster missing from it is
 * retried every minute for up to a day, so fixing the file lets the workflow finish; the
 * activity reports the problem to `progress` and the UI while it waits.
 */
export const bringUpStep = activitiesWith({
  cancellationType: waitForTheStepToEnd,
  startToCloseTimeout: '2 hours',
  scheduleToCloseTimeout: '24 hours',
  heartbeatTimeout: '10 seconds',
  retry: {
    initialInterval: '2s',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    nonRetryableErrorTypes: ['InvalidInput', 'AuthenticationFailed', 'PostgresError', 'PreconditionFailed', 'LockLost'],
  },
});

/**
 * Removing a scratch instance: never given up on quickly (a clone left behind holds storage), retried
 * every minute for up to a day; `pgops scratch gc` removes what even that leaves.
 */
export const cleanupStep = activitiesWith({
  cancellationType: waitForTheStepToEnd,
  startToCloseTimeout: '2 hours',
  scheduleToCloseTimeout: '24 hours',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute' },
});
