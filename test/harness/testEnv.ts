// One real Temporal dev server for the whole test run (started from temporal-dev.yml on free
// loopback ports), and the workflow bundle built once and shared by every worker.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Runtime, DefaultLogger } from '@temporalio/worker';
import { startTemporalDevServer, type RunningDevServer } from '../../src/dev/temporalDevServer';
import { freePort } from '../../src/dev/ports';
import { ensureSearchAttributes } from '../../src/worker';
import { claimTestDir, cleanStaleTestRuns, keepTestDir } from './staleRuns';

export interface TestEnv {
  server: RunningDevServer;
  connection: Connection;
  client: Client;
  nativeConnection: NativeConnection;
  workflowBundlePath: string;
  root: string;
}

let envPromise: Promise<TestEnv> | undefined;
const teardowns: Array<() => Promise<void>> = [];

/** Runs `fn` when the test run ends (last registered, first run), before the Temporal server stops. */
export function registerTeardown(fn: () => Promise<void>): void {
  teardowns.push(fn);
}
let runtimeInstalled = false;

async function startEnv(): Promise<TestEnv> {
  if (!runtimeInstalled) {
    Runtime.install({ logger: new DefaultLogger((process.env.PGOPS_TEST_LOG_LEVEL ?? 'ERROR') as 'ERROR') }); // expected failures would flood the output at WARN
    runtimeInstalled = true;
  }
  const cleaned = await cleanStaleTestRuns();
  if (cleaned.length) console.log(`cleaned up after killed test runs: ${cleaned.join(', ')}`);
  const root = mkdtempSync(join(tmpdir(), 'pgops-test-'));
  claimTestDir(root);
  chmodSync(root, 0o755); // the postgres OS user must reach the clusters below it
  const server = await startTemporalDevServer({
    grpcPort: await freePort(),
    uiPort: await freePort(),
    dataDir: join(root, 'temporal'),
    headless: true,
  });
  await ensureSearchAttributes(server.address, server.namespace);
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection, namespace: server.namespace });
  const nativeConnection = await NativeConnection.connect({ address: server.address });
  const bundle = await bundleWorkflowCode({
    workflowsPath: resolve(__dirname, '../../src/workflows'),
    logger: new DefaultLogger('WARN'),
  });
  const workflowBundlePath = join(root, 'workflow-bundle.js');
  writeFileSync(workflowBundlePath, bundle.code);
  return { server, connection, client, nativeConnection, workflowBundlePath, root };
}

export function testEnv(): Promise<TestEnv> {
  envPromise ??= startEnv();
  return envPromise;
}

/** A fresh directory for one test's servers and files, readable by the postgres OS user. */
export async function scratchDir(name: string): Promise<string> {
  const env = await testEnv();
  const dir = join(env.root, `${name}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  return dir;
}

// Turn SIGTERM/SIGINT (a CI timeout, Ctrl-C) into a normal exit so 'exit' handlers stop servers.
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => process.exit(130));

export const mochaHooks = {
  async afterAll(this: Mocha.Context | undefined) {
    // Every daemon of the run stops here: the real node, its CSI volumes and the test Ceph in turn.
    this?.timeout(600_000);
    for (const fn of teardowns.reverse()) await fn().catch((err) => console.error('teardown failed:', err));
    if (!envPromise) return;
    const env = await envPromise;
    await env.nativeConnection.close();
    await env.connection.close();
    await env.server.stop();
    if (process.env.PGOPS_KEEP_TEST_DIRS) keepTestDir(env.root);
    else rmSync(env.root, { recursive: true, force: true });
  },
};
