import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { testEnv } from './harness/testEnv';
import { waitForStep } from './harness/progress';
import { withWorker } from './harness/workers';
import { localClusterFixture, type LocalFixture } from './harness/fixtures';
import { parse, stringify } from 'yaml';
import { refusesConnections, withSession } from '../src/drivers/postgres/session';
import { endpointOf, pgCtl, startLocalCluster } from '../src/dev/localPostgres';
import { LocalClusterDriver } from '../src/drivers/cluster/local';
import { localTargetOf } from '../src/dev/localPostgres';
import { lockWorkflowId, progressQuery, resumeSignal } from '../src/contract/definitions';
import type { PlannedStopResult } from '../src/workflows/plannedStop';
import type { PlannedStartResult } from '../src/workflows/plannedStart';

describe('operator actions: a broken catalog, a wrong password, a terminated holder', () => {
  let fx: LocalFixture;
  before(async () => {
    fx = await localClusterFixture('operator');
  });
  after(async () => fx?.teardown());

  it('a catalog broken during a hold: the restart waits, says why, and finishes once the file is fixed', async function () {
    this.timeout(180_000);
    const { client } = await testEnv();
    const good = readFileSync(fx.catalogPath, 'utf8');
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const handle = await client.workflow.start('plannedStopWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `broken-catalog-${Date.now()}`,
        args: [{ cluster: fx.name, holdUntilResumed: true }],
      });
      await waitForStep(handle, 'hold');
      writeFileSync(fx.catalogPath, 'clusters: { demo: { target: { kind: local } } }\n'); // pgdata and port missing
      await handle.signal(resumeSignal, { by: 'test' });
      const deadline = Date.now() + 60_000;
      let detail = '';
      while (!/cannot start the cluster/.test(detail)) {
        assert.ok(Date.now() < deadline, `progress never said why the start waits (last: ${detail})`);
        detail = (await handle.query(progressQuery)).detail;
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.match(detail, /is not valid/);
      assert.match(detail, /fix the catalog/);
      assert.equal(await refusesConnections(endpointOf(fx.cluster)), true, 'still down while the catalog is broken');
      writeFileSync(fx.catalogPath, good);
      const result = (await handle.result()) as PlannedStopResult;
      assert.equal(result.after.running, true);
      assert.equal(await refusesConnections(endpointOf(fx.cluster)), false);
    });
  });

  it('a wrong password is reported at once, naming the cluster and what to fix; the server counts as up', async function () {
    this.timeout(120_000);
    const { client } = await testEnv();
    const endpoint = endpointOf(fx.cluster);
    const good = readFileSync(fx.catalogPath, 'utf8');
    await fx.checksum(); // trust still works here
    await withSession(endpoint, (c) => c.query("ALTER ROLE postgres PASSWORD 'right-one'"));
    const hba = join(fx.cluster.pgdata, 'pg_hba.conf');
    const hbaBefore = readFileSync(hba, 'utf8');
    writeFileSync(hba, 'host all all 127.0.0.1/32 scram-sha-256\nlocal all all trust\n');
    await pgCtl(fx.cluster, ['reload']);
    process.env.PGOPS_TEST_WRONG_PASSWORD = 'not-the-password';
    const catalog = parse(good) as { clusters: Record<string, Record<string, unknown>> };
    catalog.clusters[fx.name]!.postgres = { passwordEnv: 'PGOPS_TEST_WRONG_PASSWORD' };
    writeFileSync(fx.catalogPath, stringify(catalog));
    try {
      assert.equal(
        await refusesConnections({ ...endpoint, password: 'not-the-password' }),
        false,
        'a refused login comes from a running server',
      );
      await withWorker(fx.taskQueue, fx.catalogPath, async () => {
        await client.workflow.execute('plannedStopWorkflow', {
          taskQueue: fx.taskQueue,
          workflowId: `wrong-pw-stop-${Date.now()}`,
          args: [{ cluster: fx.name }],
        });
        const started = Date.now();
        const err = await client.workflow
          .execute('plannedStartWorkflow', {
            taskQueue: fx.taskQueue,
            workflowId: `wrong-pw-start-${Date.now()}`,
            args: [{ cluster: fx.name }],
          })
          .then(
            (r) => assert.fail(`started: ${JSON.stringify(r as PlannedStartResult)}`),
            (e: unknown) => e as WorkflowFailedError,
          );
        assert.ok(Date.now() - started < 30_000, `reported after ${Date.now() - started} ms`);
        let cause: unknown = err.cause;
        while (cause instanceof Error && cause.cause) cause = cause.cause;
        assert.equal((cause as { type?: string }).type, 'AuthenticationFailed');
        assert.match((cause as Error).message, new RegExp(`cluster "${fx.name}"`));
        assert.match((cause as Error).message, /refused the login of "postgres".*fix the password/);
      });
      assert.ok(new LocalClusterDriver(localTargetOf(fx.cluster)).livePostmasterPid(), 'the server itself started');
    } finally {
      writeFileSync(hba, hbaBefore);
      appendFileSync(hba, '');
      await pgCtl(fx.cluster, ['reload']);
      writeFileSync(fx.catalogPath, good);
      delete process.env.PGOPS_TEST_WRONG_PASSWORD;
    }
  });

  it('a waiter is woken when the holder is terminated, without any other request', async function () {
    this.timeout(120_000);
    const { client } = await testEnv();
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const stop = await client.workflow.start('plannedStopWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `terminated-holder-${Date.now()}`,
        args: [{ cluster: fx.name, holdUntilResumed: true }],
      });
      await waitForStep(stop, 'hold');
      const start = await client.workflow.start('plannedStartWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `waiter-${Date.now()}`,
        args: [{ cluster: fx.name, waitForLock: '5m' }],
      });
      const deadline = Date.now() + 30_000;
      while (!/position 1 in the queue/.test((await start.query(progressQuery)).detail)) {
        assert.ok(Date.now() < deadline, 'the start never queued');
        await new Promise((r) => setTimeout(r, 200));
      }
      await stop.terminate('operator terminated the held stop');
      const terminatedAt = Date.now();
      const result = (await start.result()) as PlannedStartResult;
      assert.ok(Date.now() - terminatedAt < 45_000, `the waiter waited ${Date.now() - terminatedAt} ms`);
      assert.equal(result.readyReplicas, 1);
      assert.equal(await refusesConnections(endpointOf(fx.cluster)), false);
    });
  });

  it('a cancel during a slow stop lets the stop finish, starts the cluster again, and only then frees the lock', async function () {
    this.timeout(180_000);
    const { client } = await testEnv();
    const endpoint = endpointOf(fx.cluster);
    // A slow archiver: the shutdown waits for every segment still to archive (2 s each).
    await withSession(endpoint, async (c) => {
      await c.query("ALTER SYSTEM SET archive_mode = 'on'");
      await c.query("ALTER SYSTEM SET archive_command = 'sleep 2'");
    });
    await pgCtl(fx.cluster, ['stop', '-w', '-m', 'fast']);
    await startLocalCluster(fx.cluster); // with its log file: pg_ctl restart would keep our pipe open
    try {
      await withSession(endpoint, async (c) => {
        for (let i = 0; i < 3; i++) {
          await c.query('INSERT INTO orders SELECT g, $1, 1 FROM generate_series($2::int, $2::int + 99) g', [
            `slow-${i}`,
            500_000 + i * 100,
          ]);
          await c.query('SELECT pg_switch_wal()');
        }
      });
      await withWorker(fx.taskQueue, fx.catalogPath, async () => {
        const stop = await client.workflow.start('plannedStopWorkflow', {
          taskQueue: fx.taskQueue,
          workflowId: `cancel-in-stop-${Date.now()}`,
          args: [{ cluster: fx.name, holdUntilResumed: true }],
        });
        await waitForStep(stop, 'stop');
        await new Promise((r) => setTimeout(r, 500));
        await stop.cancel();
        const outcome = await stop.result().then(
          () => 'completed',
          (err: unknown) => (err instanceof WorkflowFailedError ? String(err.cause?.name) : String(err)),
        );
        assert.equal(outcome, 'CancelledFailure');
        // When the workflow has ended, the cluster is up again and the lock is free.
        assert.equal(await refusesConnections(endpoint), false, 'the cluster was started again');
        const start = (await client.workflow.execute('plannedStartWorkflow', {
          taskQueue: fx.taskQueue,
          workflowId: `after-cancel-${Date.now()}`,
          args: [{ cluster: fx.name }],
        })) as PlannedStartResult;
        assert.equal(start.alreadyRunning, true);
        const history = (await stop.fetchHistory()).events ?? [];
        const types = history.map((e) => String(e.eventType));
        assert.ok(
          history.some((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'startCluster'),
          `the cancel handler started the cluster (${types.join(',')})`,
        );
      });
    } finally {
      await withSession(endpoint, async (c) => {
        await c.query('ALTER SYSTEM RESET archive_mode');
        await c.query('ALTER SYSTEM RESET archive_command');
      }).catch(() => undefined);
    }
  });

  it('a terminated lock workflow does not let a second workflow act during a held stop', async function () {
    this.timeout(120_000);
    const { client } = await testEnv();
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const stop = await client.workflow.start('plannedStopWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `held-${Date.now()}`,
        args: [{ cluster: fx.name, holdUntilResumed: true }],
      });
      await waitForStep(stop, 'hold');
      await client.workflow.getHandle(lockWorkflowId(fx.name, fx.taskQueue)).terminate('operator cleaning up');
      const refused = await client.workflow
        .execute('plannedStartWorkflow', {
          taskQueue: fx.taskQueue,
          workflowId: `intruder-${Date.now()}`,
          args: [{ cluster: fx.name }],
        })
        .then(
          () => assert.fail('a start ran in the middle of the hold'),
          (err: unknown) => err as WorkflowFailedError,
        );
      assert.equal((refused.cause as { type?: string }).type, 'ClusterBusy');
      assert.match(refused.cause?.message ?? '', new RegExp(stop.workflowId));
      assert.equal(await refusesConnections(endpointOf(fx.cluster)), true, 'still held down');
      await stop.signal(resumeSignal, { by: 'test' });
      const result = (await stop.result()) as PlannedStopResult;
      assert.equal(result.after.running, true);
    });
  });
});
