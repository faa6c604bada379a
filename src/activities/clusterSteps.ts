// Stop/start steps, one driver call each. All are idempotent: a retry after a worker crash finds
// the cluster already stopped (or started) and reports the same result.
import { followersOf } from './replicaHistoryChecks';
import { ApplicationFailure, CancelledFailure, log } from '@temporalio/activity';
import type { ClusterRegistry } from './clusterRegistry';
import type { ClusterServices } from '../drivers/clusterServices';
import { asStep, preconditionFailed } from './failures';
import { withHeartbeats, type ActivityProgress } from './heartbeat';
import type { LockedStepInput } from './lockGuard';
import type { ClusterStarted } from '../contract/operations/plannedStart';
import { startupFailure } from '../drivers/postgres/restore/startupFailure';
import { refusesConnections, waitForSql } from '../drivers/postgres/session';
import type { ClusterSnapshotState } from '../contract/definitions';
import { describeInCatalog, resolveInCatalog, type ResolvedCluster } from './clusterLookup';

/** A cluster by name; `lockGrantedAt` only for the first step after the lock's grant (lockGuard.ts). */
export type ClusterRef = LockedStepInput;

export interface Quiescence {
  volumesKept: string[];
  connectionsRefused: boolean;
}

/** The quiescent point after a stop: nothing running, volumes kept, connections refused. */
export function verifyQuiescence(registry: ClusterRegistry, cluster: string): Promise<Quiescence> {
  return asStep(cluster, 'verify-quiescent', async () => {
    const services = registry.services(cluster);
    const check = await services.target().verifyQuiescent();
    const connectionsRefused = await refusesConnections(await services.endpoint());
    if (!connectionsRefused)
      throw preconditionFailed(
        cluster,
        'verify-quiescent',
        'PostgreSQL still accepts connections after the stop; something else is serving this endpoint. Investigate before going on.',
      );
    return { volumesKept: check.volumesKept, connectionsRefused };
  });
}

export function createClusterSteps(registry: ClusterRegistry) {
  return {
    /** Confirms the cluster is in the catalog; returns what workflows may know (nothing secret). */
    async resolveCluster({ cluster }: ClusterRef): Promise<ResolvedCluster> {
      return resolveInCatalog(registry, cluster);
    },

    async describeCluster({ cluster }: ClusterRef): Promise<ClusterSnapshotState> {
      return describeInCatalog(registry, cluster);
    },

    /**
     * `verify`: check the quiescent point too, as verifyQuiescent does, once the shutdown has ended
     * (its result is `quiescent`): one workflow step less. Run again after a crash, the stop finds
     * the cluster stopped and checks again.
     */
    async stopCluster({ cluster, verify }: ClusterRef & { verify?: boolean }): Promise<{
      replicasBefore: number;
      alreadyStopped: boolean;
      ms: number;
      quiescent?: Quiescence;
    }> {
      const stopped = await asStep(cluster, 'stop', () =>
        withHeartbeats(async (progress) => stopAndWait(registry, cluster, progress)),
      );
      return verify ? { ...stopped, quiescent: await verifyQuiescence(registry, cluster) } : stopped;
    },

    async verifyQuiescent({ cluster }: ClusterRef): Promise<Quiescence> {
      return verifyQuiescence(registry, cluster);
    },

    async startCluster({ cluster, replicas }: ClusterRef & { replicas?: number }): Promise<ClusterStarted> {
      return asStep(cluster, 'start', () =>
        withHeartbeats(async (progress) => startAndWaitForSql(registry, cluster, replicas, progress)),
      );
    },
  };
}

/** The step stopCluster: the shutdown, run to its end once begun. */
async function stopAndWait(registry: ClusterRegistry, cluster: string, progress: ActivityProgress) {
  // Cancelled before the shutdown began: nothing to take back, the cluster stays up.
  if (progress.signal.aborted) throw new CancelledFailure('cancelled before the shutdown began');
  const started = Date.now();
  log.info('stopping cluster', { cluster, step: 'stop-begin' });
  // No abort signal: a shutdown cannot be taken back half way. Killing pg_ctl would let a
  // cancelled workflow release the lock while the server is still shutting down; the
  // stop runs to its end and the workflow's cancel handler starts the cluster again.
  const result = await registry
    .services(cluster)
    .target()
    .stop({ onProgress: (d) => progress.report(d) });
  log.info('cluster stopped', { cluster, step: 'stop-end', ...result });
  return { ...result, ms: Date.now() - started };
}

/** The step startCluster: started with the replicas asked, recorded or catalogued, and SQL answering. */
async function startAndWaitForSql(
  registry: ClusterRegistry,
  cluster: string,
  replicas: number | undefined,
  progress: ActivityProgress,
): Promise<ClusterStarted> {
  const services = servicesToStart(registry, cluster, progress);
  // Cancelled before the start began: nothing to take back, the cluster stays as it is.
  if (progress.signal.aborted) throw new CancelledFailure('cancelled before the start began');
  const started = Date.now();
  const entry = services.entry;
  const driver = services.target();
  const recorded = replicas === undefined ? await driver.recordedReplicas() : undefined;
  const catalogReplicas = entry.target.kind === 'kubernetes' ? entry.target.replicas : 1;
  const count = replicas ?? recorded ?? catalogReplicas;
  const replicasFrom = replicas !== undefined ? 'input' : recorded !== undefined ? 'recorded' : 'catalog';
  log.info('starting cluster', { cluster, replicas: count, replicasFrom, step: 'start-begin' });
  const onProgress = (d: string) => progress.report(d);
  const timeoutMs =
    (entry.target.kind === 'local' ? entry.target.startTimeoutSeconds : entry.target.readyTimeoutSeconds) * 1000;
  const { result, sql } = await refusingFailedRecovery(services, progress.signal, async (signal) => {
    const result = await driver.start(count, { onProgress, signal });
    const sql = await waitForSql(await services.endpoint(), { timeoutMs, signal, onProgress });
    return { result, sql };
  });
  return {
    replicas: count,
    replicasFrom,
    readyReplicas: result.readyReplicas,
    alreadyRunning: result.alreadyRunning,
    msToReady: Date.now() - started,
    serverVersion: sql.serverVersion,
    followers: await followersOf(registry, cluster).catch(() => undefined),
  };
}

/** The cluster's services; a catalog that names it wrongly is said where a DBA looks. */
function servicesToStart(registry: ClusterRegistry, cluster: string, progress: ActivityProgress): ClusterServices {
  try {
    return registry.services(cluster);
  } catch (err) {
    // The workflow retries this step until the catalog is fixed: say so where a DBA looks.
    if (err instanceof ApplicationFailure && (err.type === 'ConfigurationError' || err.type === 'UnknownCluster'))
      progress.report(
        `cannot start the cluster: ${err.message}. This step retries every minute for up to 24 h: fix the catalog and it goes on by itself.`,
        { blockedBy: err.type },
      );
    throw err;
  }
}

/**
 * A start whose startup process gave up during recovery (FATAL, "startup process exited") fails
 * the step at once, the server's line at the top: every retry would end the same way with the
 * database down. The log is watched while the start and the wait for SQL run, because pg_ctl -w
 * (and a pod's readiness) may report the server up at consistency, before recovery fails.
 */
async function refusingFailedRecovery<T>(
  services: ClusterServices,
  signal: AbortSignal,
  start: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const where = `the server log of cluster "${services.name}"`;
  const readLog = () => services.serverLog().catch((): string[] => []);
  // Only what this start writes: an earlier run's failure (a restore retried) says nothing of it.
  const skip = (await readLog()).length;
  const failureNow = async () => {
    const lines = await readLog();
    return startupFailure(lines.length >= skip ? lines.slice(skip) : lines, where);
  };
  const watch = new AbortController();
  let refused: Error | undefined;
  const timer = setInterval(() => {
    void failureNow().then((f) => {
      if (f && !refused) {
        refused = f;
        watch.abort(f);
      }
    });
  }, 1000);
  try {
    return await start(AbortSignal.any([signal, watch.signal]));
  } catch (err) {
    if (err instanceof ApplicationFailure || err instanceof CancelledFailure) throw err;
    throw refused ?? (await failureNow()) ?? err;
  } finally {
    clearInterval(timer);
  }
}
