// Input of delayedReplicaPitrWorkflow and locateIncidentWorkflow, checked before anything runs.
import { recoveryTargetProblem, type RecoveryTarget } from '../common/recoveryTarget';
import { parseDuration } from '../common/durations';
import { checkInputObject, invalidInput, optionalBoolean, optionalDuration } from './inputValidation';
import { lockWaitFromInput, LOCK_INPUT_KEYS, type LockWaitChoice } from './lockInput';
import type {
  DelayedReplicaPitrInput,
  IncidentQuery,
  LocateIncidentInput,
} from '../contract/operations/delayedReplicaPitr';
import { WORKFLOW_TYPES } from '../contract/operations/registry';

export type { DelayedReplicaPitrInput, IncidentQuery };

export interface ParsedPitrInput {
  cluster: string;
  target: RecoveryTarget | { incident: IncidentQuery };
  inclusive: boolean;
  then: 'pause' | 'export' | 'promote';
  tables: string[];
  insertMissing: boolean;
  returnToDelay: boolean;
  maxPauseMs: number;
  stallTimeoutMs: number;
  lockWait: LockWaitChoice;
}

const TYPE = WORKFLOW_TYPES.pitr;
const TABLE = /^(?:[A-Za-z_][A-Za-z0-9_$]{0,62}\.)?[A-Za-z_][A-Za-z0-9_$]{0,62}$/;
const TARGET_KINDS = ['xid', 'time', 'lsn', 'name', 'incident'];

export function parseIncidentQuery(workflowType: string, value: unknown): IncidentQuery {
  if (typeof value !== 'object' || value === null)
    throw invalidInput(workflowType, 'incident must be an object { from, to, table? } with times carrying a zone');
  const q = value as Record<string, unknown>;
  const unknown = Object.keys(q).filter((k) => !['from', 'to', 'table'].includes(k));
  if (unknown.length)
    throw invalidInput(workflowType, `incident has unknown field(s) ${unknown.join(', ')}; allowed: from, to, table`);
  for (const key of ['from', 'to'] as const) {
    const problem =
      typeof q[key] === 'string' ? recoveryTargetProblem({ time: q[key] as string }) : `incident.${key} is required`;
    if (problem) throw invalidInput(workflowType, `incident.${key}: ${problem}`);
  }
  if (Date.parse(q.from as string) >= Date.parse(q.to as string))
    throw invalidInput(workflowType, 'incident.from must be before incident.to');
  if (q.table !== undefined && (typeof q.table !== 'string' || !TABLE.test(q.table)))
    throw invalidInput(workflowType, `incident.table ${JSON.stringify(q.table)} is not a plain table name`);
  return { from: q.from as string, to: q.to as string, table: q.table as string | undefined };
}

/** The PITR's target (and recoverRows's): exactly one of xid, time, lsn, name, or an incident window. */
export function parsePitrTarget(rawTarget: unknown, workflowType: string = TYPE): ParsedPitrInput['target'] {
  const TYPE = workflowType;
  if (typeof rawTarget !== 'object' || rawTarget === null || Array.isArray(rawTarget)) {
    throw invalidInput(
      TYPE,
      'target is required: one of { "xid": "…" }, { "time": "2026-11-21T10:15:00+09:00" }, { "lsn": "0/3000060" }, { "name": "…" } or { "incident": { "from", "to", "table"? } }',
    );
  }
  const given = Object.keys(rawTarget).filter((k) => (rawTarget as Record<string, unknown>)[k] !== undefined);
  const unknownKinds = given.filter((k) => !TARGET_KINDS.includes(k));
  if (unknownKinds.length)
    throw invalidInput(
      TYPE,
      `target has unknown kind(s) ${unknownKinds.join(', ')}; use one of ${TARGET_KINDS.join(', ')}`,
    );
  if (given.length !== 1)
    throw invalidInput(TYPE, `give exactly one target kind, not ${given.length ? given.join(' and ') : 'none'}`);
  const kind = given[0] as string;
  if (kind === 'incident')
    return { incident: parseIncidentQuery(TYPE, (rawTarget as Record<string, unknown>).incident) };
  const value = (rawTarget as Record<string, unknown>)[kind];
  const normalized = {
    [kind]: typeof value === 'number' && kind === 'xid' ? String(value) : value,
  } as RecoveryTarget;
  const problem = recoveryTargetProblem(normalized);
  if (problem) throw invalidInput(TYPE, `target: ${problem}`);
  return normalized;
}

/** The tables to export (and whether to insert the missing rows), with then "export" only. */
function parseExport(then: ParsedPitrInput['then'], rawExport: unknown): { tables: string[]; insertMissing: boolean } {
  if (then !== 'export') {
    if (rawExport !== undefined) throw invalidInput(TYPE, `export is only used with then "export" (then is "${then}")`);
    return { tables: [], insertMissing: false };
  }
  const exp = rawExport as { tables?: unknown; insertMissing?: unknown } | undefined;
  if (typeof exp !== 'object' || exp === null || !Array.isArray(exp.tables) || exp.tables.length === 0)
    throw invalidInput(TYPE, 'then "export" needs export: { "tables": ["orders", …] }');
  const extra = Object.keys(exp).filter((k) => k !== 'tables' && k !== 'insertMissing');
  if (extra.length)
    throw invalidInput(TYPE, `export has unknown field(s) ${extra.join(', ')}; allowed: tables, insertMissing`);
  for (const t of exp.tables)
    if (typeof t !== 'string' || !TABLE.test(t))
      throw invalidInput(
        TYPE,
        `export table ${JSON.stringify(t)} is not a plain table name such as "orders" or "sales.orders"`,
      );
  if (new Set(exp.tables).size !== exp.tables.length) throw invalidInput(TYPE, 'export.tables lists a table twice');
  if (exp.insertMissing !== undefined && typeof exp.insertMissing !== 'boolean')
    throw invalidInput(TYPE, 'export.insertMissing must be true or false');
  return { tables: exp.tables as string[], insertMissing: exp.insertMissing === true };
}

export function parsePitrInput(input: unknown): ParsedPitrInput {
  const record = checkInputObject(TYPE, input, [
    'cluster',
    'target',
    'inclusive',
    'then',
    'export',
    'returnToDelay',
    'maxPause',
    'replayStallTimeout',
    ...LOCK_INPUT_KEYS,
  ]);
  const target = parsePitrTarget(record.target);
  const then = record.then;
  if (then !== 'pause' && then !== 'export' && then !== 'promote')
    throw invalidInput(TYPE, `then must be "pause", "export" or "promote", not ${JSON.stringify(then)}`);
  const { tables, insertMissing } = parseExport(then, record.export);
  const returnToDelay = optionalBoolean(TYPE, record, 'returnToDelay', then !== 'promote');
  if (then === 'promote' && returnToDelay)
    throw invalidInput(
      TYPE,
      'a promoted replica cannot return to being delayed (it starts a new timeline and needs a fresh base backup); leave returnToDelay out',
    );
  if (record.maxPause !== undefined && !(then === 'pause' && returnToDelay))
    throw invalidInput(TYPE, 'maxPause applies only with then "pause" and returnToDelay');
  const stall =
    record.replayStallTimeout === undefined
      ? 600_000
      : parseDuration('replayStallTimeout', record.replayStallTimeout, { min: 5000, max: 86_400_000 });
  if (typeof stall === 'string') throw invalidInput(TYPE, stall);
  return {
    cluster: record.cluster as string,
    target,
    inclusive: optionalBoolean(TYPE, record, 'inclusive', false),
    then,
    tables,
    insertMissing,
    returnToDelay,
    maxPauseMs: optionalDuration(TYPE, record, 'maxPause', 86_400_000, { min: 1000, max: 30 * 86_400_000 }),
    stallTimeoutMs: stall,
    lockWait: lockWaitFromInput(TYPE, record),
  };
}

/** locateIncidentWorkflow's input: the cluster and the window, checked as a PITR's incident is. */
export function parseLocateIncidentInput(input: unknown): LocateIncidentInput {
  const TYPE = WORKFLOW_TYPES.locateIncident;
  const record = checkInputObject(TYPE, input, ['cluster', 'from', 'to', 'table']);
  const query = parseIncidentQuery(TYPE, {
    from: record.from,
    to: record.to,
    ...(record.table !== undefined ? { table: record.table } : {}),
  });
  return { cluster: record.cluster as string, ...query };
}
