// The SQLSTATE classifier against errors a real PostgreSQL 15 sends: one case per class.
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'pg';
import {
  endpointOf,
  initLocalCluster,
  localTargetOf,
  startLocalCluster,
  stopLocalClusterIfRunning,
  type LocalCluster,
} from '../src/dev/localPostgres';
import { freePort } from '../src/dev/ports';
import { nonRetryablePostgresError, postgresErrorOf, PostgresRefusedError } from '../src/drivers/postgres/errorClass';
import { startupFailure } from '../src/drivers/postgres/restore/startupFailure';
import { LocalClusterDriver } from '../src/drivers/cluster/local';
import { runCommand } from '../src/drivers/exec';
import { openSession, withSession, type PgEndpoint } from '../src/drivers/postgres/session';
import { openBackupSession } from '../src/drivers/postgres/backupMode';

/** A PostgreSQL ErrorResponse message (protocol 3.0), severity FATAL. */
function errorResponse(sqlstate: string, message: string): Buffer {
  const fields = Buffer.from(['SFATAL', 'VFATAL', `C${sqlstate}`, `M${message}`].map((f) => `${f}\0`).join('') + '\0');
  const header = Buffer.alloc(5);
  header.write('E', 0);
  header.writeInt32BE(fields.length + 4, 1);
  return Buffer.concat([header, fields]);
}

/** What `fn` threw; fails the test if it threw nothing. */
async function thrown(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  return assert.fail('expected an error');
}

describe('PostgreSQL errors are classified by SQLSTATE class', () => {
  let dir: string;
  let cluster: LocalCluster;
  let endpoint: PgEndpoint;
  const sql = <T>(fn: (c: Client) => Promise<T>) => withSession(endpoint, fn);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pgops-errclass-'));
    chmodSync(dir, 0o755);
    cluster = await initLocalCluster({ dir, port: await freePort() });
    await startLocalCluster(cluster);
    endpoint = endpointOf(cluster);
    await sql(async (c) => {
      await c.query('CREATE TABLE accounts (id int PRIMARY KEY, balance int)');
      await c.query('INSERT INTO accounts VALUES (1, 100)');
      await c.query('CREATE ROLE plain LOGIN');
      await c.query('CREATE ROLE full_up LOGIN CONNECTION LIMIT 0');
    });
  });
  after(async () => {
    if (cluster) await stopLocalClusterIfRunning(cluster);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The classifier's verdict on a real error, with its SQLSTATE checked first. */
  function refusal(err: unknown, sqlstate: RegExp) {
    assert.match(postgresErrorOf(err)?.code ?? String(err), sqlstate);
    return nonRetryablePostgresError(err);
  }

  it('refuses a data exception (22): a NUL byte in a backup label, the server message at the top', async () => {
    const session = await openBackupSession(endpoint);
    try {
      const err = await thrown(() => session.start('nightly\u0000'));
      const refused = refusal(err, /^22021$/);
      assert.ok(refused, 'a data exception must not be retried');
      assert.match(refused.message, /^PostgreSQL refused: invalid byte sequence for encoding "UTF8": 0x00/);
      assert.match(refused.message, /SQLSTATE 22021, data exception.*Retrying cannot fix this/);
      assert.equal(refused.authorization, false);
    } finally {
      await session.close();
    }
  });

  it('refuses a syntax or access rule violation (42): a missing table, a missing privilege', async () => {
    const missing = refusal(await thrown(() => sql((c) => c.query('SELECT * FROM no_such_table'))), /^42P01$/);
    assert.match(missing?.message ?? '', /relation "no_such_table" does not exist \(SQLSTATE 42P01, syntax error/);
    const denied = refusal(
      await thrown(() => withSession({ ...endpoint, user: 'plain' }, (c) => c.query("SELECT pg_backup_start('x')"))),
      /^42501$/,
    );
    assert.match(denied?.message ?? '', /permission denied for function pg_backup_start.*grant it/);
  });

  it('refuses an invalid authorization (28) as a refused login: an unknown role', async () => {
    const refused = refusal(
      await thrown(() => withSession({ ...endpoint, user: 'nobody_here' }, (c) => c.query('SELECT 1'))),
      /^28000$/,
    );
    assert.ok(refused);
    assert.equal(refused.authorization, true);
    assert.match(refused.message, /role "nobody_here" does not exist.*postgres\.user/);
  });

  it('refuses a feature not supported (0A): FOR UPDATE with an aggregate', async () => {
    const refused = refusal(
      await thrown(() => sql((c) => c.query('SELECT count(*) FROM accounts FOR UPDATE'))),
      /^0A000$/,
    );
    assert.match(refused?.message ?? '', /FOR UPDATE is not allowed with aggregate functions.*feature not supported/);
  });

  it('retries a connection failure (08): a closed port, and a server that answers 08006', async () => {
    const closedPort = await freePort();
    const closed = await thrown(() =>
      withSession({ ...endpoint, port: closedPort, connectTimeoutMs: 2000 }, (c) => c.query('SELECT 1')),
    );
    assert.match(String(closed), /ECONNREFUSED/);
    assert.equal(postgresErrorOf(closed), undefined, 'a refused TCP connection carries no SQLSTATE');
    assert.equal(nonRetryablePostgresError(closed), undefined);
    // What a proxy in front of PostgreSQL (pgbouncer, a port-forward) sends when it cannot reach
    // the server: an ErrorResponse, FATAL, SQLSTATE 08006, read by pg's own protocol parser.
    const front = createServer((socket) =>
      socket.once('data', () => socket.end(errorResponse('08006', 'server down'))),
    );
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
    try {
      const port = (front.address() as AddressInfo).port;
      const err = await thrown(() => withSession({ ...endpoint, port }, (c) => c.query('SELECT 1')));
      assert.equal(refusal(err, /^08006$/), undefined);
    } finally {
      front.close();
    }
  });

  it('retries operator intervention (57P01, 57014): a terminated session, a cancelled statement', async () => {
    const victim = await openSession(endpoint);
    try {
      const pid = (await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      // The server says why it ends an idle session before it closes it: pg emits that as 'error'.
      const terminated = new Promise<unknown>((r) => victim.once('error', r));
      await sql((c) => c.query('SELECT pg_terminate_backend($1)', [pid]));
      assert.equal(refusal(await terminated, /^57P01$/), undefined);
    } finally {
      await victim.end().catch(() => undefined);
    }
    const cancelled = await thrown(() =>
      sql(async (c) => {
        await c.query("SET statement_timeout = '50ms'");
        await c.query('SELECT pg_sleep(2)');
      }),
    );
    assert.equal(refusal(cancelled, /^57014$/), undefined);
  });

  it('retries insufficient resources (53): too many connections for a role', async () => {
    const err = await thrown(() => withSession({ ...endpoint, user: 'full_up' }, (c) => c.query('SELECT 1')));
    assert.equal(refusal(err, /^53300$/), undefined);
  });

  it('retries a serialization failure (40001): a concurrent update under REPEATABLE READ', async () => {
    const first = await openSession(endpoint);
    try {
      await first.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await first.query('SELECT balance FROM accounts WHERE id = 1');
      await sql((c) => c.query('UPDATE accounts SET balance = balance + 1 WHERE id = 1'));
      const err = await thrown(() => first.query('UPDATE accounts SET balance = balance - 1 WHERE id = 1'));
      assert.equal(refusal(err, /^40001$/), undefined);
    } finally {
      await first.end().catch(() => undefined);
    }
  });

  it('finds the server error along a chain of causes, and ignores errors that carry no SQLSTATE', async () => {
    const inner = await thrown(() => sql((c) => c.query('SELECT 1/0')));
    const wrapped = new Error('the step failed', { cause: inner });
    assert.match(nonRetryablePostgresError(wrapped)?.message ?? '', /division by zero \(SQLSTATE 22012/);
    const nodeError = Object.assign(new Error('EPERM'), { code: 'EPERM' });
    assert.equal(nonRetryablePostgresError(nodeError), undefined);
  });

  /** Stops the server and sets it to recover with these settings at its next start. */
  async function recoverAtNextStart(settings: string): Promise<LocalClusterDriver> {
    await stopLocalClusterIfRunning(cluster, 'fast');
    writeFileSync(join(cluster.pgdata, 'recovery.signal'), '');
    writeFileSync(join(cluster.pgdata, 'postgresql.auto.conf'), settings);
    await runCommand('chown', ['-R', `${cluster.osUser}:`, cluster.pgdata]);
    return new LocalClusterDriver(localTargetOf(cluster, 60));
  }

  it('refuses a start that ends with a FATAL of the startup process, retrying 57P03 while it starts', async () => {
    // The archive answers slowly (so the server spends seconds starting up) and has no history
    // file for the timeline asked for: the startup process stops before recovery begins.
    const driver = await recoverAtNextStart("restore_command = 'sleep 2; false'\nrecovery_target_timeline = '99'\n");
    const start = driver.start(1).then(
      () => assert.fail('the start succeeded'),
      (err: unknown) => err,
    );
    let starting: unknown;
    for (let i = 0; i < 100 && starting === undefined; i++) {
      const err = await thrown(() => withSession(endpoint, (c) => c.query('SELECT 1'))).catch(() => undefined);
      if (postgresErrorOf(err)?.code === '57P03') starting = err;
      else await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(starting, 'the server never answered "the database system is starting up"');
    assert.equal(nonRetryablePostgresError(starting), undefined, 'a server starting up is retried');
    const err = await start;
    assert.ok(err instanceof PostgresRefusedError, `the start failed with ${String(err)}`);
    assert.equal(nonRetryablePostgresError(err), err);
    assert.match(
      err.message,
      /^PostgreSQL stopped while starting: recovery target timeline 99 does not exist \(FATAL in the startup process; server log: .*\)\. Retrying cannot fix this/,
    );
  });

  it('reads "recovery ended before configured recovery target was reached" from the log as a refusal', async () => {
    // pg_ctl may report this start a success: the server says "ready" once recovery runs, and the
    // startup process gives up a moment later. The server log tells, once the postmaster is gone.
    const driver = await recoverAtNextStart("restore_command = 'false'\nrecovery_target_xid = '999999'\n");
    await driver.start(1).catch(() => undefined);
    for (let i = 0; i < 100 && (await driver.describe()).running; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal((await driver.describe()).running, false, 'the server did not stop');
    const refused = startupFailure(readFileSync(cluster.logFile, 'utf8').trimEnd().split('\n'), cluster.logFile);
    assert.match(
      refused?.message ?? '(none)',
      /^PostgreSQL stopped while starting: recovery ended before configured recovery target was reached \(FATAL in the startup process.*choose an earlier target/,
    );
  });

  it('reads only the latest run of the server log, and leaves a startup short of resources to retry', () => {
    const failedRun = [
      '2026-12-06 22:03:16.731 UTC [11471] LOG:  starting PostgreSQL 15.20 on x86_64-pc-linux-gnu',
      '2026-12-06 22:03:16.782 UTC [11474] FATAL:  recovery ended before configured recovery target was reached',
      '2026-12-06 22:03:16.798 UTC [11471] LOG:  startup process (PID 11474) exited with exit code 1',
      '2026-12-06 22:03:16.801 UTC [11471] LOG:  shutting down due to startup process failure',
    ];
    assert.match(startupFailure(failedRun, 'log')?.message ?? '', /recovery ended before configured recovery target/);
    const laterRun = [
      '2026-12-06 22:05:00.000 UTC [12000] LOG:  starting PostgreSQL 15.20 on x86_64-pc-linux-gnu',
      '2026-12-06 22:05:00.100 UTC [12000] LOG:  database system is ready to accept connections',
    ];
    assert.equal(startupFailure([...failedRun, ...laterRun], 'log'), undefined);
    const diskFull = failedRun.map((l) =>
      l.replace(
        'recovery ended before configured recovery target was reached',
        'could not write to file "pg_wal/xlogtemp.1": No space left on device',
      ),
    );
    assert.equal(startupFailure(diskFull, 'log'), undefined);
  });
});
