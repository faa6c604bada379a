// The production shape for a test: a self-hosted Temporal cluster (four server processes on their own
// PostgreSQL, src/dev/temporalCluster.ts) and project workers as separate processes, as two pods would be.
import { Client, Connection } from '@temporalio/client';
import { startTemporalCluster, type RunningTemporalCluster } from '../../src/dev/temporalCluster';
import { ensureSearchAttributes } from '../../src/worker';
import { scratchDir } from './testEnv';
import { workerProcess, type WorkerProcess } from './workers';

export interface SelfHostedTemporal {
  cluster: RunningTemporalCluster;
  /** A client on a fresh connection (one made before a service restart may wait out gRPC's backoff). */
  client(): Promise<Client>;
  /** A project worker process polling `taskQueue` on this cluster. */
  worker(
    taskQueue: string,
    catalogPath: string,
    extraEnv?: Record<string, string>,
    options?: { compiled?: boolean },
  ): Promise<WorkerProcess>;
  stop(): Promise<void>;
}

export async function selfHostedTemporal(label: string): Promise<SelfHostedTemporal> {
  const cluster = await startTemporalCluster({ dir: await scratchDir(label) });
  await ensureSearchAttributes(cluster.address, cluster.namespace);
  const connections: Connection[] = [];
  const workers: WorkerProcess[] = [];
  return {
    cluster,
    async client() {
      const connection = await Connection.connect({ address: cluster.address });
      connections.push(connection);
      return new Client({ connection, namespace: cluster.namespace });
    },
    async worker(taskQueue, catalogPath, extraEnv = {}, options = {}) {
      const w = await workerProcess(
        taskQueue,
        catalogPath,
        { TEMPORAL_ADDRESS: cluster.address, TEMPORAL_NAMESPACE: cluster.namespace, ...extraEnv },
        options,
      );
      workers.push(w);
      return w;
    },
    async stop() {
      for (const w of workers.splice(0)) await w.kill('SIGTERM');
      for (const c of connections.splice(0)) await c.close().catch(() => undefined);
      await cluster.stop();
    },
  };
}
