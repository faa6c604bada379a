// What a PostgreSQL error means for a retry, decided once, here, by its SQLSTATE class
// (https://www.postgresql.org/docs/15/errcodes-appendix.html). A statement PostgreSQL refused for
// what it says (bad data, a missing object or privilege, an unsupported feature) is refused again
// on every retry; a server starting, stopping or short of resources may answer a moment later.
import { DatabaseError } from 'pg';

/** SQLSTATE classes whose errors no retry can fix. */
const NON_RETRYABLE_CLASSES: Record<string, { name: string; advice: string }> = {
  '22': {
    name: 'data exception',
    advice:
      'a value sent to PostgreSQL is not valid for its type or for the database encoding: correct the input (a label, a target, a name) and run the workflow again',
  },
  '42': {
    name: 'syntax error or access rule violation',
    advice:
      'an object the step needs is missing, or the role is not allowed to use it: check the names in the input, the server version and the privileges of the catalog role',
  },
  '28': {
    name: 'invalid authorization specification',
    advice: "the role may not do this: fix the catalog's postgres.user, its password or pg_hba.conf",
  },
  '0A': {
    name: 'feature not supported',
    advice: 'this PostgreSQL server does not support what the step asked: check its version and settings',
  },
};

/** SQLSTATE classes of transient trouble, retried: named so that messages can say which. */
const RETRYABLE_CLASSES: Record<string, string> = {
  '08': 'connection exception',
  '57': 'operator intervention', // 57P01 admin_shutdown, 57P03 cannot_connect_now: a server stopping or starting
  '53': 'insufficient resources',
  '40': 'transaction rollback', // 40001 serialization_failure, 40P01 deadlock_detected
};

const ADVICE_42501 =
  "the catalog's role lacks a privilege the step needs: grant it (GRANT … TO the role, as a superuser) or name a role that has it in the catalog, then run the workflow again";

export type SqlstateVerdict = { retryable: true; className: string } | { retryable: false; className: string };

/** The verdict for one SQLSTATE; a class not listed is retried, as any unexpected failure is. */
export function classifySqlstate(sqlstate: string): SqlstateVerdict {
  const cls = sqlstate.slice(0, 2);
  const refused = NON_RETRYABLE_CLASSES[cls];
  if (refused) return { retryable: false, className: refused.name };
  return { retryable: true, className: RETRYABLE_CLASSES[cls] ?? 'other' };
}

/**
 * PostgreSQL refused something in a way no retry can fix: a statement (its SQLSTATE says so) or
 * a start (the startup process ended with FATAL). The message leads with the server's own words.
 */
export class PostgresRefusedError extends Error {
  override readonly name = 'PostgresRefusedError';
  constructor(
    message: string,
    readonly sqlstate: string | undefined,
    readonly serverMessage: string,
    /** Class 28: a refusal of the role, reported as a refused login. */
    readonly authorization = false,
  ) {
    super(message);
  }
}

/** The error PostgreSQL sent (an ErrorResponse), found on `err` or along its causes. */
export function postgresErrorOf(err: unknown): DatabaseError | undefined {
  for (let e = err, depth = 0; e && depth < 10; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof DatabaseError) return e;
    // Another copy of pg-protocol makes its own DatabaseError class: recognise the shape too.
    const shaped = e as { code?: unknown; severity?: unknown; message?: unknown };
    if (
      typeof shaped.code === 'string' &&
      /^[0-9A-Z]{5}$/.test(shaped.code) &&
      typeof shaped.severity === 'string' &&
      typeof shaped.message === 'string'
    )
      return e as DatabaseError;
  }
  return undefined;
}

/** `err` as a PostgresRefusedError when PostgreSQL refused for good; undefined when a retry may help. */
export function nonRetryablePostgresError(err: unknown): PostgresRefusedError | undefined {
  if (err instanceof PostgresRefusedError) return err;
  const pgError = postgresErrorOf(err);
  if (!pgError?.code) return undefined;
  const verdict = classifySqlstate(pgError.code);
  if (verdict.retryable) return undefined;
  const cls = NON_RETRYABLE_CLASSES[pgError.code.slice(0, 2)]!;
  const advice = pgError.code === '42501' ? ADVICE_42501 : cls.advice;
  const detail = pgError.detail ? ` (${pgError.detail})` : '';
  const hint = pgError.hint ? ` Hint: ${pgError.hint}.` : '';
  return new PostgresRefusedError(
    `PostgreSQL refused: ${pgError.message}${detail} (SQLSTATE ${pgError.code}, ${verdict.className}).${hint} Retrying cannot fix this: ${advice}.`,
    pgError.code,
    pgError.message,
    pgError.code.startsWith('28'),
  );
}
