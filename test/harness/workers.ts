// Workers for tests: in-process (fast) or a child process that a crash test can SIGKILL.
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../../src/activities';
import { loadCatalog } from '../../src/config/catalog';
import { testEnv } from './testEnv';

export async function inProcessWorker(taskQueue: string, catalogPath: string): Promise<Worker> {
  const env = await testEnv();
  return Worker.create({
    connection: env.nativeConnection,
    namespace: env.server.namespace,
    taskQueue,
    workflowBundle: { codePath: env.workflowBundlePath },
    activities: createActivities({ catalog: () => loadCatalog(catalogPath) }),
    maxConcurrentActivityTaskExecutions: 10,
  });
}

/** Runs `body` while an in-process worker polls `taskQueue`. */
export async function withWorker<T>(taskQueue: string, catalogPath: string, body: () => Promise<T>): Promise<T> {
  const worker = await inProcessWorker(taskQueue, catalogPath);
  return worker.runUntil(body);
}

let runs = 0;

/** Runs workflow `type` with `input` to its end while an in-process worker polls `taskQueue`; `label` goes into its id. */
export async function runWorkflow<T>(
  taskQueue: string,
  catalogPath: string,
  label: string,
  type: string,
  input: Record<string, unknown>,
): Promise<T> {
  const { client } = await testEnv();
  return withWorker(taskQueue, catalogPath, () =>
    client.workflow.execute(type, {
      taskQueue,
      workflowId: `${type}-${label}-${Date.now()}-${runs++}`,
      args: [input],
    }),
  ) as Promise<T>;
}

export interface WorkerProcess {
  child: ChildProcess;
  output(): string;
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts src/worker.ts in a child process (one node process, so SIGKILL really kills the worker);
 * `compiled`: the built worker instead (dist/worker.js and its prebuilt workflow bundle, as deployed:
 * `npm run build` first), without tsx's memory.
 */
export async function workerProcess(
  taskQueue: string,
  catalogPath: string,
  extraEnv: Record<string, string> = {},
  options: { compiled?: boolean } = {},
): Promise<WorkerProcess> {
  const env = await testEnv();
  const entry = options.compiled
    ? [resolve(__dirname, '../../dist/worker.js')]
    : ['--require', 'tsx/cjs', resolve(__dirname, '../../src/worker.ts')];
  const child = spawn(process.execPath, entry, {
    cwd: resolve(__dirname, '../..'),
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: env.server.address,
      TEMPORAL_NAMESPACE: env.server.namespace,
      PGOPS_TASK_QUEUE: taskQueue,
      PGOPS_CONFIG: catalogPath,
      ...(options.compiled ? {} : { PGOPS_WORKFLOW_BUNDLE: env.workflowBundlePath }),
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const waiters: Array<() => void> = [];
  const onData = (chunk: Buffer) => {
    out += chunk.toString();
    waiters.splice(0).forEach((w) => w());
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const handle: WorkerProcess = {
    child,
    output: () => out,
    async waitForOutput(pattern, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(out)) {
        if (child.exitCode !== null)
          throw new Error(`worker exited (${child.exitCode}) before printing ${pattern}:\n${out}`);
        if (Date.now() > deadline) throw new Error(`worker did not print ${pattern} within ${timeoutMs}ms:\n${out}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
    },
    async kill(signal = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
  await handle.waitForOutput(/pg-ops worker started/);
  return handle;
}
