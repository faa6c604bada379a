import assert from 'node:assert/strict';
import { testEnv } from './harness/testEnv';
import { waitForStep } from './harness/progress';
import { failureOf } from './harness/failures';
import { withWorker } from './harness/workers';
import { localClusterFixture, type LocalFixture } from './harness/fixtures';
import { refusesConnections } from '../src/drivers/postgres/session';
import { endpointOf, startLocalCluster } from '../src/dev/localPostgres';
import { lockStateQuery, lockWorkflowId, resumeSignal } from '../src/contract/definitions';
import type { PlannedStopResult } from '../src/workflows/plannedStop';

describe('the cluster lock: idle locks end, mutating steps confirm their holder', () => {
  let fx: LocalFixture;
  const idleBefore = process.env.PGOPS_LOCK_IDLE_END_SECONDS;
  before(async () => {
    fx = await localClusterFixture('lock');
    process.env.PGOPS_LOCK_IDLE_END_SECONDS = '2'; // read by the in-process worker's lock activities
  });
  after(async () => {
    if (idleBefore === undefined) delete process.env.PGOPS_LOCK_IDLE_END_SECONDS;
    else process.env.PGOPS_LOCK_IDLE_END_SECONDS = idleBefore;
    await fx?.teardown();
  });

  it('an idle lock workflow ends, and the next request starts it again', async function () {
    this.timeout(120_000);
    const { client } = await testEnv();
    const lock = client.workflow.getHandle(lockWorkflowId(fx.name, fx.taskQueue));
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      await client.workflow.execute('plannedStopWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `idle-stop-${Date.now()}`,
        args: [{ cluster: fx.name }],
      });
      const firstRun = (await lock.describe()).runId;
      const deadline = Date.now() + 30_000;
      while ((await lock.describe()).status.name === 'RUNNING') {
        assert.ok(Date.now() < deadline, 'the idle lock workflow is still running 30 s after its last release');
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.equal((await lock.describe()).status.name, 'COMPLETED');
      await client.workflow.execute('plannedStartWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `idle-start-${Date.now()}`,
        args: [{ cluster: fx.name }],
      });
      assert.notEqual((await lock.describe()).runId, firstRun, 'a new lock run served the second workflow');
      assert.equal(await refusesConnections(endpointOf(fx.cluster)), false);
    });
  });

  it('a lock that ends idle while a stop is held stays held: the lock never ends with a holder', async function () {
    this.timeout(120_000);
    const { client } = await testEnv();
    const lock = client.workflow.getHandle(lockWorkflowId(fx.name, fx.taskQueue));
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const stop = await client.workflow.start('plannedStopWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `held-idle-${Date.now()}`,
        args: [{ cluster: fx.name, holdUntilResumed: true }],
      });
      await waitForStep(stop, 'hold');
      await new Promise((r) => setTimeout(r, 4000)); // twice the idle time
      assert.equal((await lock.describe()).status.name, 'RUNNING');
      assert.equal((await lock.query(lockStateQuery)).holder?.workflowId, stop.workflowId);
      const refused = await failureOf(
        client.workflow.execute('plannedStartWorkflow', {
          taskQueue: fx.taskQueue,
          workflowId: `idle-intruder-${Date.now()}`,
          args: [{ cluster: fx.name }],
        }),
      );
      assert.equal(refused.type, 'ClusterBusy');
      await stop.signal(resumeSignal, { by: 'test' });
      assert.equal(((await stop.result()) as PlannedStopResult).after.running, true);
    });
  });

  it('a holder the lock no longer names is refused at its next mutating step, and changes nothing', async function () {
    this.timeout(120_000);
    const { client } = await testEnv();
    const lockId = lockWorkflowId(fx.name, fx.taskQueue);
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const stop = await client.workflow.start('plannedStopWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `lost-lock-${Date.now()}`,
        args: [{ cluster: fx.name, holdUntilResumed: true }],
      });
      await waitForStep(stop, 'hold');
      // What a reset of the lock workflow to an older state, or a lost one, can leave: the lock
      // names another running workflow. (A running workflow of the same queue stands in for it.)
      const other = await client.workflow.start('clusterLockWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: lockWorkflowId('other', fx.taskQueue),
        args: [{ cluster: 'other', idleEndMs: 600_000 }],
      });
      await client.workflow.getHandle(lockId).terminate('test: replaced by a lock naming another holder');
      const holder = {
        workflowId: other.workflowId,
        runId: other.firstExecutionRunId,
        operation: 'plannedStartWorkflow',
        wait: false,
        since: new Date().toISOString(),
      };
      await client.workflow.start('clusterLockWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: lockId,
        args: [{ cluster: fx.name, state: { cluster: fx.name, holder, queue: [] } }],
      });
      await stop.signal(resumeSignal, { by: 'test' });
      const lost = await failureOf(stop.result());
      assert.equal(lost.type, 'LockLost', lost.message);
      assert.match(lost.message, /step startCluster: this workflow no longer holds the cluster's lock/);
      assert.match(lost.message, new RegExp(other.workflowId));
      assert.equal(
        await refusesConnections(endpointOf(fx.cluster)),
        true,
        'the refused step did not start the cluster',
      );
      await other.terminate('test done');
      await client.workflow.getHandle(lockId).terminate('test done');
    });
    await startLocalCluster(fx.cluster);
  });
});
