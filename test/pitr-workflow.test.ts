// delayedReplicaPitrWorkflow end to end: real Temporal, a real primary archiving every second, a
// real standby restoring from the archive 20 s behind. Each scenario makes its own incident.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { failureOf } from './harness/failures';
import { pitrFixture, type PitrFixture } from './harness/pitrFixture';
import { progressQuery, resumeSignal } from '../src/contract/definitions';
import { replayStatus } from '../src/drivers/postgres/replica/replayControl';
import type { DelayedReplicaPitrResult } from '../src/workflows/delayedReplicaPitr';
import type { WorkflowHandle } from '@temporalio/client';
import { longestWorkflowTask } from './harness/workflowTasks';

const CHECKSUM =
  "SELECT count(*)::int AS n, md5(coalesce(string_agg(id || ':' || customer, ',' ORDER BY id), '')) AS h FROM orders";

describe('delayedReplicaPitrWorkflow (real primary, WAL archive and 20 s delayed replica)', function () {
  this.timeout(300_000);
  let fx: PitrFixture;
  const run = async (
    input: unknown,
    body?: (
      handle: Awaited<ReturnType<Awaited<ReturnType<typeof testEnv>>['client']['workflow']['start']>>,
    ) => Promise<void>,
  ) => {
    const { client } = await testEnv();
    return withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const handle = await client.workflow.start('delayedReplicaPitrWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `pitr-${Date.now()}`,
        args: [input],
      });
      if (body) await body(handle);
      return handle.result() as Promise<DelayedReplicaPitrResult>;
    });
  };

  before(async () => {
    fx = await pitrFixture('pitrwf');
    await fx.commit([
      'CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL)',
      "INSERT INTO orders SELECT g, 'customer-' || (g % 97) FROM generate_series(1, 1000) g",
      'CREATE TABLE audit_log (id int PRIMARY KEY, note text)',
      "INSERT INTO audit_log SELECT g, 'entry ' || g FROM generate_series(1, 50) g",
      'CREATE TABLE coupons (code text PRIMARY KEY, percent int)',
      "INSERT INTO coupons SELECT 'C' || g, g % 50 FROM generate_series(1, 30) g",
    ]);
    await fx.waitForReplicaToSee('SELECT count(*) = 1000 AS ok FROM orders');
  });
  after(async () => fx?.set.stop());

  it('recovers the rows of a bad DELETE by xid: pauses within a second, exports them, puts them back into the primary, returns to delay', async () => {
    const before = await fx.query<{ n: number; h: string }>(fx.set.primaryEndpoint, CHECKSUM);
    const bad = await fx.commit(['DELETE FROM orders WHERE id <= 300']);
    await fx.commit(["INSERT INTO orders SELECT g, 'late-' || g FROM generate_series(2001, 2010) g"]); // good writes after it
    await fx.waitForArchive();
    let handle: WorkflowHandle | undefined;
    const result = await run(
      {
        cluster: 'orders-delayed',
        target: { xid: bad.xid },
        then: 'export',
        export: { tables: ['orders'], insertMissing: true },
      },
      async (h) => void (handle = h),
    );
    // The first PITR on the cluster starts its lock workflow after the pause step: the lock must
    // not ask this workflow, whose task is open during its lock request, whether it holds the
    // cluster (that query was answered only when the SDK heartbeated the task, 8 s later).
    const longestTask = await longestWorkflowTask(handle!);
    assert.ok(
      longestTask.ms < 4000,
      `a workflow task stayed open ${longestTask.ms} ms (event ${longestTask.completedEventId})`,
    );
    console.log(
      `      pause latency (workflow start → replay paused): ${result.pause.latencyMs} ms, state ${result.pause.state}`,
    );
    assert.ok(result.pause.latencyMs < 1000, `pause took ${result.pause.latencyMs} ms`);
    assert.equal(result.reached.pauseState, 'paused');
    // The read-ahead staged the replay's segments and restore_command took them; after the target
    // the replica's own restore_command is back in force and nothing is left in pg_wal.
    const readAhead = result.reached.readAhead;
    console.log(`      WAL read-ahead: ${JSON.stringify(readAhead)}`);
    assert.ok(readAhead && readAhead.staged >= 1 && readAhead.consumed >= 1, JSON.stringify(readAhead));
    assert.equal(existsSync(join(fx.set.replica.pgdata, 'pg_wal', 'pgops_readahead')), false);
    const own = await fx.query<{ c: string }>(fx.set.replicaEndpoint, "SELECT current_setting('restore_command') AS c");
    assert.equal(own.c, `cp ${fx.set.archiveDir}/%f %p`);
    const exported = result.exported?.[0];
    assert.equal(exported?.rows, before.n, 'exactly the pre-incident rows at the target');
    const csvIds = readFileSync(exported!.file, 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => Number(line.split(',')[0]));
    assert.deepEqual(
      csvIds,
      Array.from({ length: 1000 }, (_, i) => i + 1),
    );
    assert.deepEqual(result.inserted, [{ table: 'public.orders', inserted: 300, createdTable: false }]);
    const primaryNow = await fx.query<{ n: number }>(fx.set.primaryEndpoint, 'SELECT count(*)::int AS n FROM orders');
    assert.equal(primaryNow.n, 1010, 'the 300 lost rows are back beside the later good writes');
    assert.equal(result.finalState, 'delayed replica again');
    assert.equal(result.returnedToDelay?.pauseState, 'not paused');
    assert.equal(result.returnedToDelay?.delay, '20000ms');
    const status = await replayStatus(fx.set.replicaEndpoint);
    assert.equal(status.settings.recovery_target_xid.value, '');
    assert.equal(status.settings.recovery_min_apply_delay.value, '20000');
  });

  it('stops just before a TRUNCATE given by its commit time, holds there for inspection, and returns to delay on "resume"', async () => {
    await fx.waitForReplicaToSee('SELECT count(*) = 1010 AS ok FROM orders');
    // A checkpoint record the replica replays before the incident: a clean shutdown of the replica
    // would then make a restartpoint and move its minimum recovery point past the TRUNCATE's start.
    await fx.query(fx.set.primaryEndpoint, 'CHECKPOINT');
    const bad = await fx.commit(['TRUNCATE audit_log']);
    await fx.commit(["INSERT INTO audit_log VALUES (1000, 'after the truncate')"]);
    await fx.waitForArchive();
    const result = await run(
      { cluster: 'orders-delayed', target: { time: bad.commitTime }, inclusive: false, then: 'pause' },
      async (handle) => {
        const deadline = Date.now() + 120_000;
        for (let step = ''; step !== 'inspect'; await new Promise((r) => setTimeout(r, 200))) {
          step = (await handle.query(progressQuery)).step;
          if (Date.now() > deadline) throw new Error(`the workflow never reached the inspection hold (step ${step})`);
        }
        const rows = await fx.query<{ n: number }>(fx.set.replicaEndpoint, 'SELECT count(*)::int AS n FROM audit_log');
        assert.equal(rows.n, 50, 'the replica shows the table as it was just before the TRUNCATE');
        const progress = await handle.query(progressQuery);
        assert.ok(progress.numbers.replayLsn, 'progress reports the replay LSN');

        // A second PITR on the same replica must neither pause the first one's replay nor run.
        const { client } = await testEnv();
        const second = await client.workflow.start('delayedReplicaPitrWorkflow', {
          taskQueue: fx.taskQueue,
          workflowId: `pitr-second-${Date.now()}`,
          args: [{ cluster: 'orders-delayed', target: { xid: bad.xid }, then: 'pause' }],
        });
        const refused = await failureOf(second.result());
        assert.equal(refused.type, 'ClusterBusy');
        assert.match(refused.message, new RegExp(handle.workflowId));
        const secondHistory = await second.fetchHistory();
        const pauseResult = (secondHistory.events ?? [])
          // The pause's result: in its activity's completion, or its marker if it runs as a local activity.
          .map(
            (e) =>
              e.activityTaskCompletedEventAttributes?.result?.payloads?.[0]?.data ??
              e.markerRecordedEventAttributes?.details?.result?.payloads?.[0]?.data,
          )
          .find((d) => d !== undefined && d !== null);
        assert.match(Buffer.from(pauseResult as Uint8Array).toString(), /left to .*which controls replay/);
        assert.equal((await handle.query(progressQuery)).step, 'inspect', 'the first PITR is undisturbed');

        await handle.signal(resumeSignal);
      },
    );
    assert.equal(result.finalState, 'delayed replica again');
    assert.equal(result.checked.beforeLockingTransaction, true, result.checked.note);
    assert.match(result.checked.note ?? '', /ACCESS EXCLUSIVE lock/);
  });

  it('finds a DROP TABLE from a time window (incident target) and recreates the table on the primary with its rows', async () => {
    await fx.waitForReplicaToSee('SELECT count(*) = 1 AS ok FROM audit_log WHERE id = 1000');
    // Paused by hand before the drop, as a DBA would on seeing it: under load the archive and the
    // workflow's start took longer than the 20 s delay, and the replica replayed the drop first.
    // The workflow then takes over a replica that is already paused (its pause is a no-op).
    await fx.pauseReplica();
    const from = new Date(Date.now() - 1000).toISOString();
    await fx.commit(['DROP TABLE coupons']);
    await fx.commit(["INSERT INTO orders VALUES (5000, 'after the drop')"]);
    await fx.waitForArchive();
    const to = new Date(Date.now() + 1000).toISOString();
    const result = await run({
      cluster: 'orders-delayed',
      target: { incident: { from, to, table: 'coupons' } },
      then: 'export',
      export: { tables: ['coupons'], insertMissing: true },
    });
    assert.deepEqual(result.inserted, [{ table: 'public.coupons', inserted: 30, createdTable: true }]);
    const back = await fx.query<{ n: number }>(fx.set.primaryEndpoint, 'SELECT count(*)::int AS n FROM coupons');
    assert.equal(back.n, 30);
  });

  describe('refusals leave the replica paused and its settings untouched', () => {
    const refusals: Array<{ title: string; input: Record<string, unknown>; expect: RegExp; type: string }> = [
      {
        title: 'a target the replica has already replayed past',
        input: { target: { lsn: '0/1000000' }, then: 'pause' },
        expect: /already|before/,
        type: 'PreconditionFailed',
      },
      {
        title: 'a time in the future, beyond the archive',
        input: { target: { time: new Date(Date.now() + 3_600_000).toISOString() }, then: 'pause' },
        expect: /future|beyond|archive|later/,
        type: 'PreconditionFailed',
      },
      {
        title: 'an xid that does not exist',
        input: { target: { xid: '999999999' }, then: 'pause' },
        expect: /does not exist|future|not been assigned/i,
        type: 'PreconditionFailed',
      },
      {
        title: 'two targets',
        input: { target: { xid: '1234', time: '2026-11-21T10:00:00Z' }, then: 'pause' },
        expect: /exactly one target kind/,
        type: 'InvalidInput',
      },
      {
        title: 'a time without a zone',
        input: { target: { time: '2026-11-21 10:00:00' }, then: 'pause' },
        expect: /zone|offset/i,
        type: 'InvalidInput',
      },
      {
        title: 'promote with returnToDelay',
        input: { target: { xid: '1234' }, then: 'promote', returnToDelay: true },
        expect: /cannot return to being delayed/,
        type: 'InvalidInput',
      },
      {
        title: 'export without tables',
        input: { target: { xid: '1234' }, then: 'export' },
        expect: /needs export/,
        type: 'InvalidInput',
      },
      {
        title: 'an incident search on a table the replica does not have (dropped and replayed, or misnamed)',
        input: {
          target: { incident: { from: '2026-01-01T00:00:00Z', to: '2026-01-01T00:01:00Z', table: 'no_such_table' } },
          then: 'pause',
        },
        expect: /has no table no_such_table at its replay position/,
        type: 'PreconditionFailed',
      },
      {
        title: 'an export table with SQL in it',
        input: { target: { xid: '1234' }, then: 'export', export: { tables: ['orders; DROP TABLE x'] } },
        expect: /not a plain table name/,
        type: 'InvalidInput',
      },
    ];
    for (const r of refusals) {
      it(`refuses ${r.title}`, async () => {
        const { client } = await testEnv();
        const delayBefore = (await replayStatus(fx.set.replicaEndpoint)).settings.recovery_min_apply_delay.value;
        const failure = await withWorker(fx.taskQueue, fx.catalogPath, () =>
          failureOf(
            client.workflow.execute('delayedReplicaPitrWorkflow', {
              taskQueue: fx.taskQueue,
              workflowId: `refuse-${Date.now()}`,
              args: [{ cluster: 'orders-delayed', ...r.input }],
            }),
          ),
        );
        assert.equal(failure.type, r.type, failure.message);
        assert.match(failure.message, r.expect);
        const status = await replayStatus(fx.set.replicaEndpoint);
        assert.equal(status.settings.recovery_min_apply_delay.value, delayBefore, 'delay unchanged');
        assert.equal(status.settings.recovery_target_xid.value, '');
        assert.equal(status.settings.recovery_target_lsn.value, '');
        if (r.type === 'PreconditionFailed') assert.notEqual(status.pauseState, 'not paused', 'left paused');
      });
    }

    it('refuses to run on the primary: it is not a replica', async () => {
      const { client } = await testEnv();
      const failure = await withWorker(fx.taskQueue, fx.catalogPath, () =>
        failureOf(
          client.workflow.execute('delayedReplicaPitrWorkflow', {
            taskQueue: fx.taskQueue,
            workflowId: `primary-${Date.now()}`,
            args: [{ cluster: 'orders', target: { xid: '1234' }, then: 'pause' }],
          }),
        ),
      );
      assert.equal(failure.type, 'PreconditionFailed');
      assert.match(failure.message, /not a replica/);
    });
  });

  describe('promotion (last: it ends the replica)', () => {
    it('promotes the replica at the target: it becomes writable with the pre-incident rows and a new timeline', async () => {
      const before = await fx.query<{ n: number }>(fx.set.primaryEndpoint, 'SELECT count(*)::int AS n FROM orders');
      const bad = await fx.commit(['DELETE FROM orders']);
      await fx.waitForArchive();
      const result = await run({ cluster: 'orders-delayed', target: { xid: bad.xid }, then: 'promote' });
      assert.equal(result.finalState, 'promoted');
      assert.ok((result.promoted?.timeline ?? 0) >= 2);
      const rows = await fx.query<{ n: number; r: boolean }>(
        fx.set.replicaEndpoint,
        'SELECT count(*)::int AS n, pg_is_in_recovery() AS r FROM orders',
      );
      assert.deepEqual(rows, { n: before.n, r: false });
    });
  });
});
