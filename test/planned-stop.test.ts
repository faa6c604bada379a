import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { testEnv } from './harness/testEnv';
import { waitForStep } from './harness/progress';
import { withWorker } from './harness/workers';
import { localClusterFixture, type LocalFixture } from './harness/fixtures';
import { refusesConnections } from '../src/drivers/postgres/session';
import { endpointOf } from '../src/dev/localPostgres';
import { progressQuery, resumeSignal } from '../src/contract/definitions';
import type { PlannedStopResult } from '../src/workflows/plannedStop';
import type { PlannedStartResult } from '../src/workflows/plannedStart';

describe('planned stop and start (real Temporal, real PostgreSQL)', () => {
  let fx: LocalFixture;
  let checksumBefore: string;

  before(async () => {
    fx = await localClusterFixture('stop');
    checksumBefore = await fx.checksum();
  });
  after(async () => fx?.teardown());

  it('stops the cluster, keeps the data directory, refuses connections, and starts it again with the data intact', async () => {
    const { client } = await testEnv();
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const stop = (await client.workflow.execute('plannedStopWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `stop-${Date.now()}`,
        args: [{ cluster: fx.name, reason: 'kernel upgrade' }],
      })) as PlannedStopResult;
      assert.equal(stop.before.running, true);
      assert.equal(stop.stopped.replicasBefore, 1);
      assert.deepEqual(stop.stopped.volumesKept, [fx.cluster.pgdata]);
      assert.equal(await refusesConnections(endpointOf(fx.cluster)), true);
      assert.ok(existsSync(join(fx.cluster.pgdata, 'PG_VERSION')));
      assert.ok(!existsSync(join(fx.cluster.pgdata, 'postmaster.pid')));

      const start = (await client.workflow.execute('plannedStartWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `start-${Date.now()}`,
        args: [{ cluster: fx.name }],
      })) as PlannedStartResult;
      assert.equal(start.readyReplicas, 1);
      assert.equal(start.replicasFrom, 'recorded');
      assert.ok(start.msToReady > 0);
    });
    assert.equal(await fx.checksum(), checksumBefore);
  });

  it('holds the cluster stopped until the resume signal, answering progress and tagging search attributes', async () => {
    const { client } = await testEnv();
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const handle = await client.workflow.start('plannedStopWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `hold-${Date.now()}`,
        args: [{ cluster: fx.name, holdUntilResumed: true, maxHold: '10m' }],
      });
      await waitForStep(handle, 'hold');
      assert.equal(await refusesConnections(endpointOf(fx.cluster)), true);
      const progress = await handle.query(progressQuery);
      assert.ok(progress.done.includes('stop') && progress.done.includes('verify'), `done steps: ${progress.done}`);
      assert.equal(progress.numbers.replicasToRestore, 1);
      const description = await handle.describe();
      assert.deepEqual(description.searchAttributes.PgCluster, [fx.name]);
      assert.deepEqual(description.searchAttributes.PgOperation, ['plannedStop']);
      await handle.signal(resumeSignal, { by: 'test' });
      const result = (await handle.result()) as PlannedStopResult;
      assert.equal(result.hold?.resumedBy, 'signal');
      assert.equal(result.hold?.resumeRequestedBy, 'test');
      assert.equal(result.after.running, true);
    });
    assert.equal(await refusesConnections(endpointOf(fx.cluster)), false);
    assert.equal(await fx.checksum(), checksumBefore);
  });

  it('starts the cluster again by itself when maxHold runs out', async () => {
    const { client } = await testEnv();
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const result = (await client.workflow.execute('plannedStopWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `maxhold-${Date.now()}`,
        args: [{ cluster: fx.name, holdUntilResumed: true, maxHold: '2s' }],
      })) as PlannedStopResult;
      assert.equal(result.hold?.resumedBy, 'maxHold');
      assert.ok((result.hold?.heldMs ?? 0) >= 2000);
    });
    assert.equal(await fx.rowCount(), 1000);
  });

  it('starts the cluster again when a held stop is cancelled, so a cancel never leaves it down', async () => {
    const { client } = await testEnv();
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const handle = await client.workflow.start('plannedStopWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `cancel-${Date.now()}`,
        args: [{ cluster: fx.name, holdUntilResumed: true }],
      });
      await waitForStep(handle, 'hold');
      await handle.cancel();
      const result = (await handle.result()) as PlannedStopResult;
      assert.equal(result.hold?.resumedBy, 'cancel');
    });
    assert.equal(await refusesConnections(endpointOf(fx.cluster)), false);
  });

  it('refuses a second mutating workflow on a held cluster, and queues one that asks to wait', async () => {
    const { client } = await testEnv();
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const holder = await client.workflow.start('plannedStopWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `holder-${Date.now()}`,
        args: [{ cluster: fx.name, holdUntilResumed: true }],
      });
      await waitForStep(holder, 'hold');
      const refused = client.workflow.execute('plannedStartWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `intruder-${Date.now()}`,
        args: [{ cluster: fx.name }],
      });
      const err = await refused.then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof WorkflowFailedError, `expected a failed workflow, got ${err}`);
      assert.ok(err.cause instanceof ApplicationFailure);
      assert.equal(err.cause.type, 'ClusterBusy');
      assert.match(err.cause.message, new RegExp(`held it since|${holder.workflowId}`));
      assert.match(err.cause.message, new RegExp(holder.workflowId));
      // The refused start changed nothing: the cluster is still down, the hold still in place.
      assert.equal(await refusesConnections(endpointOf(fx.cluster)), true);
      assert.equal((await holder.query(progressQuery)).step, 'hold');

      const queued = await client.workflow.start('plannedStartWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `queued-${Date.now()}`,
        args: [{ cluster: fx.name, waitForLock: '5m' }],
      });
      await waitForStep(queued, 'lock');
      await new Promise((r) => setTimeout(r, 500));
      assert.equal((await queued.query(progressQuery)).step, 'lock');
      await holder.signal(resumeSignal);
      await holder.result();
      const started = (await queued.result()) as PlannedStartResult;
      assert.equal(started.alreadyRunning, true);
    });
  });
});
