// Input checks for the backup, restore, backup-catalog and archive-status workflows (pure code, run
// first in the workflow; a client may call the parsers before starting one).
import { isBackupId } from '../common/backupIds';
import { recoveryTargetProblem, type RecoveryTarget } from '../common/recoveryTarget';
import { parseDuration } from '../common/durations';
import { checkInputObject, invalidInput, optionalBoolean, optionalString } from './inputValidation';
import { lockWaitFromInput, LOCK_INPUT_KEYS, type LockWaitChoice } from './lockInput';
import { replicasMode } from './restoreReplicas';
import type { ClusterInput } from '../contract/operations/backupCatalog';
import { WORKFLOW_TYPES } from '../contract/operations/registry';
import type { VolumeRestoreMethod } from '../contract/operations/restoreSteps';

export function backupMode(type: string, record: Record<string, unknown>): 'online' | 'offline' {
  const mode = record.mode ?? 'online';
  if (mode !== 'online' && mode !== 'offline')
    throw invalidInput(type, `mode must be "online" or "offline", not ${JSON.stringify(mode)}`);
  return mode;
}

export function retention(
  type: string,
  record: Record<string, unknown>,
): { count?: number; ageMs?: number } | undefined {
  const keep = record.keep;
  if (keep === undefined) return undefined;
  if (typeof keep !== 'object' || keep === null || Array.isArray(keep))
    throw invalidInput(type, 'keep must be an object such as {"count": 7} or {"age": "30d"}');
  const k = keep as Record<string, unknown>;
  const unknown = Object.keys(k).filter((key) => key !== 'count' && key !== 'age');
  if (unknown.length) throw invalidInput(type, `unknown keep field(s) ${unknown.join(', ')}: use count and/or age`);
  if (k.count === undefined && k.age === undefined) throw invalidInput(type, 'keep needs count and/or age');
  if (
    k.count !== undefined &&
    (typeof k.count !== 'number' || !Number.isInteger(k.count) || k.count < 1 || k.count > 10_000)
  )
    throw invalidInput(
      type,
      `keep.count must be a whole number from 1 to 10000 (the backup just taken counts), not ${JSON.stringify(k.count)}`,
    );
  let ageMs: number | undefined;
  if (k.age !== undefined) {
    const parsed = parseDuration('keep.age', k.age, { min: 3_600_000, max: 3650 * 86_400_000 });
    if (typeof parsed === 'string') throw invalidInput(type, parsed);
    ageMs = parsed;
  }
  return { count: k.count as number | undefined, ageMs };
}

export function backupRef(type: string, record: Record<string, unknown>, allowLatest: boolean): string {
  const backup = record.backup;
  if (allowLatest && backup === 'latest') return backup;
  if (!isBackupId(backup))
    throw invalidInput(
      type,
      `backup must be ${allowLatest ? '"latest" or ' : ''}a backup id such as "20261122T002520Z-1a2b3c4d" (listBackupsWorkflow lists them), not ${JSON.stringify(backup)}`,
    );
  return backup;
}

/** A restore that replaces the cluster's data must name the cluster twice. */
export function confirmation(type: string, record: Record<string, unknown>, cluster: string, what: string): void {
  if (record.confirm !== cluster)
    throw invalidInput(
      type,
      `confirm must repeat the cluster name ("confirm": "${cluster}"): ${what}${record.confirm === undefined ? '' : `; got ${JSON.stringify(record.confirm)}`}`,
    );
}

export function restoreTarget(type: string, record: Record<string, unknown>): 'immediate' | RecoveryTarget | undefined {
  const target = record.recoveryTarget;
  if (target === undefined || target === 'immediate') return target;
  const problem = recoveryTargetProblem(target);
  if (problem) throw invalidInput(type, `recoveryTarget: ${problem} (or "immediate")`);
  const t = target as Record<string, unknown>;
  if (t.inclusive !== undefined) throw invalidInput(type, 'give inclusive next to recoveryTarget, not inside it');
  return target as RecoveryTarget;
}

export function recoveryTimeline(
  type: string,
  record: Record<string, unknown>,
): 'current' | 'latest' | number | undefined {
  const value = record.recoveryTargetTimeline;
  if (value === undefined || value === 'current' || value === 'latest') return value;
  if (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 0xffffffff) return value;
  throw invalidInput(
    type,
    `recoveryTargetTimeline must be "current" (the backup's timeline), "latest" or a timeline number, not ${JSON.stringify(value)}`,
  );
}

export function afterRecovery(type: string, record: Record<string, unknown>): 'promote' | 'pause' {
  const value = record.afterRecovery ?? 'promote';
  if (value !== 'promote' && value !== 'pause')
    throw invalidInput(type, `afterRecovery must be "promote" or "pause", not ${JSON.stringify(value)}`);
  return value;
}

export interface ParsedSnapshotBackupInput {
  cluster: string;
  mode: 'online' | 'offline';
  keep?: { count?: number; ageMs?: number };
  /** The label given; the workflow names the backup when none is. */
  label?: string;
  lockWait: LockWaitChoice;
}

export function parseSnapshotBackupInput(input: unknown): ParsedSnapshotBackupInput {
  const TYPE = WORKFLOW_TYPES.backup;
  const record = checkInputObject(TYPE, input, ['cluster', 'mode', 'label', 'keep', ...LOCK_INPUT_KEYS]);
  const cluster = record.cluster as string;
  const mode = backupMode(TYPE, record);
  const keep = retention(TYPE, record);
  const label = optionalString(TYPE, record, 'label', 200);
  const lockWait = lockWaitFromInput(TYPE, record);
  return { cluster, mode, keep, label, lockWait };
}

export interface ParsedRollbackRestoreInput {
  cluster: string;
  backup: string;
  recoveryTarget?: 'immediate' | RecoveryTarget;
  inclusive: boolean;
  action: 'promote' | 'pause';
  timeline?: 'current' | 'latest' | number;
  safety: boolean;
  replicaMode: 'auto' | 'rebuild' | 'follow' | 'leave';
  restoreMethod?: VolumeRestoreMethod;
  flatten?: 'background' | 'never';
  lockWait: LockWaitChoice;
}

export function parseRollbackRestoreInput(input: unknown): ParsedRollbackRestoreInput {
  const TYPE = WORKFLOW_TYPES.restore;
  const record = checkInputObject(TYPE, input, [
    'cluster',
    'backup',
    'confirm',
    'recoveryTarget',
    'inclusive',
    'afterRecovery',
    'recoveryTargetTimeline',
    'safetySnapshot',
    'replicas',
    'restoreMethod',
    'flatten',
    ...LOCK_INPUT_KEYS,
  ]);
  const cluster = record.cluster as string;
  const backup = backupRef(TYPE, record, true);
  confirmation(TYPE, record, cluster, 'a restore replaces the data of the cluster');
  const recoveryTarget = restoreTarget(TYPE, record);
  const inclusive = optionalBoolean(TYPE, record, 'inclusive', false);
  const action = afterRecovery(TYPE, record);
  const timeline = recoveryTimeline(TYPE, record);
  const safety = optionalBoolean(TYPE, record, 'safetySnapshot', true);
  const replicaMode = replicasMode(TYPE, record);
  const restoreMethod = oneOf(TYPE, record, 'restoreMethod', ['auto', 'clone-swap', 'rollback'] as const);
  const flatten = oneOf(TYPE, record, 'flatten', ['background', 'never'] as const);
  const lockWait = lockWaitFromInput(TYPE, record);
  return {
    cluster,
    backup,
    recoveryTarget,
    inclusive,
    action,
    timeline,
    safety,
    replicaMode,
    restoreMethod,
    flatten,
    lockWait,
  };
}

function oneOf<T extends string>(
  type: string,
  record: Record<string, unknown>,
  key: string,
  values: readonly T[],
): T | undefined {
  const value = record[key];
  if (value === undefined) return undefined;
  if (typeof value === 'string' && (values as readonly string[]).includes(value)) return value as T;
  throw invalidInput(
    type,
    `${key} must be ${values.map((v) => `"${v}"`).join(', ')} or left out, not ${JSON.stringify(value)}`,
  );
}

export function parseListBackupsInput(input: unknown): ClusterInput {
  const record = checkInputObject(WORKFLOW_TYPES.listBackups, input, ['cluster']);
  return { cluster: record.cluster as string };
}

export interface ParsedDeleteBackupInput {
  cluster: string;
  backup: string;
  lockWait: LockWaitChoice;
}

export function parseDeleteBackupInput(input: unknown): ParsedDeleteBackupInput {
  const TYPE = WORKFLOW_TYPES.deleteBackup;
  const record = checkInputObject(TYPE, input, ['cluster', 'backup', 'confirm', ...LOCK_INPUT_KEYS]);
  const cluster = record.cluster as string;
  const backup = backupRef(TYPE, record, false);
  confirmation(TYPE, record, cluster, 'deleting a backup cannot be undone');
  const lockWait = lockWaitFromInput(TYPE, record);
  return { cluster, backup, lockWait };
}

export function parseArchiveStatusInput(input: unknown): ClusterInput {
  const record = checkInputObject(WORKFLOW_TYPES.archiveStatus, input, ['cluster']);
  return { cluster: record.cluster as string };
}
