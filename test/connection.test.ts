import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Connection } from '@temporalio/client';
import { testEnv, scratchDir } from './harness/testEnv';
import { workerProcess, type WorkerProcess } from './harness/workers';
import { createTestPki, startTlsFront, type TestPki, type TlsFront } from './harness/tlsFront';
import { resolveTemporalConnection } from '../src/config/temporalConnection';
import { PgOpsClient } from '../src/client';
import { UnknownClusterError } from '../src/client/errors';

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** The CLI as a user runs it, with only the environment given (no TEMPORAL_* from the test run). */
function pgops(env: Record<string, string>, ...args: string[]): Promise<Ran> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TEMPORAL_')));
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', resolve(__dirname, '../src/cli/main.ts'), ...args], {
      env: { ...clean, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => done({ code: code ?? -1, stdout, stderr }));
  });
}

describe('the Temporal connection, read like every Temporal tool (@temporalio/envconfig)', () => {
  let dir: string;
  let pki: TestPki;
  let catalogPath: string;
  const taskQueue = `pgops-connection-${Date.now()}`;
  before(async function () {
    this.timeout(120_000);
    dir = await scratchDir('connection');
    pki = await createTestPki(dir);
    catalogPath = join(dir, 'pgops.yaml');
    writeFileSync(catalogPath, 'clusters: {}\n');
  });

  it('reads address, namespace and API key from a profile of the config file; the environment and flags win', async () => {
    const env = await testEnv();
    const configFile = join(dir, 'temporal.toml');
    writeFileSync(
      configFile,
      [
        '[profile.default]',
        'address = "127.0.0.1:1"',
        '[profile.ops]',
        `address = "${env.server.address}"`,
        `namespace = "${env.server.namespace}"`,
        'api_key = "ops-key"',
        '[profile.ops.tls]',
        `server_ca_cert_path = "${pki.ca.cert}"`,
        '',
      ].join('\n'),
    );
    const fromProfile = resolveTemporalConnection({
      env: { TEMPORAL_CONFIG_FILE: configFile, TEMPORAL_PROFILE: 'ops' },
    });
    assert.equal(fromProfile.connectionOptions.address, env.server.address);
    assert.equal(fromProfile.namespace, env.server.namespace);
    assert.equal(fromProfile.connectionOptions.apiKey, 'ops-key');
    assert.ok(typeof fromProfile.connectionOptions.tls === 'object', 'TLS with the profile CA');
    const fromDefault = resolveTemporalConnection({ env: { TEMPORAL_CONFIG_FILE: configFile } });
    assert.equal(fromDefault.connectionOptions.address, '127.0.0.1:1');
    const overridden = resolveTemporalConnection({
      env: { TEMPORAL_CONFIG_FILE: configFile, TEMPORAL_PROFILE: 'ops', TEMPORAL_NAMESPACE: 'other' },
      address: 'flag:7233',
    });
    assert.equal(overridden.connectionOptions.address, 'flag:7233');
    assert.equal(overridden.namespace, 'other');
    const nothing = resolveTemporalConnection({ env: { TEMPORAL_CONFIG_FILE: join(dir, 'missing.toml') } });
    assert.deepEqual(nothing, { connectionOptions: { address: '127.0.0.1:7233' }, namespace: 'default' });
  });

  it('the CLI finds the server through --profile alone', async function () {
    this.timeout(60_000);
    const env = await testEnv();
    const configFile = join(dir, 'cli.toml');
    writeFileSync(
      configFile,
      `[profile.default]\naddress = "127.0.0.1:1"\n[profile.lab]\naddress = "${env.server.address}"\nnamespace = "${env.server.namespace}"\n`,
    );
    const ran = await pgops({ TEMPORAL_CONFIG_FILE: configFile }, '--profile', 'lab', 'status', 'nowhere', '--json');
    assert.equal(ran.code, 0, ran.stderr);
    assert.deepEqual(JSON.parse(ran.stdout), []);
    const byDefault = await pgops({ TEMPORAL_CONFIG_FILE: configFile }, 'status', 'nowhere', '--json');
    assert.equal(byDefault.code, 5, 'the default profile points at a closed port: Temporal unreachable');
  });

  describe('through a TLS front (the dev server has no TLS of its own)', () => {
    let mtls: TlsFront;
    let serverTls: TlsFront;
    let worker: WorkerProcess | undefined;
    before(async () => {
      const env = await testEnv();
      mtls = await startTlsFront({ upstream: env.server.address, pki, requireClientCert: true });
      serverTls = await startTlsFront({ upstream: env.server.address, pki, requireClientCert: false });
    });
    after(async () => {
      await worker?.kill('SIGTERM');
      await mtls?.close();
      await serverTls?.close();
    });

    it('runs the standalone worker, the client and the CLI over mTLS configured by TEMPORAL_TLS_* alone', async function () {
      this.timeout(180_000);
      const env = await testEnv();
      const tlsEnv = {
        TEMPORAL_ADDRESS: mtls.address,
        TEMPORAL_NAMESPACE: env.server.namespace,
        TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.ca.cert,
        TEMPORAL_TLS_CLIENT_CERT_PATH: pki.client.cert,
        TEMPORAL_TLS_CLIENT_KEY_PATH: pki.client.key,
        TEMPORAL_TLS_SERVER_NAME: 'localhost',
      };
      // Without a client certificate the front refuses: what makes the rest a test of mTLS.
      await assert.rejects(
        Connection.connect({
          address: mtls.address,
          tls: { serverRootCACertificate: readFileSync(pki.ca.cert), serverNameOverride: 'localhost' },
          connectTimeout: 3000,
        }),
      );
      const before = mtls.calls();
      worker = await workerProcess(taskQueue, catalogPath, tlsEnv);
      await worker.waitForOutput(/pg-ops worker started/);
      assert.match(worker.output(), /"tls":"mTLS"/);
      // An unknown cluster is refused by the worker's own activity: the worker polled through the front.
      const client = await PgOpsClient.connect({ env: tlsEnv, taskQueue });
      try {
        const op = await client.start('listBackups', { cluster: 'nowhere' });
        await assert.rejects(op.result(), (err: unknown) => err instanceof UnknownClusterError);
      } finally {
        await client.client.connection.close();
      }
      const cli = await pgops({ ...tlsEnv, PGOPS_TASK_QUEUE: taskQueue }, 'backups', 'nowhere');
      assert.equal(cli.code, 4, cli.stderr);
      assert.match(cli.stderr, /unknown cluster "nowhere"/);
      assert.ok(mtls.calls() > before + 3, 'the calls went through the mTLS front');
    });

    it('sends TEMPORAL_API_KEY as a bearer token over TLS', async function () {
      this.timeout(60_000);
      const env = await testEnv();
      const client = await PgOpsClient.connect({
        env: {
          TEMPORAL_ADDRESS: serverTls.address,
          TEMPORAL_NAMESPACE: env.server.namespace,
          TEMPORAL_API_KEY: 'pgops-test-key',
          TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.ca.cert,
          TEMPORAL_TLS_SERVER_NAME: 'localhost',
        },
      });
      try {
        assert.deepEqual(await client.runningOn('nowhere'), []);
      } finally {
        await client.client.connection.close();
      }
      assert.ok(serverTls.authorizations.length > 0, 'calls carried an authorization header');
      assert.ok(serverTls.authorizations.every((a) => a === 'Bearer pgops-test-key'));
    });
  });
});
