// The workflows' table (src/workflows/operationWorkflows.ts): every operation's input parser runs
// outside a workflow (a client may call it first) and refuses as its workflow does.
import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/common';
import { OPERATION_WORKFLOWS } from '../src/workflows/operationWorkflows';
import { OPERATIONS, WORKFLOW_TYPES, type OperationName } from '../src/contract/operations/registry';
import { parsePlannedStopInput } from '../src/workflows/stopStartInput';

describe('operation input parsers', () => {
  it('has one parser per operation of the table', () => {
    assert.deepEqual(Object.keys(OPERATION_WORKFLOWS).sort(), Object.keys(OPERATIONS).sort());
  });

  for (const name of Object.keys(OPERATIONS) as OperationName[]) {
    it(`refuses a non-object input as ${WORKFLOW_TYPES[name]} does`, () => {
      assert.throws(
        () => OPERATION_WORKFLOWS[name].parseInput(['demo']),
        (err: unknown) =>
          err instanceof ApplicationFailure &&
          err.type === 'InvalidInput' &&
          err.nonRetryable &&
          err.message ===
            `${WORKFLOW_TYPES[name]}: invalid input: the input must be one JSON object such as {"cluster": "demo"}. Nothing was changed.`,
      );
    });
  }

  it('returns the checked input with its defaults', () => {
    assert.deepEqual(parsePlannedStopInput({ cluster: 'demo', waitForLock: true }), {
      cluster: 'demo',
      reason: undefined,
      hold: false,
      maxHoldMs: 8 * 3_600_000,
      lockWait: { wait: true, waitTimeoutMs: 24 * 3_600_000 },
    });
    assert.throws(
      () => parsePlannedStopInput({ cluster: 'demo', maxHold: '1h' }),
      /plannedStopWorkflow: invalid input: maxHold applies only with "holdUntilResumed": true/,
    );
  });
});
