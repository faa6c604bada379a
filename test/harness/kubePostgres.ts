// A real local PostgreSQL as the database of a kwok pod: the Kubernetes workflow and PITR suites
// run their StatefulSet's pod on it (see podBackends.ts for how the pod and the server are tied).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalTarget } from '../../src/config/schema';
import { LocalClusterDriver } from '../../src/drivers/cluster/local';
import {
  endpointOf,
  initLocalCluster,
  startLocalCluster,
  stopLocalClusterIfRunning,
  type LocalCluster,
} from '../../src/dev/localPostgres';
import { freePort } from '../../src/dev/ports';
import { withSession } from '../../src/drivers/postgres/session';
import type { KubeCluster } from './kubeCluster';
import { createStatefulSet } from './kubeObjects';
import { backedPodTemplate, backPods, forwardPodPort, type PodBackend } from './podBackends';
import { scratchDir } from './testEnv';

/** A local PostgreSQL with a table of 5000 rows whose TCP connections need `password`; left stopped. */
export async function passwordProtectedPostgres(label: string, password: string): Promise<LocalCluster> {
  const dir = await scratchDir(label);
  const pg = await initLocalCluster({ dir, port: await freePort() });
  await startLocalCluster(pg);
  await withSession(endpointOf(pg), async (c) => {
    await c.query(`ALTER USER postgres PASSWORD '${password}'`);
    await c.query('CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 5000) g');
  });
  // From now on TCP connections need the password, so the Secret really matters.
  const hba = join(pg.pgdata, 'pg_hba.conf');
  writeFileSync(hba, readFileSync(hba, 'utf8').replace(/^(host\s+all\s+all\s+\S+\s+)trust/gm, '$1scram-sha-256'));
  await stopLocalClusterIfRunning(pg, 'fast');
  return pg;
}

/**
 * StatefulSet `name` (one replica, claim template `pgdata`) whose pod's database is the local
 * PostgreSQL `pg`: the pod runs exactly while `pg` runs, and port 5432 of pod `<name>-0`
 * forwards to `pg`'s port (kwok PortForward), so `postgres.portForward` reaches it.
 */
export async function postgresStatefulSet(
  cluster: KubeCluster,
  namespace: string,
  name: string,
  pg: LocalTarget,
): Promise<PodBackend> {
  await forwardPodPort(cluster.admin(), namespace, [`${name}-0`], 5432, pg.port);
  const driver = new LocalClusterDriver(pg);
  const backend = await backPods(cluster, namespace, name, {
    start: async () => void (await driver.start(1)),
    stop: async () => void (await driver.stop()),
  });
  try {
    await createStatefulSet(cluster, {
      namespace,
      name,
      replicas: 1,
      volumeClaimTemplates: ['pgdata'],
      ...backedPodTemplate,
    });
  } catch (err) {
    const log = backend.log.join('; ');
    await backend.close().catch(() => undefined);
    throw new Error(`${err instanceof Error ? err.message : String(err)} (pod backend: ${log || 'nothing happened'})`);
  }
  return backend;
}
