import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { NativeConnection, Worker } from '@temporalio/worker';
import { Client, Connection } from '@temporalio/client';
import { chromium, type Browser, type Page } from 'playwright-core';
import { scratchDir, testEnv } from './harness/testEnv';
import { localClusterFixture, type LocalFixture } from './harness/fixtures';
import { startTemporalDevServer, type RunningDevServer } from '../src/dev/temporalDevServer';
import { freePort } from '../src/dev/ports';
import { ensureSearchAttributes } from '../src/worker';
import { createActivities } from '../src/activities';
import { loadCatalog } from '../src/config/catalog';
import { refusesConnections } from '../src/drivers/postgres/session';
import { endpointOf } from '../src/dev/localPostgres';

const ARTIFACTS = resolve(__dirname, '..', 'test-artifacts');

describe('the Temporal UI, in a real browser (Debian chromium + playwright-core)', function () {
  this.timeout(240_000);
  let fx: LocalFixture;
  let server: RunningDevServer;
  let browser: Browser;
  let page: Page;
  let worker: Worker;
  let running: Promise<void>;
  let connection: NativeConnection;
  let client: Client;

  before(async function () {
    const env = await testEnv();
    fx = await localClusterFixture('ui');
    // The shared test server runs headless; this one serves the UI.
    server = await startTemporalDevServer({
      grpcPort: await freePort(),
      uiPort: await freePort(),
      dataDir: join(await scratchDir('ui-temporal'), 'temporal'),
    });
    await ensureSearchAttributes(server.address, server.namespace);
    connection = await NativeConnection.connect({ address: server.address });
    client = new Client({
      connection: await Connection.connect({ address: server.address }),
      namespace: server.namespace,
    });
    worker = await Worker.create({
      connection,
      namespace: server.namespace,
      taskQueue: fx.taskQueue,
      workflowBundle: { codePath: env.workflowBundlePath },
      activities: createActivities({ catalog: () => loadCatalog(fx.catalogPath) }),
    });
    running = worker.run();
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    mkdirSync(ARTIFACTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    worker?.shutdown();
    await running?.catch(() => undefined);
    await connection?.close();
    await client?.connection.close();
    await server?.stop();
    await fx?.teardown();
  });

  it('starts a held planned stop from the UI form, shows its step, and resumes it with a signal from the UI; the history names each step and its cluster', async () => {
    const workflowId = `ui-stop-${Date.now()}`;
    await page.goto(
      `${server.uiUrl}/namespaces/${server.namespace}/workflows/start-workflow?workflowId=${workflowId}&taskQueue=${fx.taskQueue}&workflowType=plannedStopWorkflow`,
    );
    await page.locator('.cm-content').click();
    await page.keyboard.type(JSON.stringify({ cluster: fx.name, holdUntilResumed: true, reason: 'UI test' }));
    await page.screenshot({ path: join(ARTIFACTS, 'ui-1-start-form.png') });
    // Leaving the editor reformats its JSON and the form grows: click the button only after that.
    await page.getByRole('heading', { name: 'Start a Workflow' }).click();
    await page.waitForTimeout(500);
    await page.getByRole('button', { name: 'Start Workflow' }).click();
    // The UI started it: the server knows the run.
    let runId = '';
    for (let i = 0; i < 75 && !runId; i++) {
      runId = await client.workflow
        .getHandle(workflowId)
        .describe()
        .then((d) => d.runId)
        .catch(() => '');
      if (!runId) await page.waitForTimeout(200);
    }
    await page.screenshot({ path: join(ARTIFACTS, 'ui-1b-after-start.png') });
    assert.ok(runId, 'the UI form started the workflow');

    // The run's page shows the workflow's current details: the step, in words a DBA reads.
    await page.goto(`${server.uiUrl}/namespaces/${server.namespace}/workflows/${workflowId}/${runId}/history`);
    await page.getByText('User Metadata').filter({ visible: true }).first().click();
    // The UI renders current details (markdown) in a sandboxed frame.
    const details = async () => {
      const texts = await Promise.all(
        page.frames().map((f) =>
          f
            .locator('body')
            .innerText()
            .catch(() => ''),
        ),
      );
      return texts.join('\n');
    };
    for (let i = 0; i < 120 && !/stopped and held for maintenance/.test(await details()); i++)
      await page.waitForTimeout(500);
    if (!/Step: hold/.test(await details())) {
      await page.screenshot({ path: join(ARTIFACTS, 'ui-failed-details.png'), fullPage: true });
      assert.fail(`the UI never showed the hold step in the current details:\n${await details()}`);
    }
    await page.screenshot({ path: join(ARTIFACTS, 'ui-2-held.png'), fullPage: true });
    assert.equal(await refusesConnections(endpointOf(fx.cluster)), true, 'the UI-started stop stopped the database');

    await page.getByRole('button', { name: 'More Actions' }).filter({ visible: true }).first().click();
    await page.getByText('Send a Signal').filter({ visible: true }).first().click();
    // The UI asks the running worker for the workflow's signals and offers them in a list.
    await page.getByTestId('signal-select-button').filter({ visible: true }).first().click();
    await page.getByText('resume', { exact: true }).filter({ visible: true }).first().click();
    await page.screenshot({ path: join(ARTIFACTS, 'ui-3-signal-dialog.png') });
    await page.getByRole('button', { name: 'Submit' }).filter({ visible: true }).first().click();
    const result = await client.workflow.getHandle(workflowId).result();
    assert.equal((result as { hold: { resumedBy: string } }).hold.resumedBy, 'signal');
    await page.reload();
    await page
      .getByText(/Completed/)
      .first()
      .waitFor({ timeout: 30_000 });
    await page.screenshot({ path: join(ARTIFACTS, 'ui-4-completed.png'), fullPage: true });
    // Each activity's summary names the cluster and the step (src/workflows/activitySummaries.ts).
    await page
      .getByText(`${fx.name}: stop cluster`)
      .first()
      .waitFor({ timeout: 30_000 })
      .catch(async (err: unknown) => {
        await page.screenshot({ path: join(ARTIFACTS, 'ui-failed-activity-summary.png'), fullPage: true });
        throw err;
      });
    await page.screenshot({ path: join(ARTIFACTS, 'ui-5-activity-summaries.png'), fullPage: true });
    assert.equal(await refusesConnections(endpointOf(fx.cluster)), false, 'running again after the UI signal');
  });
});
