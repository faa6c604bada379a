// `npm run demo`: the embedded default, end to end on real parts. Starts the Temporal dev server
// (temporal-dev.yml), a local PostgreSQL cluster "demo" with sample data, and a pg-ops worker;
// runs a planned stop with hold, shows that the database refuses connections, resumes it, and
// shows the data intact. Then the delayed-replica PITR (act 2, demoPitr.ts), a backup and a rollback
// restore (act 3, demoBackup.ts), and a restore drill and rows back from a backup on a scratch server
// (act 4, demoScratch.ts). Everything lives under ./.pgops; the UI address is printed at the end.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { stringify } from 'yaml';
import { startTemporalDevServer, readDevServerSpec } from '../src/dev/temporalDevServer';
import { freePort } from '../src/dev/ports';
import {
  endpointOf,
  initLocalCluster,
  localClusterIn,
  localTargetOf,
  pgOsUser,
  startLocalCluster,
  stopLocalClusterIfRunning,
} from '../src/dev/localPostgres';
import { withSession } from '../src/drivers/postgres/session';
import { LocalClusterDriver } from '../src/drivers/cluster/local';
import { createPgOpsWorker, ensureSearchAttributes, installRuntimeLogger } from '../src/worker';
import { progressQuery, resumeSignal } from '../src/contract/definitions';
import type { PlannedStopResult } from '../src/workflows/plannedStop';
import { createShop, pitrCatalogEntries, runPitrAct } from './demoPitr';
import { runBackupAct } from './demoBackup';
import { runScratchAct } from './demoScratch';
import { archivingSettings, prepareArchiveDir } from '../src/dev/delayedReplicaSet';

const ROOT = resolve(process.env.PGOPS_DEMO_DIR ?? resolve(__dirname, '..', '.pgops'));
const say = (line: string) => console.log(`\x1b[1m[demo]\x1b[0m ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function portOr(preferred: number): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((ok) => {
    const s = createServer()
      .once('error', () => void freePort().then(ok))
      .listen(preferred, '127.0.0.1', () => s.close(() => ok(preferred)));
  });
}

async function tryConnect(endpoint: ReturnType<typeof endpointOf>): Promise<string> {
  try {
    await withSession({ ...endpoint, connectTimeoutMs: 2000 }, (c) => c.query('SELECT 1'));
    return 'connected (unexpected!)';
  } catch (err) {
    return `refused: ${(err as Error).message}`;
  }
}

async function main(): Promise<void> {
  mkdirSync(ROOT, { recursive: true });
  installRuntimeLogger('WARN');
  const spec = readDevServerSpec();
  say('starting the Temporal dev server from temporal-dev.yml');
  const server = await startTemporalDevServer({
    grpcPort: await portOr(spec.grpcPort),
    uiPort: await portOr(spec.uiPort),
    dataDir: join(ROOT, 'temporal'),
    log: say,
  });
  const cleanups: Array<() => Promise<unknown>> = [() => server.stop()];
  let cleaned = false;
  const cleanUp = async () => {
    if (cleaned) return;
    cleaned = true;
    for (const cleanup of cleanups.reverse())
      await cleanup().catch((err: unknown) => say(`cleanup: ${(err as Error).message}`));
  };
  // A late gRPC timer of a closed client ("Channel has been shut down") must not kill the demo
  // while it waits for Enter, and no error may leave the servers running.
  process.on('uncaughtException', (err) => {
    if (/Channel has been shut down/.test(err.message)) return;
    console.error(`[demo] failed: ${err.stack ?? err}`);
    void cleanUp().finally(() => process.exit(1));
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
    process.once(signal, () => {
      say(`${signal}: stopping the servers`);
      void cleanUp().finally(() => process.exit(130));
    });
  try {
    say(`Temporal at ${server.address}, UI at ${server.uiUrl}`);
    await ensureSearchAttributes(server.address, server.namespace);

    say('creating the local PostgreSQL cluster "demo" with sample data, archiving its WAL');
    const demoDir = join(ROOT, 'demo');
    const archiveDir = join(demoDir, 'archive');
    if (!existsSync(archiveDir)) {
      // A demo cluster from an older version (no WAL archive): make it again.
      await stopLocalClusterIfRunning(localClusterIn(demoDir, 0));
      rmSync(demoDir, { recursive: true, force: true });
    }
    mkdirSync(demoDir, { recursive: true });
    await prepareArchiveDir(archiveDir, pgOsUser());
    const cluster = await initLocalCluster({
      dir: demoDir,
      port: await portOr(55432),
      settings: archivingSettings(archiveDir),
    });
    if (new LocalClusterDriver(localTargetOf(cluster, 300)).livePostmasterPid() === undefined) {
      await startLocalCluster(cluster);
    }
    cleanups.push(() => stopLocalClusterIfRunning(cluster));
    const endpoint = endpointOf(cluster);
    await withSession(endpoint, async (c) => {
      await c.query(
        'CREATE TABLE IF NOT EXISTS orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(12,2) NOT NULL)',
      );
      await c.query(
        `INSERT INTO orders SELECT g, 'customer-' || (g % 97), (g * 7 % 1000) / 10.0 FROM generate_series(1, 10000) g ON CONFLICT DO NOTHING`,
      );
    });
    const fingerprint = () =>
      withSession(
        endpoint,
        async (c) =>
          (
            await c.query(
              "SELECT count(*) AS n, md5(string_agg(id || ':' || customer || ':' || amount, ',' ORDER BY id)) AS h FROM orders",
            )
          ).rows[0] as { n: string; h: string },
      );
    const before = await fingerprint();
    say(`demo database on 127.0.0.1:${cluster.port}: ${before.n} orders, checksum ${before.h}`);

    rmSync(join(ROOT, 'pitr'), { recursive: true, force: true }); // a fresh shop every run
    const shop = await createShop(join(ROOT, 'pitr'), say);
    cleanups.push(() => shop.stop());
    const catalogPath = join(ROOT, 'pgops.yaml');
    writeFileSync(
      catalogPath,
      stringify({
        clusters: {
          demo: {
            target: localTargetOf(cluster),
            storage: { kind: 'local' },
            walArchive: archiveDir,
            exportDir: join(ROOT, 'exports'),
          },
          ...pitrCatalogEntries(shop, join(ROOT, 'exports')),
        },
      }),
    );
    say(`worker catalog: ${catalogPath}`);

    const nativeConnection = await NativeConnection.connect({ address: server.address });
    const worker = await createPgOpsWorker({ connection: nativeConnection, namespace: server.namespace, catalogPath });
    const connection = await Connection.connect({ address: server.address });
    const client = new Client({ connection, namespace: server.namespace });
    const workflowId = `demo-planned-stop-${new Date().toISOString().replace(/[:.]/g, '-')}`;

    await worker.runUntil(async () => {
      say(`starting plannedStopWorkflow ${workflowId} with holdUntilResumed (task queue pg-ops)`);
      const handle = await client.workflow.start('plannedStopWorkflow', {
        taskQueue: 'pg-ops',
        workflowId,
        args: [{ cluster: 'demo', reason: 'demo maintenance window', holdUntilResumed: true, maxHold: '10m' }],
      });
      for (let step = ''; step !== 'hold'; await sleep(200)) {
        const progress = await handle.query(progressQuery);
        if (progress.step !== step) say(`  progress: ${progress.step}: ${progress.detail}`);
        step = progress.step;
      }
      say(`the database is stopped and held. Connecting now: ${await tryConnect(endpoint)}`);
      say(`data directory kept at ${cluster.pgdata}: ${existsSync(join(cluster.pgdata, 'PG_VERSION')) ? 'yes' : 'NO'}`);
      say('sending the "resume" signal (from the UI: the workflow page, "Send a Signal", name "resume")');
      await handle.signal(resumeSignal, { by: 'npm run demo' });
      const stopped = (await handle.result()) as PlannedStopResult;
      const after = await fingerprint();
      say(
        `resumed by ${stopped.hold?.resumedBy} after ${stopped.hold?.heldMs} ms held; ready again in ${stopped.restarted?.msToReady} ms`,
      );
      say(
        `after the restart: ${after.n} orders, checksum ${after.h}: ${after.h === before.h && after.n === before.n ? 'data intact' : 'DATA CHANGED'}`,
      );
      if (after.h !== before.h) throw new Error('the data changed across the planned stop');
      say(`see the run in the Temporal UI: ${server.uiUrl}/namespaces/${server.namespace}/workflows/${workflowId}`);

      say('— act 2: an accidental DELETE, recovered from the delayed replica —');
      await runPitrAct(client, shop, say, server.uiUrl, server.namespace);

      say('— act 3: a snapshot backup, damaged data, and a rollback restore to just before the damage —');
      await runBackupAct(client, endpoint, say, server.uiUrl, server.namespace);

      say('— act 4: the nightly restore drill, then deleted rows back from the backup while the application writes —');
      await runScratchAct(client, endpoint, say, server.uiUrl, server.namespace);
    });
    await nativeConnection.close();
    await connection.close();

    if (process.stdin.isTTY && !process.env.CI) {
      const rl = createInterface({ input: process.stdin, output: process.stdout });
      await rl.question(
        'Press Enter to stop the Temporal server and the demo database (history is kept in .pgops/temporal)... ',
      );
      rl.close();
    }
  } finally {
    await cleanUp();
  }
  say('demo finished');
}

main().catch((err: unknown) => {
  console.error(`[demo] failed: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
