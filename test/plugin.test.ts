import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { Worker } from '@temporalio/worker';
import { testEnv } from './harness/testEnv';
import { localClusterFixture, type LocalFixture } from './harness/fixtures';
import { pgOpsPlugin } from '../src/plugin';
import type { PlannedStopResult } from '../src/workflows/plannedStop';

describe("the plugin in a user's existing worker", () => {
  let fx: LocalFixture;
  before(async () => {
    fx = await localClusterFixture('plugin');
  });
  after(async () => fx?.teardown());

  it("runs the user's own workflow and activity and this package's workflows on one worker", async function () {
    this.timeout(120_000);
    const env = await testEnv();
    const worker = await Worker.create({
      connection: env.nativeConnection,
      namespace: env.server.namespace,
      taskQueue: fx.taskQueue,
      workflowsPath: resolve(__dirname, 'fixtures/userWorkflows.ts'),
      activities: { shout: async (text: string) => text.toUpperCase() },
      plugins: [pgOpsPlugin({ catalogPath: fx.catalogPath })],
    });
    await worker.runUntil(async () => {
      const greeting = await env.client.workflow.execute('greetingWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `greeting-${Date.now()}`,
        args: ['dba'],
      });
      assert.equal(greeting, 'HELLO DBA');
      const stop = (await env.client.workflow.execute('plannedStopWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `plugin-stop-${Date.now()}`,
        args: [{ cluster: fx.name, holdUntilResumed: true, maxHold: '1s' }],
      })) as PlannedStopResult;
      assert.equal(stop.hold?.resumedBy, 'maxHold');
      assert.equal(stop.after.running, true);
    });
  });

  it('refuses a broken catalog when the worker is configured, not at the first activity', () => {
    assert.throws(
      () => pgOpsPlugin({ catalogPath: '/nonexistent/pgops.yaml' }),
      /cannot read catalog \/nonexistent\/pgops.yaml/,
    );
  });
});
