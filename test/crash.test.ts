// Crash: the worker is SIGKILLed inside every step of the planned stop (with its hold) and of the
// planned start, one workflow per sequence carried through a worker per kill. Each retried step
// finishes the job; the cluster ends in the right state with its data unchanged.
import assert from 'node:assert/strict';
import { testEnv } from './harness/testEnv';
import { withWorker, type WorkerProcess } from './harness/workers';
import { attemptsByActivity, logRecoveries, runThroughKills, type KillPoint } from './harness/crashRuns';
import { localClusterFixture, type LocalFixture } from './harness/fixtures';
import { refusesConnections } from '../src/drivers/postgres/session';
import { endpointOf } from '../src/dev/localPostgres';
import { resumeSignal } from '../src/contract/definitions';
import type { PlannedStopResult } from '../src/workflows/plannedStop';
import type { PlannedStartResult } from '../src/workflows/plannedStart';

describe('crash: the worker is SIGKILLed inside every step of the planned stop and start', () => {
  let fx: LocalFixture;
  const workers: WorkerProcess[] = [];
  before(async () => {
    fx = await localClusterFixture('crash', { rows: 20_000 });
  });
  after(async () => {
    for (const w of workers) await w.kill();
    await fx?.teardown();
  });

  it('finishes a planned stop with hold killed at resolve, describe, stop, verify, the hold and the start', async function () {
    this.timeout(300_000);
    const checksum = await fx.checksum();
    const points: KillPoint[] = [
      { pause: 'begin:resolve' },
      { pause: 'begin:describe' },
      { pause: 'begin:stop' },
      { pause: 'begin:verify-quiescent' },
      {
        step: 'hold',
        then: async (handle) => {
          assert.equal(await refusesConnections(endpointOf(fx.cluster)), true, 'the database is down during the hold');
          await handle.signal(resumeSignal, { by: 'crash test' });
        },
      },
      { pause: 'begin:start' },
    ];
    const { result, handle, recoveries, restarted } = await runThroughKills<PlannedStopResult>(
      fx,
      workers,
      'plannedStopWorkflow',
      { cluster: fx.name, holdUntilResumed: true, maxHold: '1h' },
      points,
    );
    logRecoveries('planned stop', recoveries);
    assert.equal(result.hold?.resumedBy, 'signal');
    assert.equal(result.after.running, true);
    const attempts = await attemptsByActivity(handle);
    for (const activity of ['stopCluster', 'startCluster'])
      assert.ok(
        (attempts.get(activity) ?? 0) >= 2,
        `${activity} was retried after the kill (${attempts.get(activity)})`,
      );
    // Local activities: the next worker began the killed step again.
    for (const step of ['begin:resolve', 'begin:describe', 'begin:verify-quiescent'])
      assert.ok(restarted.has(step), `${step} began again after the kill`);
    assert.equal(await refusesConnections(endpointOf(fx.cluster)), false);
    assert.equal(await fx.checksum(), checksum);
  });

  it('finishes a planned start killed at resolve and during the start', async function () {
    this.timeout(240_000);
    const { client } = await testEnv();
    const checksum = await fx.checksum();
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const stop = await client.workflow.start('plannedStopWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `crash-stop-${Date.now()}`,
        args: [{ cluster: fx.name }],
      });
      await stop.result();
    });
    assert.equal(await refusesConnections(endpointOf(fx.cluster)), true);
    const { result, handle, recoveries } = await runThroughKills<PlannedStartResult>(
      fx,
      workers,
      'plannedStartWorkflow',
      { cluster: fx.name },
      [{ pause: 'begin:resolve' }, { pause: 'begin:start' }],
    );
    logRecoveries('planned start', recoveries);
    assert.equal(result.alreadyRunning, false, 'the kill landed before the server was started');
    assert.equal((await attemptsByActivity(handle)).get('startCluster'), 2);
    assert.equal(await refusesConnections(endpointOf(fx.cluster)), false);
    assert.equal(await fx.checksum(), checksum);
  });
});
