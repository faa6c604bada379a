// Input checks for the scratch workflows: verifyBackup, recoverRows, openScratch, listScratch and
// scratchGc (pure code, run first in the workflow; a client may call them before starting one).
import { isBackupId } from '../common/backupIds';
import { recoveryTargetProblem, type RecoveryTarget } from '../common/recoveryTarget';
import { clusterNameProblem } from '../common/names';
import { checkInputObject, invalidInput, optionalBoolean, optionalDuration } from './inputValidation';
import { lockWaitFromInput, LOCK_INPUT_KEYS, type LockWaitChoice } from './lockInput';
import { parsePitrTarget } from './pitrInput';
import type { IncidentQuery } from '../contract/operations/delayedReplicaPitr';
import { WORKFLOW_TYPES } from '../contract/operations/registry';

const TABLE = /^(?:[A-Za-z_][A-Za-z0-9_$]{0,62}\.)?[A-Za-z_][A-Za-z0-9_$]{0,62}$/;
const DATABASE = /^[A-Za-z_][A-Za-z0-9_-]{0,62}$/;
const SUBDIRECTORY = /^[A-Za-z0-9_.-]{1,100}(\/[A-Za-z0-9_.-]{1,100}){0,5}$/;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** A backup id, or "latest"; undefined when not given. */
function backupOrLatest(type: string, value: unknown): string | undefined {
  if (value === undefined || value === 'latest') return value;
  if (!isBackupId(value))
    throw invalidInput(
      type,
      `backup must be "latest" or a backup id such as "20261122T002520Z-1a2b3c4d" (pgops backups lists them), not ${JSON.stringify(value)}`,
    );
  return value;
}

export interface ParsedVerifyBackupInput {
  cluster: string;
  backup: string;
  amcheck: boolean;
  checksums: boolean;
  archive: boolean;
  replayToEnd: boolean;
  maxDurationMs: number;
}

export function parseVerifyBackupInput(input: unknown): ParsedVerifyBackupInput {
  const TYPE = WORKFLOW_TYPES.verifyBackup;
  const record = checkInputObject(TYPE, input, ['cluster', 'backup', 'checks', 'maxDuration']);
  const checks = record.checks ?? {};
  if (typeof checks !== 'object' || checks === null || Array.isArray(checks))
    throw invalidInput(TYPE, 'checks must be an object such as {"amcheck": true, "replayToEnd": false}');
  const c = checks as Record<string, unknown>;
  const known = ['amcheck', 'checksums', 'archive', 'replayToEnd'];
  const unknown = Object.keys(c).filter((k) => !known.includes(k));
  if (unknown.length)
    throw invalidInput(TYPE, `checks has unknown field(s) ${unknown.join(', ')}; allowed: ${known.join(', ')}`);
  return {
    cluster: record.cluster as string,
    backup: backupOrLatest(TYPE, record.backup) ?? 'latest',
    amcheck: optionalBoolean(TYPE, c, 'amcheck', true),
    checksums: optionalBoolean(TYPE, c, 'checksums', true),
    archive: optionalBoolean(TYPE, c, 'archive', true),
    replayToEnd: optionalBoolean(TYPE, c, 'replayToEnd', false),
    maxDurationMs: optionalDuration(TYPE, record, 'maxDuration', 6 * HOUR, { min: 60_000, max: 7 * DAY }),
  };
}

export interface ParsedRecoverRowsInput {
  cluster: string;
  target: RecoveryTarget | { incident: IncidentQuery };
  inclusive: boolean;
  tables: string[];
  insertMissing: boolean;
  databases: string[];
  restoreAs?: string;
  backup?: string;
  exportDir?: string;
  maxDurationMs: number;
  lockWait: LockWaitChoice;
}

function nameList(type: string, record: Record<string, unknown>, key: string, pattern: RegExp, what: string): string[] {
  const value = record[key];
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length === 0 || value.length > 100)
    throw invalidInput(type, `${key} must be a list of 1 to 100 ${what}s`);
  for (const item of value)
    if (typeof item !== 'string' || !pattern.test(item))
      throw invalidInput(type, `${key}: ${JSON.stringify(item)} is not a plain ${what} name`);
  if (new Set(value).size !== value.length) throw invalidInput(type, `${key} lists a ${what} twice`);
  return value as string[];
}

export function parseRecoverRowsInput(input: unknown): ParsedRecoverRowsInput {
  const TYPE = WORKFLOW_TYPES.recoverRows;
  const record = checkInputObject(TYPE, input, [
    'cluster',
    'target',
    'inclusive',
    'tables',
    'insertMissing',
    'databases',
    'restoreAs',
    'backup',
    'exportDir',
    'maxDuration',
    ...LOCK_INPUT_KEYS,
  ]);
  const target = parsePitrTarget(record.target, TYPE);
  const tables = nameList(TYPE, record, 'tables', TABLE, 'table');
  const databases = nameList(TYPE, record, 'databases', DATABASE, 'database');
  if (tables.length === 0 && databases.length === 0)
    throw invalidInput(TYPE, 'name what to recover: tables: ["orders", …] and/or databases: ["appdb"]');
  const insertMissing = optionalBoolean(TYPE, record, 'insertMissing', false);
  if (insertMissing && tables.length === 0) throw invalidInput(TYPE, 'insertMissing needs tables');
  let restoreAs: string | undefined;
  if (record.restoreAs !== undefined) {
    if (databases.length !== 1) throw invalidInput(TYPE, 'restoreAs needs exactly one database in databases');
    if (typeof record.restoreAs !== 'string' || !DATABASE.test(record.restoreAs))
      throw invalidInput(TYPE, `restoreAs ${JSON.stringify(record.restoreAs)} is not a plain database name`);
    if (record.restoreAs === databases[0])
      throw invalidInput(TYPE, 'restoreAs must be a new name, not the database itself (nothing is ever overwritten)');
    restoreAs = record.restoreAs;
  }
  let exportDir: string | undefined;
  if (record.exportDir !== undefined) {
    if (
      typeof record.exportDir !== 'string' ||
      !SUBDIRECTORY.test(record.exportDir) ||
      record.exportDir.split('/').some((p) => p === '..' || p === '.')
    )
      throw invalidInput(
        TYPE,
        `exportDir ${JSON.stringify(record.exportDir)} must be a relative directory below the catalog's exportDir, such as "incident-4711"`,
      );
    exportDir = record.exportDir;
  }
  return {
    cluster: record.cluster as string,
    target,
    inclusive: optionalBoolean(TYPE, record, 'inclusive', false),
    tables,
    insertMissing,
    databases,
    restoreAs,
    backup: backupOrLatest(TYPE, record.backup),
    exportDir,
    maxDurationMs: optionalDuration(TYPE, record, 'maxDuration', 6 * HOUR, { min: 60_000, max: 7 * DAY }),
    lockWait: lockWaitFromInput(TYPE, record),
  };
}

export interface ParsedOpenScratchInput {
  cluster: string;
  /** A recovery target, or a backup as it was taken. */
  asOf: RecoveryTarget | { backup: string };
  ttlMs: number;
}

export function parseOpenScratchInput(input: unknown): ParsedOpenScratchInput {
  const TYPE = WORKFLOW_TYPES.openScratch;
  const record = checkInputObject(TYPE, input, ['cluster', 'asOf', 'ttl']);
  const raw = record.asOf;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw invalidInput(
      TYPE,
      'asOf is required: one of { "time": "2026-11-21T10:15:00+09:00" }, { "lsn": "0/3000060" }, { "xid": "…" } or { "backup": "<id>" }',
    );
  const given = Object.entries(raw as Record<string, unknown>).filter(([, v]) => v !== undefined);
  const kinds = ['time', 'lsn', 'xid', 'backup'];
  const unknown = given.filter(([k]) => !kinds.includes(k)).map(([k]) => k);
  if (unknown.length)
    throw invalidInput(TYPE, `asOf has unknown kind(s) ${unknown.join(', ')}; use one of ${kinds.join(', ')}`);
  if (given.length !== 1)
    throw invalidInput(
      TYPE,
      `give exactly one asOf kind, not ${given.length ? given.map(([k]) => k).join(' and ') : 'none'}`,
    );
  const [kind, value] = given[0]!;
  let asOf: ParsedOpenScratchInput['asOf'];
  if (kind === 'backup') {
    asOf = { backup: backupOrLatest(TYPE, value) ?? 'latest' };
  } else {
    const target = { [kind]: typeof value === 'number' && kind === 'xid' ? String(value) : value } as RecoveryTarget;
    const problem = recoveryTargetProblem(target);
    if (problem) throw invalidInput(TYPE, `asOf: ${problem}`);
    asOf = target;
  }
  if (record.ttl === undefined)
    throw invalidInput(TYPE, 'ttl is required: how long the scratch server stays open, such as "2h" (at most 7d)');
  return {
    cluster: record.cluster as string,
    asOf,
    ttlMs: optionalDuration(TYPE, record, 'ttl', HOUR, { min: 1000, max: 7 * DAY }),
  };
}

export interface ParsedScratchGcInput {
  cluster?: string;
  all: boolean;
}

/** The input of scratchGc and listScratch: an optional cluster (every cluster without one). */
export function parseScratchGcInput(
  input: unknown,
  type: string = WORKFLOW_TYPES.scratchGc,
  allowed = ['cluster', 'all'],
): ParsedScratchGcInput {
  const record = (input ?? {}) as Record<string, unknown>;
  if (typeof record !== 'object' || Array.isArray(record))
    throw invalidInput(type, 'the input must be one JSON object such as {"cluster": "demo"}');
  const unknown = Object.keys(record).filter((k) => !allowed.includes(k));
  if (unknown.length)
    throw invalidInput(type, `unknown field(s) ${unknown.join(', ')}; allowed: ${allowed.join(', ')}`);
  if (record.cluster !== undefined) {
    const problem = clusterNameProblem(record.cluster);
    if (problem) throw invalidInput(type, problem);
  }
  return { cluster: record.cluster as string | undefined, all: optionalBoolean(type, record, 'all', false) };
}

export function parseListScratchInput(input: unknown): { cluster?: string } {
  const { cluster } = parseScratchGcInput(input, WORKFLOW_TYPES.listScratch, ['cluster']);
  return { cluster };
}
