// Workflow input checks, run first inside the workflow (deterministic, no I/O): bad input fails
// the workflow with a non-retryable error before anything is touched.
import { ApplicationFailure } from '@temporalio/workflow';
import { clusterNameProblem } from '../common/names';
import { parseDuration, type DurationBounds } from '../common/durations';
import { controlCharacterProblem } from '../common/freeText';

export function invalidInput(workflowType: string, message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(
    `${workflowType}: invalid input: ${message}. Nothing was changed.`,
    'InvalidInput',
  );
}

/** Checks that the input is an object with only known keys and a valid `cluster`. */
export function checkInputObject(
  workflowType: string,
  input: unknown,
  allowedKeys: readonly string[],
): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw invalidInput(workflowType, 'the input must be one JSON object such as {"cluster": "demo"}');
  }
  const record = input as Record<string, unknown>;
  const unknown = Object.keys(record).filter((k) => !allowedKeys.includes(k));
  if (unknown.length)
    throw invalidInput(
      workflowType,
      `unknown field(s) ${unknown.map((k) => JSON.stringify(k)).join(', ')}; allowed: ${allowedKeys.join(', ')}`,
    );
  const problem = clusterNameProblem(record.cluster);
  if (problem) throw invalidInput(workflowType, problem);
  return record;
}

export function optionalBoolean(
  workflowType: string,
  record: Record<string, unknown>,
  key: string,
  fallback: boolean,
): boolean {
  const value = record[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean')
    throw invalidInput(workflowType, `${key} must be true or false, not ${JSON.stringify(value)}`);
  return value;
}

export function optionalDuration(
  workflowType: string,
  record: Record<string, unknown>,
  key: string,
  fallbackMs: number,
  bounds: DurationBounds,
): number {
  const value = record[key];
  if (value === undefined) return fallbackMs;
  const parsed = parseDuration(key, value, bounds);
  if (typeof parsed === 'string') throw invalidInput(workflowType, parsed);
  return parsed;
}

/** Free text (a label, a reason): a string of at most `maxLength` characters, without control characters. */
export function optionalString(
  workflowType: string,
  record: Record<string, unknown>,
  key: string,
  maxLength: number,
): string | undefined {
  const value = record[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length > maxLength)
    throw invalidInput(workflowType, `${key} must be a string of at most ${maxLength} characters`);
  const problem = controlCharacterProblem(key, value);
  if (problem) throw invalidInput(workflowType, problem);
  return value;
}

export function optionalReplicas(
  workflowType: string,
  record: Record<string, unknown>,
  key: string,
): number | undefined {
  const value = record[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 100) {
    throw invalidInput(workflowType, `${key} must be a whole number from 1 to 100, not ${JSON.stringify(value)}`);
  }
  return value;
}
