// WAL locations (LSNs) as PostgreSQL prints them: two hexadecimal halves, "0/3000060". Pure code
// (no Node imports): workflows compare LSNs to report progress and to refuse targets.

/** An LSN exactly as pg_lsn accepts it: 1–8 hex digits, '/', 1–8 hex digits. */
const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

export function isLsn(text: unknown): text is string {
  return typeof text === 'string' && LSN_TEXT.test(text);
}

/** Why `text` is not an LSN, or undefined when it is one. */
export function lsnProblem(text: unknown): string | undefined {
  if (typeof text !== 'string') return 'an LSN must be a string such as "0/3000060"';
  if (!LSN_TEXT.test(text))
    return `${JSON.stringify(text.slice(0, 40))} is not an LSN: write two hexadecimal numbers separated by '/', such as "0/3000060" (as pg_current_wal_lsn() prints it)`;
  return undefined;
}

/** '0/3000060' → 50331744n. Throws on anything that is not an LSN. */
export function parseLsn(text: string): bigint {
  const match = LSN_TEXT.exec(text);
  if (!match) throw new Error(lsnProblem(text));
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** 50331744n → '0/3000060' (upper-case hex, as PostgreSQL prints it). */
export function formatLsn(position: bigint): string {
  if (position < 0n || position > 0xffffffffffffffffn) throw new Error(`WAL position ${position} is out of range`);
  return `${(position >> 32n).toString(16).toUpperCase()}/${(position & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Negative when a is before b, 0 when equal, positive when a is after b. */
export function compareLsn(a: string, b: string): number {
  const pa = parseLsn(a);
  const pb = parseLsn(b);
  return pa < pb ? -1 : pa > pb ? 1 : 0;
}

/** Bytes from `from` to `to` (negative when `to` is before `from`), as pg_wal_lsn_diff(to, from). */
export function lsnBytesBetween(from: string, to: string): bigint {
  return parseLsn(to) - parseLsn(from);
}
