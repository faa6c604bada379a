// Unwraps what a failed workflow says: the innermost ApplicationFailure's type and message.
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';

export async function failureOf(promise: Promise<unknown>): Promise<{ type: string | undefined; message: string }> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof WorkflowFailedError))
    throw new Error(`expected the workflow to fail, got ${err === undefined ? 'success' : String(err)}`);
  let cause: unknown = err.cause;
  while (cause instanceof TemporalFailure && !(cause instanceof ApplicationFailure) && cause.cause) cause = cause.cause;
  if (!(cause instanceof ApplicationFailure)) throw new Error(`expected an ApplicationFailure, got ${String(cause)}`);
  return { type: cause.type ?? undefined, message: cause.message };
}
