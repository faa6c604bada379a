// Timeouts and retry policies for every activity, chosen per kind of step. Quick steps fail fast
// and retry; long waits heartbeat so that a worker crash is noticed within the heartbeat timeout
// and another worker repeats the (idempotent) step.
import { proxyActivities, type RetryPolicy } from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { PgOpsActivities } from '../activities';

/** Error types activities use for problems a retry cannot fix. */
export const NON_RETRYABLE = [
  'InvalidInput',
  'UnknownCluster',
  'ConfigurationError',
  'ClusterBusy',
  'PreconditionFailed',
  'AuthenticationFailed',
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

export const quickStep = proxyActivities<PgOpsActivities>({
  startToCloseTimeout: '1 minute',
  retry: retryPolicy('1s', '20s', 8),
});

export const longStep = proxyActivities<PgOpsActivities>({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '10 seconds',
  retry: retryPolicy('2s', '1 minute', 10),
});

/** Pausing replay stops the damage: retried fast and often, never left waiting long. */
export const urgentStep = proxyActivities<PgOpsActivities>({
  startToCloseTimeout: '15 seconds',
  retry: retryPolicy('200ms', '2s', 30, 1.5),
});

/** WAL replay can take hours (GitLab's took 50 minutes): a long bound, heartbeats to notice crashes. */
export const replayStep = proxyActivities<PgOpsActivities>({
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
export const bringUpStep = proxyActivities<PgOpsActivities>({
  startToCloseTimeout: '2 hours',
  scheduleToCloseTimeout: '24 hours',
  heartbeatTimeout: '10 seconds',
  retry: {
    initialInterval: '2s',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    nonRetryableErrorTypes: ['InvalidInput', 'AuthenticationFailed', 'PreconditionFailed'],
  },
});
