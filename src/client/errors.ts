// Failures of pg-ops workflows as typed errors: a service can catch ClusterBusy and retry later,
// show InvalidInput to its user, and treat the rest as incidents.
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure, TemporalFailure } from '@temporalio/common';

export class PgOpsError extends Error {
  constructor(
    message: string,
    readonly type: string,
    readonly workflowId: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
export class ClusterBusyError extends PgOpsError {
  override readonly name = 'ClusterBusyError';
}
export class InvalidInputError extends PgOpsError {
  override readonly name = 'InvalidInputError';
}
export class UnknownClusterError extends PgOpsError {
  override readonly name = 'UnknownClusterError';
}
export class PreconditionFailedError extends PgOpsError {
  override readonly name = 'PreconditionFailedError';
}
export class ConfigurationError extends PgOpsError {
  override readonly name = 'ConfigurationError';
}
export class AuthenticationFailedError extends PgOpsError {
  override readonly name = 'AuthenticationFailedError';
}
/** PostgreSQL refused a statement or a start for good (data, syntax or privilege, unsupported, a startup FATAL). */
export class PostgresError extends PgOpsError {
  override readonly name = 'PostgresError';
}
export class RestoreFailedError extends PgOpsError {
  override readonly name = 'RestoreFailedError';
}
export class OperationCancelledError extends PgOpsError {
  override readonly name = 'OperationCancelledError';
}

const BY_TYPE: Record<string, new (m: string, t: string, id: string, o?: { cause?: unknown }) => PgOpsError> = {
  ClusterBusy: ClusterBusyError,
  InvalidInput: InvalidInputError,
  UnknownCluster: UnknownClusterError,
  PreconditionFailed: PreconditionFailedError,
  ConfigurationError: ConfigurationError,
  AuthenticationFailed: AuthenticationFailedError,
  PostgresError: PostgresError,
  RestoreFailed: RestoreFailedError,
};

/** Turns a failed workflow into the matching PgOpsError; other errors pass through unchanged. */
export function toPgOpsError(err: unknown, workflowId: string): unknown {
  if (!(err instanceof WorkflowFailedError)) return err;
  let cause: unknown = err.cause;
  if (cause instanceof CancelledFailure)
    return new OperationCancelledError(`workflow ${workflowId} was cancelled`, 'Cancelled', workflowId, { cause: err });
  while (cause instanceof TemporalFailure && !(cause instanceof ApplicationFailure) && cause.cause) cause = cause.cause;
  if (!(cause instanceof ApplicationFailure)) return err;
  const type = cause.type ?? 'Error';
  const Ctor = BY_TYPE[type] ?? PgOpsError;
  return new Ctor(cause.message, type, workflowId, { cause: err });
}
