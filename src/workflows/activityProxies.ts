// Timeouts and retry policies for every activity, chosen per kind of step. Quick steps fail fast
// and retry; long waits heartbeat so that a worker crash is noticed within the heartbeat timeout
// and another worker repeats the (idempotent) step.
import { proxyActivities } from '@temporalio/workflow';
import type { PgOpsActivities } from '../activities';

/** Error types activities use for problems a retry cannot fix. */
export const NON_RETRYABLE = ['InvalidInput', 'UnknownCluster', 'ConfigurationError', 'ClusterBusy', 'PreconditionFailed'];

export const quickStep = proxyActivities<PgOpsActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '20s', maximumAttempts: 8, nonRetryableErrorTypes: NON_RETRYABLE },
});

export const longStep = proxyActivities<PgOpsActivities>({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE },
});

/** Pausing replay stops the damage: retried fast and often, never left waiting long. */
export const urgentStep = proxyActivities<PgOpsActivities>({
  startToCloseTimeout: '15 seconds',
  retry: { initialInterval: '200ms', backoffCoefficient: 1.5, maximumInterval: '2s', maximumAttempts: 30, nonRetryableErrorTypes: NON_RETRYABLE },
});

/** WAL replay can take hours (GitLab's took 50 minutes): a long bound, heartbeats to notice crashes. */
export const replayStep = proxyActivities<PgOpsActivities>({
  startToCloseTimeout: '24 hours',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 20, nonRetryableErrorTypes: NON_RETRYABLE },
});
