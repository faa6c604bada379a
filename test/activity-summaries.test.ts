import assert from 'node:assert/strict';
import { defaultPayloadConverter } from '@temporalio/common';
import { testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { localClusterFixture, type LocalFixture } from './harness/fixtures';
import { PgOpsClient } from '../src/client';
import { activitySummary } from '../src/workflows/activitySummaries';

describe('activity summaries (the UI shows which cluster and which step)', () => {
  let fx: LocalFixture;
  before(async () => {
    fx = await localClusterFixture('summaries');
  });
  after(async () => fx?.teardown());

  it('words the step and names the cluster and backup', () => {
    assert.equal(activitySummary('takeOnlineBackup', [{ cluster: 'orders', id: 'x' }]), 'orders: take online backup');
    assert.equal(
      activitySummary('rollbackVolumes', [{ cluster: 'orders', backup: '20261122-0315' }]),
      'orders: rollback volumes (backup 20261122-0315)',
    );
    assert.equal(activitySummary('isWorkflowRunning', [{ workflowId: 'w' }]), 'is workflow running');
  });

  it('every ActivityTaskScheduled event of a backup carries its summary in the user metadata', async function () {
    this.timeout(180_000);
    const env = await testEnv();
    const pgops = new PgOpsClient(env.client, fx.taskQueue);
    const op = await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const started = await pgops.start('backup', { cluster: fx.name, mode: 'offline' });
      await started.result();
      return started;
    });
    const events = (await op.handle.fetchHistory()).events ?? [];
    const scheduled = events.filter((e) => e.activityTaskScheduledEventAttributes);
    assert.ok(scheduled.length >= 4, `${scheduled.length} activities scheduled`);
    const summaries = scheduled.map((e) => {
      const type = e.activityTaskScheduledEventAttributes!.activityType!.name!;
      const payload = e.userMetadata?.summary;
      assert.ok(payload, `${type} has a summary`);
      return { type, summary: defaultPayloadConverter.fromPayload<string>(payload) };
    });
    for (const { type, summary } of summaries) assert.equal(summary, activitySummary(type, [{ cluster: fx.name }]));
    const texts = summaries.map((s) => s.summary);
    assert.ok(texts.includes(`${fx.name}: stop cluster`), texts.join('\n'));
    assert.ok(texts.includes(`${fx.name}: start cluster`), texts.join('\n'));
  });
});
