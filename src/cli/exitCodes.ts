// What `pgops` exits with, so scripts can branch on it (documented in the README and --help).
import {
  AuthenticationFailedError,
  ClusterBusyError,
  ConfigurationError,
  InvalidInputError,
  OperationCancelledError,
  PreconditionFailedError,
  UnknownClusterError,
} from '../client/errors';

export const EXIT = {
  ok: 0,
  /** The operation failed (a step failed, a restore failed). */
  failed: 1,
  /** Bad usage or input refused (InvalidInput, an unknown flag). */
  usage: 2,
  /** Another operation holds the cluster (ClusterBusy). */
  busy: 3,
  /** Refused before touching anything: a precondition, an unknown cluster, the catalog, a login. */
  refused: 4,
  /** Temporal could not be reached. */
  unreachable: 5,
  /** The operation was cancelled. */
  cancelled: 6,
  /** Ctrl-C: detached; the workflow keeps running. */
  detached: 130,
} as const;

export function exitCodeFor(err: unknown): number {
  if (err instanceof InvalidInputError) return EXIT.usage;
  if (err instanceof ClusterBusyError) return EXIT.busy;
  if (
    err instanceof PreconditionFailedError ||
    err instanceof UnknownClusterError ||
    err instanceof ConfigurationError ||
    err instanceof AuthenticationFailedError
  )
    return EXIT.refused;
  if (err instanceof OperationCancelledError) return EXIT.cancelled;
  const message = err instanceof Error ? err.message : String(err);
  if (/UNAVAILABLE|ECONNREFUSED|Failed to connect|deadline/i.test(message)) return EXIT.unreachable;
  return EXIT.failed;
}
