// The demo's second act: a primary "shop" archiving WAL, a delayed replica "shop-delayed", an
// accidental DELETE, the incident located in the archive, and the lost rows brought back.
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { createDelayedReplicaSet, type ReplicaSet } from '../src/dev/delayedReplicaSet';
import { withSession, type PgEndpoint } from '../src/drivers/postgres/session';
import { pollUntil } from '../src/drivers/waiting';
import { archiveEndLsn } from '../src/drivers/postgres/archive/walInspect';
import { compareLsn } from '../src/common/lsn';
import { watchProgress } from './demoProgress';
import type { DelayedReplicaPitrResult } from '../src/workflows/delayedReplicaPitr';
import { localTargetOf } from '../src/dev/localPostgres';

export const DEMO_DELAY = '15s';

export function pitrCatalogEntries(set: ReplicaSet, exportDir: string): Record<string, unknown> {
  return {
    shop: { target: localTargetOf(set.primary) },
    'shop-delayed': { target: localTargetOf(set.replica), replicaOf: 'shop', walArchive: set.archiveDir, exportDir },
  };
}

export async function createShop(root: string, say: (line: string) => void): Promise<ReplicaSet> {
  say(`creating a primary "shop" archiving WAL, and a replica "shop-delayed" replaying it ${DEMO_DELAY} behind`);
  const set = await createDelayedReplicaSet({ dir: join(root, 'shop'), delay: DEMO_DELAY });
  await withSession(set.primaryEndpoint, async (c) => {
    await c.query('CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(12,2) NOT NULL)');
    await c.query(
      `INSERT INTO orders SELECT g, 'customer-' || (g % 97), (g * 7 % 1000) / 10.0 FROM generate_series(1, 10000) g`,
    );
  });
  say(`waiting for the delayed replica to show the orders table (about ${DEMO_DELAY})`);
  await pollUntil(
    async () => {
      const n = await count(set.replicaEndpoint).catch(() => 0);
      return n === 10000 ? { done: undefined } : { waiting: 'not yet' };
    },
    { intervalMs: 500, timeoutMs: 300_000, what: 'the delayed replica to replay the set-up' },
  );
  return set;
}

async function count(endpoint: PgEndpoint): Promise<number> {
  return withSession(endpoint, async (c) => Number((await c.query('SELECT count(*) AS n FROM orders')).rows[0].n));
}

export async function runPitrAct(
  client: Client,
  set: ReplicaSet,
  say: (line: string) => void,
  uiUrl: string,
  namespace: string,
): Promise<void> {
  const from = new Date(Date.now() - 1000).toISOString();
  say("the accident: someone runs DELETE FROM orders WHERE customer = 'customer-42' on the primary…");
  await withSession(set.primaryEndpoint, async (c) => {
    const deleted = await c.query("DELETE FROM orders WHERE customer = 'customer-42'");
    say(`  ${deleted.rowCount} rows deleted; the application keeps writing (10 new orders)`);
    await c.query("INSERT INTO orders SELECT g, 'late-' || g, 1 FROM generate_series(20001, 20010) g");
  });
  say(
    `primary now has ${await count(set.primaryEndpoint)} orders; the delayed replica still has ${await count(set.replicaEndpoint)}`,
  );
  // The segment with the DELETE is switched now, not left to archive_timeout: the current insert
  // position can be the start of a segment that stays empty (archive_timeout does not switch an
  // empty one), and waiting for it to be archived would outlast the replica's delay. Everything
  // before what pg_switch_wal returns is archived once the archive ends at or after it.
  const lsn = await withSession(
    set.primaryEndpoint,
    async (c) => (await c.query('SELECT pg_switch_wal()::text AS l')).rows[0].l as string,
  );
  await pollUntil(
    async () => {
      const end = archiveEndLsn(set.archiveDir);
      return end && compareLsn(end, lsn) >= 0 ? { done: undefined } : { waiting: 'archiving' };
    },
    { intervalMs: 200, timeoutMs: 60_000, what: 'the WAL archive to hold the DELETE' },
  );

  const to = new Date(Date.now() + 1000).toISOString();
  say(`locateIncidentWorkflow: which transactions deleted rows between ${from} and ${to}?`);
  const incidents = (await client.workflow.execute('locateIncidentWorkflow', {
    taskQueue: 'pg-ops',
    workflowId: `demo-locate-${Date.now()}`,
    args: [{ cluster: 'shop-delayed', from, to, table: 'orders' }],
  })) as Array<{ xid: string; commitTime: string; commitLsn: string; rowsDeleted: number }>;
  for (const i of incidents)
    say(`  xid ${i.xid} committed ${i.commitTime} at ${i.commitLsn}: ${i.rowsDeleted} rows deleted from orders`);
  const bad = incidents[0];
  if (!bad) throw new Error('the incident was not found in the archive');

  const workflowId = `demo-pitr-${Date.now()}`;
  say(
    `delayedReplicaPitrWorkflow: pause the replica, replay to just before xid ${bad.xid}, export orders, insert what the primary lacks, return to delay`,
  );
  const handle = await client.workflow.start('delayedReplicaPitrWorkflow', {
    taskQueue: 'pg-ops',
    workflowId,
    args: [
      {
        cluster: 'shop-delayed',
        target: { xid: bad.xid },
        then: 'export',
        export: { tables: ['orders'], insertMissing: true },
      },
    ],
  });
  const stopWatching = watchProgress(handle, say);
  const result = (await handle.result().finally(stopWatching)) as DelayedReplicaPitrResult;
  say(`replay paused ${result.pause.latencyMs} ms after the workflow started; stopped at ${result.reached.replayLsn}`);
  say(`exported ${result.exported?.[0]?.rows} rows as of the target to ${result.exported?.[0]?.file}`);
  say(`inserted ${result.inserted?.[0]?.inserted} missing rows into the primary in one transaction`);
  say(
    `primary now has ${await count(set.primaryEndpoint)} orders (10000 before the accident + 10 new ones); replica back to a ${result.returnedToDelay?.delay} delay`,
  );
  say(`see the recovery in the Temporal UI: ${uiUrl}/namespaces/${namespace}/workflows/${workflowId}`);
}
