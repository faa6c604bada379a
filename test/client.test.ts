import assert from 'node:assert/strict';
import { testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { waitForStep } from './harness/progress';
import { localClusterFixture, type LocalFixture } from './harness/fixtures';
import { ClusterBusyError, InvalidInputError, PgOpsClient, UnknownClusterError } from '../src/client';

describe('the typed client for other services', () => {
  let fx: LocalFixture;
  before(async () => {
    fx = await localClusterFixture('client');
  });
  after(async () => fx?.teardown());

  it('starts, watches, lists, resumes, and maps refusals to typed errors', async function () {
    this.timeout(120_000);
    const { client } = await testEnv();
    const pgops = new PgOpsClient(client, fx.taskQueue);
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const stop = await pgops.start('plannedStop', { cluster: fx.name, holdUntilResumed: true });
      assert.match(stop.workflowId, new RegExp(`^pgops/${fx.name}/plannedStop/`));
      assert.equal(await (await stop.handle.describe()).staticSummary(), `plannedStop of cluster ${fx.name}`);
      await waitForStep({ query: () => stop.progress() }, 'hold');
      const running = await pgops.runningOn(fx.name);
      assert.ok(running.some((r) => r.workflowId === stop.workflowId && r.type === 'plannedStopWorkflow'));

      await assert.rejects(pgops.run('plannedStart', { cluster: fx.name }), (err: unknown) => {
        assert.ok(err instanceof ClusterBusyError, String(err));
        assert.match(err.message, new RegExp(stop.workflowId));
        return true;
      });
      await pgops.resume(stop.workflowId, 'client test');
      const result = await stop.result();
      assert.equal(result.hold?.resumedBy, 'signal');
      assert.equal(result.hold?.resumeRequestedBy, 'client test');

      await assert.rejects(pgops.run('plannedStop', { cluster: 'Not-Valid' }), InvalidInputError);
      await assert.rejects(
        pgops.run('backup', { cluster: fx.name, label: 'nightly\u0000' }),
        (err: unknown) => err instanceof InvalidInputError && /label holds a NUL byte/.test(err.message),
      );
      await assert.rejects(pgops.run('backup', { cluster: 'nowhere' }), UnknownClusterError);
      const listed = await pgops.listBackups(fx.name);
      assert.deepEqual(listed.backups, []);
    });
  });
});
