import assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { failureOf } from './harness/failures';
import { localClusterFixture, type LocalFixture } from './harness/fixtures';
import { refusesConnections } from '../src/drivers/postgres/session';
import { endpointOf } from '../src/dev/localPostgres';
import { lockStateQuery, lockWorkflowId } from '../src/contract/definitions';

describe('bad input is refused with a clear error and nothing is touched', () => {
  let fx: LocalFixture;
  before(async () => {
    fx = await localClusterFixture('badinput');
  });
  after(async () => fx?.teardown());

  const cases: Array<{ title: string; type: string; input: unknown; expect: RegExp; errorType: string }> = [
    {
      title: 'an unknown cluster',
      type: 'plannedStopWorkflow',
      input: { cluster: 'orders' },
      expect: /unknown cluster "orders".*"demo"/,
      errorType: 'UnknownCluster',
    },
    {
      title: 'a cluster name with shell characters',
      type: 'plannedStopWorkflow',
      input: { cluster: 'demo;rm -rf /' },
      expect: /not valid.*DNS-1123/,
      errorType: 'InvalidInput',
    },
    {
      title: 'an upper-case cluster name',
      type: 'plannedStartWorkflow',
      input: { cluster: 'Demo' },
      expect: /not valid/,
      errorType: 'InvalidInput',
    },
    {
      title: 'a missing cluster',
      type: 'plannedStopWorkflow',
      input: {},
      expect: /cluster name is required/,
      errorType: 'InvalidInput',
    },
    {
      title: 'input that is not an object',
      type: 'plannedStopWorkflow',
      input: 'demo',
      expect: /one JSON object/,
      errorType: 'InvalidInput',
    },
    {
      title: 'a misspelt field',
      type: 'plannedStopWorkflow',
      input: { cluster: 'demo', holdUntilResume: true },
      expect: /unknown field\(s\) "holdUntilResume"/,
      errorType: 'InvalidInput',
    },
    {
      title: 'a negative maxHold',
      type: 'plannedStopWorkflow',
      input: { cluster: 'demo', holdUntilResumed: true, maxHold: '-5m' },
      expect: /maxHold "-5m" is not a duration/,
      errorType: 'InvalidInput',
    },
    {
      title: 'an absurd maxHold',
      type: 'plannedStopWorkflow',
      input: { cluster: 'demo', holdUntilResumed: true, maxHold: '5000d' },
      expect: /longer than the maximum 30d/,
      errorType: 'InvalidInput',
    },
    {
      title: 'a zero maxHold',
      type: 'plannedStopWorkflow',
      input: { cluster: 'demo', holdUntilResumed: true, maxHold: 0 },
      expect: /shorter than the minimum/,
      errorType: 'InvalidInput',
    },
    {
      title: 'maxHold without a hold',
      type: 'plannedStopWorkflow',
      input: { cluster: 'demo', maxHold: '1h' },
      expect: /only with "holdUntilResumed": true/,
      errorType: 'InvalidInput',
    },
    {
      title: 'a non-boolean holdUntilResumed',
      type: 'plannedStopWorkflow',
      input: { cluster: 'demo', holdUntilResumed: 'yes' },
      expect: /true or false/,
      errorType: 'InvalidInput',
    },
    {
      title: 'negative replicas',
      type: 'plannedStartWorkflow',
      input: { cluster: 'demo', replicas: -1 },
      expect: /whole number from 1 to 100/,
      errorType: 'InvalidInput',
    },
    {
      title: 'fractional replicas',
      type: 'plannedStartWorkflow',
      input: { cluster: 'demo', replicas: 1.5 },
      expect: /whole number/,
      errorType: 'InvalidInput',
    },
    {
      title: 'a backup label holding a NUL byte',
      type: 'snapshotBackupWorkflow',
      input: { cluster: 'demo', label: 'nightly\u0000' },
      expect: /invalid input: label holds a NUL byte \(U\+0000\) at position 8: it must be printable text on one line/,
      errorType: 'InvalidInput',
    },
    {
      title: 'a backup label on two lines (it would split the LABEL line of backup_label)',
      type: 'snapshotBackupWorkflow',
      input: { cluster: 'demo', label: 'nightly\nSTART WAL LOCATION: 0/0', mode: 'offline' },
      expect: /label holds a line break \(U\+000A\) at position 8/,
      errorType: 'InvalidInput',
    },
    {
      title: 'a stop reason holding a C1 control (CSI, a terminal escape)',
      type: 'plannedStopWorkflow',
      input: { cluster: 'demo', reason: 'maintenance \u009b2J' },
      expect: /reason holds a control character \(U\+009B\) at position 13/,
      errorType: 'InvalidInput',
    },
    {
      title: 'a stop reason holding DEL',
      type: 'plannedStopWorkflow',
      input: { cluster: 'demo', reason: 'disk swap\u007f' },
      expect: /reason holds a DEL character \(U\+007F\) at position 10/,
      errorType: 'InvalidInput',
    },
    {
      title: 'a bad waitForLock',
      type: 'plannedStartWorkflow',
      input: { cluster: 'demo', waitForLock: 'forever' },
      expect: /waitForLock "forever" is not a duration/,
      errorType: 'InvalidInput',
    },
  ];

  for (const c of cases) {
    it(`refuses ${c.title} (${c.type})`, async () => {
      const { client } = await testEnv();
      await withWorker(fx.taskQueue, fx.catalogPath, async () => {
        const failure = await failureOf(
          client.workflow.execute(c.type, {
            taskQueue: fx.taskQueue,
            workflowId: `bad-${Math.random().toString(36).slice(2)}`,
            args: [c.input],
          }),
        );
        assert.equal(failure.type, c.errorType, failure.message);
        assert.match(failure.message, c.expect);
      });
      // Nothing touched: the database still serves, and nobody holds its lock.
      assert.equal(await refusesConnections(endpointOf(fx.cluster)), false);
      const lock = await (
        await testEnv()
      ).client.workflow
        .getHandle(lockWorkflowId('demo', fx.taskQueue))
        .query(lockStateQuery)
        .catch(() => undefined);
      assert.equal(lock?.holder ?? null, null);
    });
  }

  it('fails a start with more replicas than a local cluster can run, without retrying forever', async () => {
    const { client } = await testEnv();
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const failure = await failureOf(
        client.workflow.execute('plannedStartWorkflow', {
          taskQueue: fx.taskQueue,
          workflowId: `bad-replicas-${Date.now()}`,
          args: [{ cluster: 'demo', replicas: 3 }],
        }),
      );
      assert.equal(failure.type, 'ConfigurationError');
      assert.match(failure.message, /cluster "demo", step start: a local cluster runs exactly 1 server; 3 replicas/);
    });
    assert.equal(await refusesConnections(endpointOf(fx.cluster)), false);
  });

  it('puts the refusing step\'s own message at the top of the failure, not "Activity task failed"', async () => {
    const { client } = await testEnv();
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const failed = (type: string, args: Record<string, unknown>) =>
        client.workflow
          .execute(type, { taskQueue: fx.taskQueue, workflowId: `top-message-${Date.now()}`, args: [args] })
          .then(
            () => assert.fail('the workflow was accepted'),
            (e: unknown) => e as WorkflowFailedError,
          );
      // A local activity's failure reaches the workflow as it was thrown: nothing wraps it.
      const unknown = await failed('plannedStopWorkflow', { cluster: 'orders' });
      assert.ok(unknown.cause instanceof ApplicationFailure, `top cause: ${unknown.cause?.constructor.name}`);
      assert.equal(unknown.cause.type, 'UnknownCluster');
      assert.match(unknown.cause.message, /^unknown cluster "orders"/);
      // An ordinary activity's failure comes wrapped in "Activity task failed": the workflow lifts
      // the step's own message to the top and keeps the activity failure attached.
      const tooMany = await failed('plannedStartWorkflow', { cluster: 'demo', replicas: 3 });
      assert.ok(tooMany.cause instanceof ApplicationFailure, `top cause: ${tooMany.cause?.constructor.name}`);
      assert.equal(tooMany.cause.type, 'ConfigurationError');
      assert.match(tooMany.cause.message, /^cluster "demo", step start: a local cluster runs exactly 1 server/);
      assert.ok(tooMany.cause.cause instanceof ActivityFailure, 'the activity failure stays attached');
    });
  });
});
