// `npm run temporal:cluster`: a self-hosted Temporal cluster on this machine, in the shape production runs
// (go.temporal.io/server built once and cached, PostgreSQL persistence and SQL visibility, frontend,
// history, matching and worker as four processes, 4 history shards). State is kept in
// .pgops/temporal-cluster, so a second start finds its workflows again. Ctrl-C stops every process.
// docs/temporal-cluster.md shows the production configuration it mirrors.
import { join, resolve } from 'node:path';
import { startTemporalCluster, TEMPORAL_SERVER_VERSION } from '../src/dev/temporalCluster';
import { ensureSearchAttributes } from '../src/worker';

async function main(): Promise<void> {
  const dir = process.env.PGOPS_TEMPORAL_CLUSTER_DIR ?? join(resolve(__dirname, '..'), '.pgops', 'temporal-cluster');
  const cluster = await startTemporalCluster({ dir, log: (line) => console.log(line) });
  await ensureSearchAttributes(cluster.address, cluster.namespace);
  const pids = (['frontend', 'history', 'matching', 'worker'] as const).map((s) => `${s} ${cluster.pid(s)}`);
  console.log(
    [
      `Temporal ${TEMPORAL_SERVER_VERSION}: frontend ${cluster.address}, namespace ${cluster.namespace}`,
      `  processes: ${pids.join(', ')} (PID files in ${join(dir, 'pids')}, logs in ${join(dir, 'logs')})`,
      `  its PostgreSQL: 127.0.0.1:${cluster.database.port}, data in ${cluster.database.pgdata}`,
      `  a worker on it: TEMPORAL_ADDRESS=${cluster.address} PGOPS_CONFIG=<catalog> npm run worker`,
      'Ctrl-C stops it.',
    ].join('\n'),
  );
  const stop = () => void cluster.stop().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
