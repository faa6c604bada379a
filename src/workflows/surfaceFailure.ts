// A refusal that happens inside an activity reaches the workflow as "Activity task failed", with
// the sentence a DBA needs only in its cause: the UI's list and `temporal workflow execute` show
// the wrapper. Every workflow fails instead with the activity's own message and type at the top
// (the activity failure stays attached as the cause).
import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';

export function surfacingActivityFailures<A extends unknown[], R>(
  workflow: (...args: A) => Promise<R>,
): (...args: A) => Promise<R> {
  return async (...args: A) => {
    try {
      return await workflow(...args);
    } catch (err) {
      if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) {
        const inner = err.cause;
        throw ApplicationFailure.create({
          message: inner.message,
          type: inner.type ?? undefined,
          details: inner.details as unknown[] | undefined,
          nonRetryable: true,
          cause: err,
        });
      }
      throw err;
    }
  };
}
