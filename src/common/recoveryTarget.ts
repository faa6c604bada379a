// Recovery targets for PITR (docs/runbooks/delayed-replica-pitr.md step 2) and their validation. Pure code
// (no Node imports): workflows validate their input with it before any activity runs.
import { lsnProblem } from './lsn';

/** Exactly one of PostgreSQL's recovery_target_xid / _time / _lsn / _name. */
export type RecoveryTarget = { xid: string } | { time: string } | { lsn: string } | { name: string };
export type RecoveryTargetKind = 'xid' | 'time' | 'lsn' | 'name';

const KINDS: readonly RecoveryTargetKind[] = ['xid', 'time', 'lsn', 'name'];
const DIGITS = /^[0-9]{1,20}$/;
/** FirstNormalTransactionId: 0, 1 and 2 are reserved and never commit anything. */
const FIRST_NORMAL_XID = 3n;
const MAX_XID = (1n << 63n) - 1n;
/** A restore point name as pg_create_restore_point() takes it (MAXFNAMELEN - 1 = 63 bytes). */
const RESTORE_POINT_NAME = /^[A-Za-z0-9_.-]{1,63}$/;
/** ISO 8601 date-time; the zone group is optional here so that a missing zone gets its own message. */
const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

export function recoveryTargetKind(target: RecoveryTarget): RecoveryTargetKind {
  return 'xid' in target ? 'xid' : 'time' in target ? 'time' : 'lsn' in target ? 'lsn' : 'name';
}

/** The value of the one target, whatever its kind. */
export function recoveryTargetValue(target: RecoveryTarget): string {
  return 'xid' in target ? target.xid : 'time' in target ? target.time : 'lsn' in target ? target.lsn : target.name;
}

/** The PostgreSQL setting that carries this target, e.g. recovery_target_xid. */
export function recoveryTargetSetting(target: RecoveryTarget): string {
  return `recovery_target_${recoveryTargetKind(target)}`;
}

export function describeRecoveryTarget(target: RecoveryTarget, inclusive?: boolean): string {
  const base = `${recoveryTargetSetting(target)} = '${recoveryTargetValue(target)}'`;
  return inclusive === undefined ? base : `${base} (${inclusive ? 'inclusive' : 'stopping just before it'})`;
}

/**
 * Microseconds since the Unix epoch for an ISO 8601 time with a zone ('Z' or an offset), keeping
 * PostgreSQL's microsecond precision (Date keeps only milliseconds). Undefined if not such a time.
 */
export function isoTimeMicros(text: string): bigint | undefined {
  const match = ISO_TIME.exec(text);
  if (!match || !match[8]) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const check = new Date(ms);
  // Date.UTC silently rolls 30 February over into March: refuse dates that do not exist.
  if (
    check.getUTCFullYear() !== year ||
    check.getUTCMonth() !== month - 1 ||
    check.getUTCDate() !== day ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  )
    return undefined;
  const zone = match[8].toUpperCase();
  let offsetMinutes = 0;
  if (zone !== 'Z') {
    const digits = zone.slice(1).replace(':', '');
    const hours = Number(digits.slice(0, 2));
    const minutes = Number(digits.slice(2) || '0');
    if (hours > 15 || minutes > 59) return undefined;
    offsetMinutes = (zone.startsWith('-') ? -1 : 1) * (hours * 60 + minutes);
  }
  const fraction = BigInt((match[7] ?? '').padEnd(6, '0'));
  return (BigInt(ms) - BigInt(offsetMinutes) * 60_000n) * 1000n + fraction;
}

/** Microseconds since the epoch → '2024-05-01T12:00:00.123456Z' (what PostgreSQL and JSON both read). */
export function microsToIso(micros: bigint): string {
  const ms = micros / 1000n;
  const base = new Date(Number(ms)).toISOString().slice(0, 19);
  const fraction = ((micros % 1_000_000n) + 1_000_000n) % 1_000_000n;
  return `${base}.${fraction.toString().padStart(6, '0')}Z`;
}

/**
 * The time as recovery_target_time must be written: UTC with a numeric offset. PostgreSQL checks
 * the setting at server start before its time zone abbreviations are loaded, so a trailing 'Z'
 * that ALTER SYSTEM accepted makes the restart fail ("invalid value for parameter").
 */
export function recoveryTargetTimeSetting(time: string): string {
  const micros = isoTimeMicros(time);
  if (micros === undefined)
    throw new Error(timeProblem(time) ?? `${JSON.stringify(time)} is not an ISO time with a zone`);
  return microsToIso(micros).replace('T', ' ').replace('Z', '+00');
}

function timeProblem(time: string): string | undefined {
  const match = ISO_TIME.exec(time);
  if (!match)
    return `recovery target time ${JSON.stringify(time.slice(0, 40))} is not an ISO 8601 time such as "2024-05-01T12:00:00.123456Z"`;
  if (!match[8]) {
    return (
      `recovery target time ${JSON.stringify(time)} has no time zone: add 'Z' or an offset such as '+02:00'. ` +
      `The replica compares it with commit timestamps written by the primary's clock, and would read a time without a zone in its own TimeZone setting, stopping hours away from where you meant`
    );
  }
  if (isoTimeMicros(time) === undefined)
    return `recovery target time ${JSON.stringify(time)} is not a real date and time (check the day of the month, the hour and the offset)`;
  return undefined;
}

/** Why `target` is not a usable recovery target, or undefined when it is one. */
export function recoveryTargetProblem(target: unknown): string | undefined {
  if (typeof target !== 'object' || target === null || Array.isArray(target)) {
    return 'a recovery target is required: an object with exactly one of xid, time, lsn or name';
  }
  const record = target as Record<string, unknown>;
  const given = KINDS.filter((kind) => record[kind] !== undefined);
  // `inclusive` travels next to the target in some inputs; anything else is likely a typo.
  const unknown = Object.keys(record).filter(
    (key) => !(KINDS as readonly string[]).includes(key) && key !== 'inclusive',
  );
  if (unknown.length > 0)
    return `unknown recovery target field(s) ${unknown.map((k) => JSON.stringify(k)).join(', ')}: use exactly one of xid, time, lsn or name`;
  if (given.length !== 1) {
    return given.length === 0
      ? 'a recovery target needs exactly one of xid, time, lsn or name'
      : `a recovery target needs exactly one of xid, time, lsn or name, not ${given.join(' and ')}: PostgreSQL refuses several recovery_target_* settings at once`;
  }
  const kind = given[0] as RecoveryTargetKind;
  const value = record[kind];
  if (typeof value !== 'string') return `recovery target ${kind} must be a string`;
  switch (kind) {
    case 'xid': {
      if (!DIGITS.test(value))
        return `recovery target xid ${JSON.stringify(value.slice(0, 30))} must be a transaction ID in decimal digits, such as "48213"`;
      const xid = BigInt(value);
      if (xid < FIRST_NORMAL_XID)
        return `recovery target xid ${value} is reserved (0, 1 and 2 never commit anything): use the xid of the transaction to stop before`;
      if (xid > MAX_XID) return `recovery target xid ${value} is larger than any transaction ID (2^63 - 1)`;
      return undefined;
    }
    case 'time':
      return timeProblem(value);
    case 'lsn': {
      const problem = lsnProblem(value);
      return problem ? `recovery target lsn: ${problem}` : undefined;
    }
    case 'name':
      return RESTORE_POINT_NAME.test(value)
        ? undefined
        : `recovery target name ${JSON.stringify(value.slice(0, 70))} must be a restore point name of 1 to 63 letters, digits, '_', '.' or '-' (as given to pg_create_restore_point())`;
  }
}
