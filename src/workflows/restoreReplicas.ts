// The restore's handling of its cluster's replicas: the input option and the warnings that go at
// the top of the result (pure code, run in the workflow).
import { invalidInput } from './inputValidation';

export function replicasMode(type: string, record: Record<string, unknown>): 'auto' | 'rebuild' | 'follow' | 'leave' {
  const value = record.replicas;
  if (value === undefined) return 'auto';
  if (value === 'rebuild' || value === 'follow' || value === 'leave') return value;
  throw invalidInput(
    type,
    `replicas must be "rebuild", "follow" or "leave" (default: follow the new timeline when possible, else rebuild), not ${JSON.stringify(value)}`,
  );
}

export function replicaWarnings(
  replicas: { replicas: { replica: string; action: string; note: string }[] } | { warning: string } | undefined,
): string[] {
  if (!replicas) return [];
  if ('warning' in replicas) return [replicas.warning];
  return replicas.replicas
    .filter((r) => r.action === 'left' || r.action === 'skipped')
    .map((r) => `replica "${r.replica}": ${r.note}`);
}
