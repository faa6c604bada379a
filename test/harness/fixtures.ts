// A local PostgreSQL cluster with sample data and a catalog naming it: the common fixture.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import {
  endpointOf,
  initLocalCluster,
  localTargetOf,
  startLocalCluster,
  stopLocalClusterIfRunning,
  type LocalCluster,
} from '../../src/dev/localPostgres';
import { withSession } from '../../src/drivers/postgres/session';
import { freePort } from '../../src/dev/ports';
import { scratchDir } from './testEnv';
import { createOrders } from './sampleData';

export interface LocalFixture {
  name: string;
  cluster: LocalCluster;
  catalogPath: string;
  taskQueue: string;
  rowCount(): Promise<number>;
  checksum(): Promise<string>;
  teardown(): Promise<void>;
}

export async function localClusterFixture(
  label: string,
  opts: { rows?: number; name?: string } = {},
): Promise<LocalFixture> {
  const dir = await scratchDir(label);
  const cluster = await initLocalCluster({ dir, port: await freePort() });
  await startLocalCluster(cluster);
  const endpoint = endpointOf(cluster);
  await withSession(endpoint, async (c) => {
    await createOrders(c, opts.rows ?? 1000);
  });
  const name = opts.name ?? 'demo';
  const catalogPath = join(dir, 'pgops.yaml');
  writeFileSync(
    catalogPath,
    stringify({
      clusters: {
        [name]: {
          target: localTargetOf(cluster),
          storage: { kind: 'local' },
        },
      },
    }),
  );
  return {
    name,
    cluster,
    catalogPath,
    taskQueue: `pg-ops-${label}-${Math.random().toString(36).slice(2, 8)}`,
    rowCount: () =>
      withSession(endpoint, async (c) => Number((await c.query('SELECT count(*) AS n FROM orders')).rows[0].n)),
    checksum: () =>
      withSession(endpoint, async (c) =>
        String(
          (
            await c.query(
              "SELECT md5(string_agg(id || ':' || customer || ':' || amount, ',' ORDER BY id)) AS h FROM orders",
            )
          ).rows[0].h,
        ),
      ),
    teardown: () => stopLocalClusterIfRunning(cluster),
  };
}
