// Turns driver and catalog errors into Temporal failures: what a retry cannot fix becomes a
// non-retryable ApplicationFailure whose message names the cluster and the step.
import { ApplicationFailure, CancelledFailure, Context, log } from '@temporalio/activity';
import { pauseForTests } from '../drivers/testPause';
import { CatalogError } from '../config/catalog';
import { PermanentDriverError } from '../drivers/cluster/types';
import { PostgresLoginError } from '../drivers/postgres/session';
import { nonRetryablePostgresError } from '../drivers/postgres/errorClass';

export async function asStep<T>(cluster: string, step: string, body: () => Promise<T>): Promise<T> {
  try {
    log.info('step begins', { cluster, step: `begin:${step}` });
    await pauseForTests(`begin:${step}`);
    return await body();
  } catch (err) {
    if (err instanceof ApplicationFailure || err instanceof CancelledFailure) throw err;
    // A step that ended because it was cancelled (an aborted wait or command) reports a cancel,
    // not a failure: the workflow's cancel handler must see it as one.
    if (Context.current().cancellationSignal.aborted)
      throw new CancelledFailure(`cluster "${cluster}", step ${step}: cancelled`);
    if (err instanceof PostgresLoginError)
      throw ApplicationFailure.nonRetryable(
        `cluster "${cluster}", step ${step}: ${err.message}`,
        'AuthenticationFailed',
      );
    // PostgreSQL refused for good (by SQLSTATE class, or a startup that ended with FATAL): the
    // server's words at the top, and no retry that would only be refused again.
    const refused = nonRetryablePostgresError(err);
    if (refused)
      throw ApplicationFailure.nonRetryable(
        `cluster "${cluster}", step ${step}: ${refused.message}`,
        refused.authorization ? 'AuthenticationFailed' : 'PostgresError',
        { sqlstate: refused.sqlstate ?? null, serverMessage: refused.serverMessage },
      );
    // Retryable by nature, refused by the retry policies of ordinary steps (NON_RETRYABLE): the
    // steps that bring a cluster back up keep retrying until the catalog is fixed.
    if (err instanceof PermanentDriverError || err instanceof CatalogError)
      throw ApplicationFailure.retryable(`cluster "${cluster}", step ${step}: ${err.message}`, 'ConfigurationError');
    const message = err instanceof Error ? err.message : String(err);
    throw ApplicationFailure.retryable(`cluster "${cluster}", step ${step}: ${message}`, 'StepFailed');
  }
}

export function preconditionFailed(cluster: string, step: string, message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(`cluster "${cluster}", step ${step}: ${message}`, 'PreconditionFailed');
}
