import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { bundleWorkflowCode, DefaultLogger, Worker } from '@temporalio/worker';
import { testEnv } from './harness/testEnv';
import { progressSignalInterval, withHeartbeats } from '../src/activities/heartbeat';
import { progressQuery } from '../src/contract/definitions';

const DAY_MS = 24 * 3_600_000;

describe('history stays bounded however long a step reports progress', () => {
  it('a day of progress reports every 2 s adds under 3,000 events to the workflow history', async function () {
    this.timeout(300_000);
    const env = await testEnv();
    const bundle = await bundleWorkflowCode({
      workflowsPath: resolve(__dirname, 'fixtures/longReportingWorkflow.ts'),
      logger: new DefaultLogger('WARN'),
    });
    const taskQueue = `history-${Date.now()}`;
    const worker = await Worker.create({
      connection: env.nativeConnection,
      namespace: env.server.namespace,
      taskQueue,
      workflowBundle: bundle,
      activities: {
        // The real withHeartbeats on a simulated clock: a day of replay-monitor reports in seconds.
        async reportForADay() {
          let virtualNow = 0;
          return withHeartbeats(
            async (progress) => {
              let reports = 0;
              for (; virtualNow < DAY_MS; virtualNow += 2000) {
                progress.report(`replaying: ${virtualNow / 1000} s in`, { replayedSeconds: virtualNow / 1000 });
                reports++;
                if (reports % 50 === 0) await new Promise((r) => setTimeout(r, 1)); // let signals go out
              }
              await new Promise((r) => setTimeout(r, 3000)); // the last signals land
              return { reports };
            },
            { now: () => virtualNow },
          );
        },
      },
    });
    const handle = await worker.runUntil(async () => {
      const h = await env.client.workflow.start('longReportingWorkflow', { taskQueue, workflowId: taskQueue });
      const result = (await h.result()) as { reports: number };
      assert.equal(result.reports, DAY_MS / 2000);
      assert.match((await h.query(progressQuery)).detail, /replaying/, 'the workflow saw the reports');
      return h;
    });
    const events = (await handle.fetchHistory()).events ?? [];
    const signals = events.filter((e) => e.workflowExecutionSignaledEventAttributes).length;
    // The cadence is what keeps it bounded: more than a few hundred signals still reach the workflow.
    assert.ok(signals > 300, `only ${signals} progress signals reached the workflow`);
    // Here the signals arrive in bursts and share workflow tasks, as many as the machine's load lets
    // them; spread over a real day each one brings its own task (scheduled, started, completed). Count
    // that worst case whatever the bunching: the events other than workflow tasks, and three task
    // events for each signal, for the start and for the activity's completion.
    const taskEvents = events.filter(
      (e) =>
        e.workflowTaskScheduledEventAttributes ||
        e.workflowTaskStartedEventAttributes ||
        e.workflowTaskCompletedEventAttributes ||
        e.workflowTaskTimedOutEventAttributes ||
        e.workflowTaskFailedEventAttributes,
    ).length;
    assert.ok(taskEvents > 0, 'no workflow task events counted');
    const worstCase = events.length - taskEvents + 3 * (signals + 2);
    assert.ok(worstCase < 3000, `${worstCase} events at worst for a day of reports (${signals} signals)`);
  });

  it('signals every 3 s in a step’s first minute, then ever more rarely, at most every 150 s', () => {
    assert.equal(progressSignalInterval(0), 3000);
    assert.equal(progressSignalInterval(60_000), 3000);
    assert.equal(progressSignalInterval(600_000), 30_000);
    assert.equal(progressSignalInterval(DAY_MS), 150_000);
  });
});
