// The `waitForLock` input field shared by every mutating workflow.
import { parseDuration } from '../common/durations';
import { invalidInput } from './inputValidation';

export const LOCK_INPUT_KEYS = ['waitForLock'] as const;
const DEFAULT_LOCK_WAIT_MS = 24 * 3_600_000;

/** `waitForLock` checked: whether to queue for a held lock, and for how long. */
export interface LockWaitChoice {
  wait: boolean;
  waitTimeoutMs: number;
}

export function lockWaitFromInput(workflowType: string, record: Record<string, unknown>): LockWaitChoice {
  const value = record.waitForLock;
  if (value === undefined || value === false) return { wait: false, waitTimeoutMs: 0 };
  if (value === true) return { wait: true, waitTimeoutMs: DEFAULT_LOCK_WAIT_MS };
  const parsed = parseDuration('waitForLock', value, { min: 1000, max: 7 * 86_400_000 });
  if (typeof parsed === 'string') throw invalidInput(workflowType, `${parsed} (or true/false)`);
  return { wait: true, waitTimeoutMs: parsed };
}
