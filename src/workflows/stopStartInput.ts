// Input of plannedStopWorkflow and plannedStartWorkflow, checked before anything runs (pure code:
// the workflows call these first, and a client may call them before starting one).
import {
  checkInputObject,
  invalidInput,
  optionalBoolean,
  optionalDuration,
  optionalReplicas,
  optionalString,
} from './inputValidation';
import { lockWaitFromInput, LOCK_INPUT_KEYS, type LockWaitChoice } from './lockInput';
import { WORKFLOW_TYPES } from '../contract/operations/registry';

const DEFAULT_MAX_HOLD_MS = 8 * 3_600_000;

export interface ParsedPlannedStopInput {
  cluster: string;
  reason?: string;
  hold: boolean;
  maxHoldMs: number;
  lockWait: LockWaitChoice;
}

export function parsePlannedStopInput(input: unknown): ParsedPlannedStopInput {
  const TYPE = WORKFLOW_TYPES.plannedStop;
  const record = checkInputObject(TYPE, input, [
    'cluster',
    'reason',
    'holdUntilResumed',
    'maxHold',
    ...LOCK_INPUT_KEYS,
  ]);
  const cluster = record.cluster as string;
  const reason = optionalString(TYPE, record, 'reason', 500);
  const hold = optionalBoolean(TYPE, record, 'holdUntilResumed', false);
  const maxHoldMs = optionalDuration(TYPE, record, 'maxHold', DEFAULT_MAX_HOLD_MS, { min: 1000, max: 30 * 86_400_000 });
  if (!hold && record.maxHold !== undefined)
    throw invalidInput(TYPE, 'maxHold applies only with "holdUntilResumed": true');
  const lockWait = lockWaitFromInput(TYPE, record);
  return { cluster, reason, hold, maxHoldMs, lockWait };
}

export interface ParsedPlannedStartInput {
  cluster: string;
  replicas?: number;
  lockWait: LockWaitChoice;
}

export function parsePlannedStartInput(input: unknown): ParsedPlannedStartInput {
  const TYPE = WORKFLOW_TYPES.plannedStart;
  const record = checkInputObject(TYPE, input, ['cluster', 'replicas', ...LOCK_INPUT_KEYS]);
  const cluster = record.cluster as string;
  const replicas = optionalReplicas(TYPE, record, 'replicas');
  const lockWait = lockWaitFromInput(TYPE, record);
  return { cluster, replicas, lockWait };
}
