// A Temporal dev server of its own for tests that SIGKILL the server and start it again on the
// same port and the same database file (--db-filename): what a crashed or restarted server does
// to running workflows. The shared server of testEnv is never killed.
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { startTemporalDevServer, type RunningDevServer } from '../../src/dev/temporalDevServer';
import { freePort } from '../../src/dev/ports';
import { ensureSearchAttributes } from '../../src/worker';
import { scratchDir } from './testEnv';

export interface RestartableServer {
  address: string;
  namespace: string;
  /** A client on a fresh connection (one made before a restart may wait out gRPC's reconnect backoff). */
  client(): Promise<Client>;
  /** SIGKILL: no shutdown, as a crash or an OOM kill. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and database file; resolves once it answers. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function restartableServer(label: string): Promise<RestartableServer> {
  const dataDir = join(await scratchDir(label), 'temporal');
  const options = { grpcPort: await freePort(), uiPort: await freePort(), dataDir, headless: true };
  let server: RunningDevServer = await startTemporalDevServer(options);
  await ensureSearchAttributes(server.address, server.namespace);
  const connections: Connection[] = [];
  return {
    address: server.address,
    namespace: server.namespace,
    async client() {
      const connection = await Connection.connect({ address: server.address });
      connections.push(connection);
      return new Client({ connection, namespace: server.namespace });
    },
    async kill() {
      const child = server.process;
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGKILL');
      await gone;
    },
    async restart() {
      server = await startTemporalDevServer(options);
    },
    async stop() {
      for (const c of connections.splice(0)) await c.close().catch(() => undefined);
      await server.stop();
    },
  };
}
