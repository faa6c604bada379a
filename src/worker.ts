// The standalone worker. Its Temporal connection is read like every Temporal tool's (profile of the
// standard config file, then TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*: see
// config/temporalConnection.ts; default 127.0.0.1:7233, "default"). PGOPS_TASK_QUEUE (default "pg-ops"), PGOPS_CONFIG
// (the cluster catalog), PGOPS_WORKFLOW_BUNDLE (a prebuilt workflow bundle; default: the one
// `npm run build` puts beside the compiled worker, else the workflows are bundled at start),
// PGOPS_METRICS_ADDRESS (Prometheus metrics, e.g. 0.0.0.0:9464; default off), PGOPS_WORKER_DEPLOYMENT and
// PGOPS_BUILD_ID (Worker Versioning: workflows pinned to the build that started them; PGOPS_PROMOTE, see
// config/workerDeployment.ts), PGOPS_MAX_CONCURRENT_ACTIVITIES and PGOPS_MAX_CACHED_WORKFLOWS (config/workerSizing.ts).
// SIGTERM/SIGINT shut it down gracefully: running activities are allowed to finish or heartbeat
// out, and Temporal hands their workflows to another worker.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DefaultLogger, NativeConnection, Runtime, Worker, type LogLevel } from '@temporalio/worker';
import { Connection, type ConnectionOptions } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { createActivities } from './activities';
import { ClusterRegistry } from './activities/clusterRegistry';
import { seedDrillGauges } from './activities/drillGauge';
import { catalogPathFromEnv, loadCatalog } from './config/catalog';
import { describeTemporalConnection, resolveTemporalConnection } from './config/temporalConnection';
import { DEFAULT_TASK_QUEUE } from './contract/definitions';
import { logger } from './logger';
import { closeParkedSessions } from './drivers/postgres/parkedSession';
import { workerDeploymentFromEnv, type WorkerDeploymentChoice } from './config/workerDeployment';
import { promoteWhenPolling } from './workerPromotion';
import { workerSizingFromEnv } from './config/workerSizing';

export const SEARCH_ATTRIBUTES = { PgCluster: 'Keyword', PgOperation: 'Keyword' } as const;

export interface PgOpsWorkerOptions {
  connection: NativeConnection;
  namespace?: string;
  taskQueue?: string;
  catalogPath: string;
  workflowBundlePath?: string;
  /** Cap concurrent activities (tests keep it low on 2-core machines). */
  maxConcurrentActivityTaskExecutions?: number;
  /** How many workflows a worker keeps in its cache (SDK default when unset). */
  maxCachedWorkflows?: number;
  /** Worker Versioning: this worker is `buildId` of Worker Deployment `deploymentName`; workflows are pinned. */
  deployment?: { deploymentName: string; buildId: string };
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
    ...(opts.maxCachedWorkflows !== undefined && { maxCachedWorkflows: opts.maxCachedWorkflows }),
    ...(opts.deployment && {
      workerDeploymentOptions: {
        useWorkerVersioning: true,
        version: opts.deployment,
        // An operation finishes on the build that started it: no replay of a half-done restore on new code.
        defaultVersioningBehavior: 'PINNED',
      },
    }),
  });
}

/** Registers PgCluster/PgOperation on the namespace if they are missing (idempotent). */
export async function ensureSearchAttributes(server: string | ConnectionOptions, namespace: string): Promise<void> {
  const connection = await Connection.connect(typeof server === 'string' ? { address: server } : server);
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

/**
 * PGOPS_METRICS_ADDRESS: where the SDK runtime serves its Prometheus metrics (`/metrics`), e.g.
 * `0.0.0.0:9464`; unset, empty or `off`: none (several workers on one machine would fight for a port).
 */
export function metricsAddressFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env.PGOPS_METRICS_ADDRESS?.trim();
  if (!value || value === 'off') return undefined;
  if (!/^[^\s:]+:\d{1,5}$/.test(value) && !/^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(value))
    throw new Error(`PGOPS_METRICS_ADDRESS must be host:port (e.g. 0.0.0.0:9464), got "${value}"`);
  return value;
}

/** The SDK runtime: its log lines through pino, and Prometheus metrics when `metricsAddress` is set. */
export function installRuntimeLogger(level: LogLevel = 'INFO', metricsAddress?: string): void {
  Runtime.install({
    ...(metricsAddress && {
      telemetryOptions: { metrics: { prometheus: { bindAddress: metricsAddress, countersTotalSuffix: true } } },
    }),
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

/** In the background, once the worker polls: this build made current as PGOPS_PROMOTE says. */
async function promote(
  options: ConnectionOptions,
  namespace: string,
  deployment: WorkerDeploymentChoice,
): Promise<void> {
  const connection = await Connection.connect(options);
  try {
    const outcome = await promoteWhenPolling(connection, namespace, deployment);
    logger.info(
      { deployment: deployment.deploymentName, buildId: deployment.buildId, outcome },
      'worker deployment version',
    );
  } catch (err) {
    logger.error({ err }, 'could not make this build the current version');
  } finally {
    await connection.close();
  }
}

/** dist/workflow-bundle.js beside the compiled worker (npm run build), if there is one. */
function prebuiltBundle(): string | undefined {
  const path = join(__dirname, 'workflow-bundle.js');
  return existsSync(path) ? path : undefined;
}

async function main(): Promise<void> {
  const temporal = resolveTemporalConnection();
  const { namespace } = temporal;
  const taskQueue = process.env.PGOPS_TASK_QUEUE ?? DEFAULT_TASK_QUEUE;
  const catalogPath = catalogPathFromEnv();
  const metricsAddress = metricsAddressFromEnv();
  const deployment = workerDeploymentFromEnv();
  const sizing = workerSizingFromEnv();
  installRuntimeLogger('INFO', metricsAddress);
  await ensureSearchAttributes(temporal.connectionOptions, namespace);
  const connection = await NativeConnection.connect(temporal.connectionOptions);
  const worker = await createPgOpsWorker({
    connection,
    namespace,
    taskQueue,
    catalogPath,
    workflowBundlePath: process.env.PGOPS_WORKFLOW_BUNDLE ?? prebuiltBundle(),
    ...sizing,
    ...(deployment && { deployment: { deploymentName: deployment.deploymentName, buildId: deployment.buildId } }),
  });
  // The drill gauge from the backups' records, in the background: a worker never waits on storage to start.
  if (metricsAddress) void seedDrillGauges(new ClusterRegistry(() => loadCatalog(catalogPath)));
  logger.info(
    {
      ...describeTemporalConnection(temporal),
      taskQueue,
      catalogPath,
      metrics: metricsAddress ? `http://${metricsAddress}/metrics` : 'off',
      rssMB: Math.round(process.memoryUsage().rss / 1e6),
      ...(deployment && { deployment: `${deployment.deploymentName} build ${deployment.buildId}` }),
    },
    'pg-ops worker started',
  );
  if (deployment) void promote(temporal.connectionOptions, namespace, deployment);
  // Worker.run() resolves after SIGINT/SIGTERM: the runtime's default shutdown signals.
  await worker.run();
  await closeParkedSessions();
  await connection.close();
  logger.info('pg-ops worker stopped');
}

if (require.main === module) {
  main().catch((err) => {
    logger.error({ err }, 'pg-ops worker failed');
    process.exit(1);
  });
}
