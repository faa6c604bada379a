// `npm run temporal`: the dev server of temporal-dev.yml. Where a Docker daemon answers, it runs
// `docker compose -f temporal-dev.yml up`; elsewhere the same command and flags with a local
// `temporal` binary (installed with go install when missing), state kept in .pgops/temporal.
// Ctrl-C stops it.
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { runCommand } from '../src/drivers/exec';
import { DEV_SERVER_FILE, readDevServerSpec, startTemporalDevServer } from '../src/dev/temporalDevServer';

async function dockerAnswers(): Promise<boolean> {
  try {
    return (await runCommand('docker', ['info', '--format', '{{.ServerVersion}}'], { timeoutMs: 10_000 })).code === 0;
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  if (await dockerAnswers()) {
    console.log(`Docker answers: docker compose -f ${DEV_SERVER_FILE} up`);
    const child = spawn('docker', ['compose', '-f', DEV_SERVER_FILE, 'up'], { stdio: 'inherit' });
    child.on('exit', (code) => process.exit(code ?? 1));
    return;
  }
  const spec = readDevServerSpec();
  console.log('No Docker daemon here: running the same command with the local temporal binary');
  const server = await startTemporalDevServer({
    dataDir: join(resolve(__dirname, '..'), '.pgops', 'temporal'),
    log: console.log,
  });
  console.log(
    `Temporal dev server: gRPC ${server.address}, UI ${server.uiUrl}, namespace ${spec.namespace}; search attributes PgCluster, PgOperation. Ctrl-C stops it.`,
  );
  const stop = () => void server.stop().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  server.process.on('exit', (code) => process.exit(code ?? 1));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
