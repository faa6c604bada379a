// The standalone worker. Environment: TEMPORAL_ADDRESS (default 127.0.0.1:7233),
// TEMPORAL_NAMESPACE (default "default"), PGOPS_TASK_QUEUE (default "pg-ops"), PGOPS_CONFIG
// (the cluster catalog), PGOPS_WORKFLOW_BUNDLE (a prebuilt workflow bundle; default: the one
// `npm run build` puts beside the compiled worker, else the workflows are bundled at start).
// SIGTERM/SIGINT shut it down gracefully: running activities are allowed to finish or heartbeat
// out, and Temporal hands their workflows to another worker.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DefaultLogger, NativeConnection, Runtime, Worker, type LogLevel } from '@temporalio/worker';
import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { createActivities } from './activities';
import { catalogPathFromEnv, loadCatalog } from './config/catalog';
import { DEFAULT_TASK_QUEUE } from './workflows/definitions';
import { logger } from './logger';

export const SEARCH_ATTRIBUTES = { PgCluster: 'Keyword', PgOperation: 'Keyword' } as const;

export interface PgOpsWorkerOptions {
  connection: NativeConnection;
  namespace?: string;
  taskQueue?: string;
  catalogPath: string;
  workflowBundlePath?: string;
  /** Cap concurrent activities (tests keep it low on 2-core machines). */
  maxConcurrentActivityTaskExecutions?: number;
}

export async function createPgOpsWorker(opts: PgOpsWorkerOptions): Promise<Worker> {
  loadCatalog(opts.catalogPath); // fail fast at start-up on a broken catalog
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace ?? 'default',
    taskQueue: opts.taskQueue ?? DEFAULT_TASK_QUEUE,
    ...(opts.workflowBundlePath
      ? { workflowBundle: { codePath: opts.workflowBundlePath } }
      : { workflowsPath: require.resolve('./workflows') }),
    activities: createActivities({ catalog: () => loadCatalog(opts.catalogPath) }),
    maxConcurrentActivityTaskExecutions: opts.maxConcurrentActivityTaskExecutions ?? 20,
  });
}

/** Registers PgCluster/PgOperation on the namespace if they are missing (idempotent). */
export async function ensureSearchAttributes(address: string, namespace: string): Promise<void> {
  const connection = await Connection.connect({ address });
  try {
    const existing = await connection.operatorService.listSearchAttributes({ namespace });
    const missing = Object.keys(SEARCH_ATTRIBUTES).filter((name) => !(name in (existing.customAttributes ?? {})));
    if (missing.length === 0) return;
    const searchAttributes = Object.fromEntries(
      missing.map((name) => [name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD]),
    );
    await connection.operatorService.addSearchAttributes({ namespace, searchAttributes });
    logger.info({ missing }, 'registered search attributes');
  } finally {
    await connection.close();
  }
}

export function installRuntimeLogger(level: LogLevel = 'INFO'): void {
  Runtime.install({
    logger: new DefaultLogger(level, (entry) => {
      const method =
        entry.level === 'ERROR'
          ? 'error'
          : entry.level === 'WARN'
            ? 'warn'
            : entry.level === 'DEBUG' || entry.level === 'TRACE'
              ? 'debug'
              : 'info';
      logger[method]({ ...entry.meta }, entry.message);
    }),
  });
}

/** dist/workflow-bundle.js beside the compiled worker (npm run build), if there is one. */
function prebuiltBundle(): string | undefined {
  const path = join(__dirname, 'workflow-bundle.js');
  return existsSync(path) ? path : undefined;
}

async function main(): Promise<void> {
  const address = process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
  const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';
  const taskQueue = process.env.PGOPS_TASK_QUEUE ?? DEFAULT_TASK_QUEUE;
  const catalogPath = catalogPathFromEnv();
  installRuntimeLogger();
  await ensureSearchAttributes(address, namespace);
  const connection = await NativeConnection.connect({ address });
  const worker = await createPgOpsWorker({
    connection,
    namespace,
    taskQueue,
    catalogPath,
    workflowBundlePath: process.env.PGOPS_WORKFLOW_BUNDLE ?? prebuiltBundle(),
  });
  logger.info(
    { address, namespace, taskQueue, catalogPath, rssMB: Math.round(process.memoryUsage().rss / 1e6) },
    'pg-ops worker started',
  );
  // Worker.run() resolves after SIGINT/SIGTERM: the runtime's default shutdown signals.
  await worker.run();
  await connection.close();
  logger.info('pg-ops worker stopped');
}

if (require.main === module) {
  main().catch((err) => {
    logger.error({ err }, 'pg-ops worker failed');
    process.exit(1);
  });
}
