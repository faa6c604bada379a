// Stop/start steps, one driver call each. All are idempotent: a retry after a worker crash finds
// the cluster already stopped (or started) and reports the same result.
import { log } from '@temporalio/activity';
import type { ClusterRegistry } from './clusterRegistry';
import { asStep, preconditionFailed } from './failures';
import { withHeartbeats } from './heartbeat';
import { refusesConnections, waitForSql } from '../drivers/postgres/session';

export interface ClusterRef {
  cluster: string;
}

export function createClusterSteps(registry: ClusterRegistry) {
  return {
    /** Confirms the cluster is in the catalog; returns what workflows may know (nothing secret). */
    async resolveCluster({ cluster }: ClusterRef): Promise<{
      cluster: string;
      kind: 'local' | 'kubernetes';
      catalogReplicas: number;
      storage?: string;
      replicaOf?: string;
    }> {
      const entry = registry.entry(cluster);
      return {
        cluster,
        kind: entry.target.kind,
        catalogReplicas: entry.target.kind === 'kubernetes' ? entry.target.replicas : 1,
        storage: entry.storage?.kind,
        replicaOf: entry.replicaOf,
      };
    },

    async describeCluster({
      cluster,
    }: ClusterRef): Promise<{ running: boolean; replicas: number; readyReplicas: number }> {
      return asStep(cluster, 'describe', async () => {
        const state = await registry.driver(cluster).describe();
        return { running: state.running, replicas: state.replicas, readyReplicas: state.readyReplicas };
      });
    },

    async stopCluster({
      cluster,
    }: ClusterRef): Promise<{ replicasBefore: number; alreadyStopped: boolean; ms: number }> {
      return asStep(cluster, 'stop', () =>
        withHeartbeats(async (progress) => {
          const started = Date.now();
          log.info('stopping cluster', { cluster, step: 'stop-begin' });
          const result = await registry
            .driver(cluster)
            .stop({ onProgress: (d) => progress.report(d), signal: progress.signal });
          log.info('cluster stopped', { cluster, step: 'stop-end', ...result });
          return { ...result, ms: Date.now() - started };
        }),
      );
    },

    async verifyQuiescent({ cluster }: ClusterRef): Promise<{ volumesKept: string[]; connectionsRefused: boolean }> {
      return asStep(cluster, 'verify-quiescent', async () => {
        const check = await registry.driver(cluster).verifyQuiescent();
        const connectionsRefused = await refusesConnections(await registry.endpoint(cluster));
        if (!connectionsRefused)
          throw preconditionFailed(
            cluster,
            'verify-quiescent',
            'PostgreSQL still accepts connections after the stop; something else is serving this endpoint. Investigate before going on.',
          );
        return { volumesKept: check.volumesKept, connectionsRefused };
      });
    },

    async startCluster({ cluster, replicas }: ClusterRef & { replicas?: number }): Promise<{
      replicas: number;
      replicasFrom: 'input' | 'recorded' | 'catalog';
      readyReplicas: number;
      alreadyRunning: boolean;
      msToReady: number;
      serverVersion: string;
    }> {
      return asStep(cluster, 'start', () =>
        withHeartbeats(async (progress) => {
          const started = Date.now();
          const entry = registry.entry(cluster);
          const driver = registry.driver(cluster);
          const recorded = replicas === undefined ? await driver.recordedReplicas() : undefined;
          const catalogReplicas = entry.target.kind === 'kubernetes' ? entry.target.replicas : 1;
          const count = replicas ?? recorded ?? catalogReplicas;
          const replicasFrom = replicas !== undefined ? 'input' : recorded !== undefined ? 'recorded' : 'catalog';
          log.info('starting cluster', { cluster, replicas: count, replicasFrom, step: 'start-begin' });
          const onProgress = (d: string) => progress.report(d);
          const result = await driver.start(count, { onProgress, signal: progress.signal });
          const timeoutMs =
            (entry.target.kind === 'local' ? entry.target.startTimeoutSeconds : entry.target.readyTimeoutSeconds) *
            1000;
          const sql = await waitForSql(await registry.endpoint(cluster), {
            timeoutMs,
            signal: progress.signal,
            onProgress,
          });
          return {
            replicas: count,
            replicasFrom,
            readyReplicas: result.readyReplicas,
            alreadyRunning: result.alreadyRunning,
            msToReady: Date.now() - started,
            serverVersion: sql.serverVersion,
          };
        }),
      );
    },
  };
}
