import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testEnv, scratchDir } from './harness/testEnv';
import { workerProcess, type WorkerProcess } from './harness/workers';
import { backupFixture, type BackupFixture } from './harness/backupFixture';
import { freePort } from '../src/dev/ports';
import { metricsAddressFromEnv } from '../src/worker';
import { PgOpsClient } from '../src/client';
import { UnknownClusterError } from '../src/client/errors';

describe("the worker's Prometheus metrics (PGOPS_METRICS_ADDRESS)", () => {
  let worker: WorkerProcess | undefined;
  after(async () => worker?.kill('SIGTERM'));

  it('takes host:port, and nothing or "off" for none', () => {
    assert.equal(metricsAddressFromEnv({}), undefined);
    assert.equal(metricsAddressFromEnv({ PGOPS_METRICS_ADDRESS: 'off' }), undefined);
    assert.equal(metricsAddressFromEnv({ PGOPS_METRICS_ADDRESS: '0.0.0.0:9464' }), '0.0.0.0:9464');
    assert.throws(() => metricsAddressFromEnv({ PGOPS_METRICS_ADDRESS: '9464' }), /must be host:port/);
  });

  it("serves the SDK runtime's metrics at /metrics, with the worker's task queue and workflow outcomes", async function () {
    this.timeout(120_000);
    const env = await testEnv();
    const dir = await scratchDir('metrics');
    const catalogPath = join(dir, 'pgops.yaml');
    writeFileSync(catalogPath, 'clusters: {}\n');
    const taskQueue = `pgops-metrics-${Date.now()}`;
    const address = `127.0.0.1:${await freePort()}`;
    worker = await workerProcess(taskQueue, catalogPath, { PGOPS_METRICS_ADDRESS: address });
    await worker.waitForOutput(/pg-ops worker started/);
    assert.match(worker.output(), new RegExp(`"metrics":"http://${address}/metrics"`));
    const pgops = new PgOpsClient(env.client, taskQueue);
    const op = await pgops.start('listBackups', { cluster: 'nowhere' });
    await assert.rejects(op.result(), (err: unknown) => err instanceof UnknownClusterError);
    // The runtime exports on its own schedule: poll until the failed workflow is counted.
    const failed = new RegExp(`^temporal_workflow_failed_total\\{[^}]*task_queue="${taskQueue}"[^}]*\\} [1-9]`, 'm');
    let text = '';
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 500))) {
      const response = await fetch(`http://${address}/metrics`);
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
      text = await response.text();
      if (failed.test(text)) break;
    }
    assert.match(text, /^# TYPE temporal_\w+ (counter|gauge|histogram)$/m);
    assert.match(text, new RegExp(`^temporal_worker_task_slots_available\\{[^}]*task_queue="${taskQueue}"`, 'm'));
    assert.match(text, failed, text.slice(0, 3000));
  });

  it('after a passing restore drill: pgops_backup_last_verified_timestamp_seconds{cluster} is when it passed, and again after a worker restart', async function () {
    this.timeout(180_000);
    const env = await testEnv();
    let fx: BackupFixture | undefined;
    let drillWorker: WorkerProcess | undefined;
    try {
      fx = await backupFixture('metrics-drill', { storage: 'copy', rows: 200 });
      const address = `127.0.0.1:${await freePort()}`;
      drillWorker = await workerProcess(fx.taskQueue, fx.catalogPath, { PGOPS_METRICS_ADDRESS: address });
      const pgops = new PgOpsClient(env.client, fx.taskQueue);
      await pgops.run('backup', { cluster: fx.name });
      const drill = await pgops.run('verifyBackup', { cluster: fx.name });
      assert.equal(drill.verification.ok, true);
      // As the SDK's exporter writes it: no temporal_ prefix for a metric of our own, no unit suffix added; one
      // series per cluster (the runtime's meter: no activity labels, so a restarted worker sets the same one).
      const gauge = new RegExp(`^pgops_backup_last_verified_timestamp_seconds\\{cluster="${fx.name}"\\} (\\S+)$`, 'm');
      const scrape = async (at: string) => {
        let text = '';
        for (
          const deadline = Date.now() + 30_000;
          Date.now() < deadline;
          await new Promise((r) => setTimeout(r, 500))
        ) {
          text = await (await fetch(`http://${at}/metrics`)).text();
          if (gauge.test(text)) break;
        }
        const found = gauge.exec(text);
        assert.ok(
          found,
          text
            .split('\n')
            .filter((l) => /pgops|verif/.test(l))
            .join('\n') || text.slice(0, 3000),
        );
        assert.match(text, /^# TYPE pgops_backup_last_verified_timestamp_seconds gauge$/m);
        return Number(found[1]);
      };
      assert.equal(await scrape(address), Date.parse(drill.verification.at) / 1000);
      // A restarted worker sets it from the backup's record, before any drill of its own.
      await drillWorker.kill('SIGTERM');
      const again = `127.0.0.1:${await freePort()}`;
      drillWorker = await workerProcess(fx.taskQueue, fx.catalogPath, { PGOPS_METRICS_ADDRESS: again });
      assert.equal(await scrape(again), Date.parse(drill.verification.at) / 1000, 'from the record, after a restart');
    } finally {
      await drillWorker?.kill('SIGTERM');
      await fx?.teardown();
    }
  });
});
