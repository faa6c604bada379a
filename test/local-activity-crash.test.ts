import assert from 'node:assert/strict';
import { runThroughKills } from './harness/crashRuns';
import { type WorkerProcess } from './harness/workers';
import { localClusterFixture, type LocalFixture } from './harness/fixtures';
import { refusesConnections } from '../src/drivers/postgres/session';
import { endpointOf, startLocalCluster } from '../src/dev/localPostgres';
import type { PlannedStopResult } from '../src/workflows/plannedStop';

// Local activities are not retried by the server but by the workflow task: a worker that dies
// inside one loses the task, which times out and runs again on another worker, local activity
// included. These kills land inside two of them: the lock request (which describes the cluster
// once granted) and the release.
describe('crash: the worker is SIGKILLed inside a local activity and another worker recovers it', () => {
  let fx: LocalFixture;
  const workers: WorkerProcess[] = [];
  before(async () => {
    fx = await localClusterFixture('lacrash');
  });
  after(async () => {
    for (const w of workers) await w.kill();
    await fx?.teardown();
  });

  it('finishes a planned stop after kills inside the lock request (its describe) and the release, data intact', async function () {
    this.timeout(240_000);
    const checksum = await fx.checksum();
    const { result, handle } = await runThroughKills<PlannedStopResult>(
      fx,
      workers,
      'plannedStopWorkflow',
      { cluster: fx.name },
      [
        { pause: 'begin:describe', marker: /"pausedAt":"begin:describe"/ },
        { pause: 'begin:release', marker: /"pausedAt":"begin:release"/ },
      ],
    );
    assert.equal(result.before.running, true, 'describe ran again and saw the cluster running');
    assert.deepEqual(result.stopped.volumesKept.length, 1);
    assert.equal(await refusesConnections(endpointOf(fx.cluster)), true);

    const events = (await handle.fetchHistory()).events ?? [];
    // Each kill lost a workflow task (with the local activity inside it), which timed out and ran again.
    const lostTasks = events.filter(
      (e) => e.workflowTaskTimedOutEventAttributes || e.workflowTaskFailedEventAttributes,
    );
    assert.ok(
      lostTasks.length >= 2,
      `${lostTasks.length} workflow task(s) lost; two kills landed inside local activities`,
    );
    // Each local activity is recorded once, by the worker that finished it.
    const markers = events.filter((e) => e.markerRecordedEventAttributes).length;
    assert.ok(markers >= 2, `${markers} markers (the lock request and the release, and patches)`);
    // The worker that finished ran both steps again from their start.
    const last = workers[workers.length - 1]!.output();
    assert.match(workers[1]!.output(), /"step":"begin:describe"/);
    assert.match(last, /"step":"begin:release"/);
    // The release, begun again by the last worker, is recorded: the lock is free.
    const released = events.some((e) =>
      (e.markerRecordedEventAttributes?.details?.data?.payloads ?? []).some((p) =>
        Buffer.from(p.data ?? [])
          .toString()
          .includes('releaseClusterLock'),
      ),
    );
    assert.ok(released, 'a releaseClusterLock marker');

    await startLocalCluster(fx.cluster);
    assert.equal(await fx.checksum(), checksum);
  });
});
