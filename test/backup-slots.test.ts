// The fleet-wide cap on concurrent backups (catalog fleet.maxConcurrentBackups): backups beyond the cap
// wait for a slot, one at a time here, and a planned stop on a cluster whose backup waits is not kept
// waiting. Without the setting no slot is asked for.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { WorkflowHandle } from '@temporalio/client';
import { testEnv, scratchDir } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { localClusterFixture, type LocalFixture } from './harness/fixtures';
import { localTargetOf } from '../src/dev/localPostgres';
import { backupSlotsStateQuery, backupSlotsWorkflowId, type BackupSlotsState } from '../src/contract/backupSlots';
import type { PlannedStopResult } from '../src/workflows/plannedStop';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { pauseMarker } from './harness/cancelRuns';
import { pollUntil } from '../src/drivers/waiting';

describe('the fleet-wide cap on concurrent backups (fleet.maxConcurrentBackups)', () => {
  const clusters: LocalFixture[] = [];
  let catalogPath: string;
  const taskQueue = `pg-ops-slots-${Math.random().toString(36).slice(2, 8)}`;
  const writeCatalog = (fleet?: Record<string, unknown>) =>
    writeFileSync(
      catalogPath,
      stringify({
        ...(fleet && { fleet }),
        clusters: Object.fromEntries(
          clusters.map((c) => [c.name, { target: localTargetOf(c.cluster), storage: { kind: 'local' } }]),
        ),
      }),
    );
  before(async function () {
    this.timeout(120_000);
    for (const name of ['s1', 's2', 's3'])
      clusters.push(await localClusterFixture(`slots-${name}`, { name, rows: 2000 }));
    catalogPath = join(await scratchDir('slots'), 'pgops.yaml');
  });
  after(async () => {
    for (const c of clusters) await c.teardown();
  });

  it('runs one backup at a time with a cap of 1; a stop on a cluster whose backup waits goes ahead of it', async function () {
    this.timeout(300_000);
    writeCatalog({ maxConcurrentBackups: 1 });
    const { client } = await testEnv();
    const slots = client.workflow.getHandle(backupSlotsWorkflowId(taskQueue));
    const states: BackupSlotsState[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const state = await slots.query(backupSlotsStateQuery).catch(() => undefined);
        if (state) states.push(state);
        await new Promise((r) => setTimeout(r, 30));
      }
    })();
    const backup = (cluster: string) =>
      client.workflow.start('snapshotBackupWorkflow', {
        taskQueue,
        workflowId: `slots-backup-${cluster}-${Date.now()}`,
        args: [{ cluster, mode: 'offline', waitForLock: '5m' }],
      });
    await withWorker(taskQueue, catalogPath, async () => {
      const first = await backup('s1');
      const deadline = Date.now() + 60_000;
      while (!states.at(-1)?.holders.some((h) => h.workflowId === first.workflowId)) {
        assert.ok(Date.now() < deadline, 'the first backup never held a slot');
        await new Promise((r) => setTimeout(r, 50));
      }
      const waiting: WorkflowHandle[] = [await backup('s2'), await backup('s3')];
      while (
        (states.at(-1)?.queue.length ?? 0) < 2 &&
        !states.some(
          (s) => s.queue.length >= 1 && s.holders.length === 1 && s.holders[0]!.workflowId !== first.workflowId,
        )
      ) {
        assert.ok(Date.now() < deadline, 'the other backups never queued');
        await new Promise((r) => setTimeout(r, 20));
      }
      // A planned stop on s3 while s3's backup waits for a slot: it takes the cluster at once.
      const stop = (await client.workflow.execute('plannedStopWorkflow', {
        taskQueue,
        workflowId: `slots-stop-${Date.now()}`,
        args: [{ cluster: 's3', holdUntilResumed: true, maxHold: '1s' }],
      })) as PlannedStopResult;
      const stopEnded = Date.now();
      assert.equal(stop.before.running, true);
      assert.equal(stop.after.running, true);
      const results = (await Promise.all([first, ...waiting].map((h) => h.result()))) as SnapshotBackupResult[];
      const s3Ended = Date.now();
      for (const r of results) assert.equal(r.took, 'offline');
      assert.ok(stopEnded <= s3Ended, 'the stop finished before the last waiting backup');
      const emptyBy = Date.now() + 30_000;
      while ((states.at(-1)?.holders.length ?? 0) > 0) {
        assert.ok(Date.now() < emptyBy, 'a slot was never given back');
        await new Promise((r) => setTimeout(r, 50));
      }
      // Stopped while the worker still answers queries (one left waiting would wait out its deadline).
      watching = false;
      await watcher;
    });
    const maxHolders = Math.max(...states.map((s) => s.holders.length));
    const maxQueue = Math.max(...states.map((s) => s.queue.length));
    assert.equal(maxHolders, 1, 'never more than one backup held a slot');
    assert.ok(maxQueue >= 1, `backups waited for a slot (longest queue ${maxQueue})`);
  });

  it('a backup cancelled while it waits leaves the queue; a holder terminated in its slot loses it to the next', async function () {
    this.timeout(300_000);
    writeCatalog({ maxConcurrentBackups: 1 });
    const { client } = await testEnv();
    const queue = `${taskQueue}-ended`;
    const slots = client.workflow.getHandle(backupSlotsWorkflowId(queue));
    const until = (what: string, ok: (s: BackupSlotsState) => boolean) =>
      pollUntil<BackupSlotsState>(
        async () => {
          const current = await slots.query(backupSlotsStateQuery).catch(() => undefined);
          return current && ok(current) ? { done: current } : { waiting: JSON.stringify(current) };
        },
        { intervalMs: 100, timeoutMs: 60_000, what },
      );
    const backup = (cluster: string) =>
      client.workflow.start('snapshotBackupWorkflow', {
        taskQueue: queue,
        workflowId: `slots-ended-${cluster}-${Date.now()}`,
        args: [{ cluster, mode: 'offline', waitForLock: '5m' }],
      });
    // The holder stays in its first step, as a backup of a large volume would.
    process.env.PGOPS_TEST_PAUSE_AT = 'begin:plan-backup:30000';
    const paused = pauseMarker('begin:plan-backup');
    try {
      await withWorker(queue, catalogPath, async () => {
        const holder = await backup('s1');
        await paused.seen;
        delete process.env.PGOPS_TEST_PAUSE_AT; // the next backups run straight through
        const next = await backup('s2');
        const cancelled = await backup('s3');
        await until('both queued', (s) => s.queue.length === 2);

        await cancelled.cancel();
        await assert.rejects(cancelled.result(), (err: unknown) => {
          assert.ok(err instanceof WorkflowFailedError && err.cause?.name === 'CancelledFailure', String(err));
          return true;
        });
        const afterCancel = await until('the cancelled backup left the queue', (s) => s.queue.length === 1);
        assert.deepEqual(
          afterCancel.queue.map((q) => q.workflowId),
          [next.workflowId],
        );

        // Terminated: no release is ever sent; the slot goes when the server says the holder has ended.
        await holder.terminate('a holder that dies in its slot');
        const terminatedAt = Date.now();
        await until('the next backup took the slot', (s) => s.holders[0]?.workflowId === next.workflowId);
        const handedOverMs = Date.now() - terminatedAt;
        console.log(`      slot handed over ${(handedOverMs / 1000).toFixed(1)} s after the holder was terminated`);
        assert.ok(handedOverMs < 30_000, `the slot came free ${handedOverMs} ms after the holder ended`);
        const result = (await next.result()) as SnapshotBackupResult;
        assert.equal(result.took, 'offline');
        await until('every slot given back', (s) => s.holders.length === 0 && s.queue.length === 0);
      });
    } finally {
      paused.stop();
      delete process.env.PGOPS_TEST_PAUSE_AT;
    }
  });

  it('asks for no slot without the setting', async function () {
    this.timeout(120_000);
    writeCatalog();
    const { client } = await testEnv();
    const queue = `${taskQueue}-uncapped`;
    await withWorker(queue, catalogPath, () =>
      client.workflow.execute('snapshotBackupWorkflow', {
        taskQueue: queue,
        workflowId: `slots-uncapped-${Date.now()}`,
        args: [{ cluster: 's1', mode: 'offline' }],
      }),
    );
    await assert.rejects(client.workflow.getHandle(backupSlotsWorkflowId(queue)).describe(), WorkflowNotFoundError);
  });
});
