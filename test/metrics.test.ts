import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testEnv, scratchDir } from './harness/testEnv';
import { workerProcess, type WorkerProcess } from './harness/workers';
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
});
