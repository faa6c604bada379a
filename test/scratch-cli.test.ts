// The CLI of the scratch operations (`pgops verify`, `pgops recover`, `pgops scratch open|list|gc`)
// and of the scheduled drills (`pgops schedule … --verify`), run in this process. The first suite
// needs no server: the client's connect is replaced by one that records what would be started, and
// each input is also checked by its workflow's own parser. The second creates schedules on the test
// Temporal server and reads them back.
import assert from 'node:assert/strict';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { testEnv } from './harness/testEnv';
import { main } from '../src/cli/main';
import { PgOpsClient } from '../src/client/pgOpsClient';
import { OPERATION_WORKFLOWS } from '../src/workflows/operationWorkflows';
import type { OperationName } from '../src/contract/operations/registry';

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** `pgops <args>` in this process, its output captured. */
async function pgops(...args: string[]): Promise<Ran> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  const write = process.stderr.write;
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  console.error = (...a: unknown[]) => void err.push(a.join(' '));
  process.stderr.write = ((chunk: string | Uint8Array) => err.push(String(chunk)) > 0) as typeof write;
  try {
    const code = await main(['node', 'pgops', ...args]);
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    Object.assign(console, { log, error });
    process.stderr.write = write;
  }
}

describe('the scratch commands build the workflow input (no server)', () => {
  const started: Array<{ operation: OperationName; input: unknown }> = [];
  const realConnect = PgOpsClient.connect.bind(PgOpsClient);
  let connects = 0;
  before(() => {
    const fake = {
      client: { options: { namespace: 'default' } },
      async start(operation: OperationName, input: unknown) {
        started.push({ operation, input: JSON.parse(JSON.stringify(input)) });
        return { workflowId: `pgops/test/${operation}/now` };
      },
    };
    PgOpsClient.connect = (async () => {
      connects++;
      return fake as unknown as PgOpsClient;
    }) as typeof PgOpsClient.connect;
  });
  after(() => {
    PgOpsClient.connect = realConnect;
  });

  /** Runs the command with --no-wait --json; returns the one operation it started, checked by its workflow's parser. */
  async function startedBy(...args: string[]): Promise<{ operation: OperationName; input: unknown }> {
    started.length = 0;
    const ran = await pgops(...args, '--no-wait', '--json');
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(started.length, 1);
    const [one] = started;
    assert.deepEqual(JSON.parse(ran.stdout).workflowId, `pgops/test/${one!.operation}/now`);
    OPERATION_WORKFLOWS[one!.operation].parseInput(one!.input);
    return one!;
  }

  it('pgops verify: the backup, the checks turned off, --to-end and --max-duration', async () => {
    assert.deepEqual(await startedBy('verify', 'shop'), {
      operation: 'verifyBackup',
      input: { cluster: 'shop', checks: { amcheck: true, checksums: true, archive: true, replayToEnd: false } },
    });
    assert.deepEqual(
      await startedBy(
        'verify',
        'shop',
        '--backup',
        '20261122T002520Z-1a2b3c4d',
        '--to-end',
        '--no-amcheck',
        '--no-checksums',
        '--no-archive-check',
        '--max-duration',
        '2h',
      ),
      {
        operation: 'verifyBackup',
        input: {
          cluster: 'shop',
          backup: '20261122T002520Z-1a2b3c4d',
          checks: { amcheck: false, checksums: false, archive: false, replayToEnd: true },
          maxDuration: '2h',
        },
      },
    );
  });

  it('pgops recover: rows to an xid with the insert, a database from an incident window restored as a new name', async () => {
    assert.deepEqual(
      await startedBy(
        'recover',
        'shop',
        '--xid',
        '73412',
        '--tables',
        'orders, sales.items',
        '--insert-missing',
        '--export-dir',
        'incident-4711',
        '--wait-for-lock',
      ),
      {
        operation: 'recoverRows',
        input: {
          cluster: 'shop',
          target: { xid: '73412' },
          tables: ['orders', 'sales.items'],
          insertMissing: true,
          exportDir: 'incident-4711',
          waitForLock: true,
        },
      },
    );
    assert.deepEqual(
      await startedBy(
        'recover',
        'shop',
        '--from',
        '2026-11-22T10:00:00Z',
        '--to',
        '2026-11-22T10:30:00Z',
        '--table',
        'orders',
        '--databases',
        'appdb',
        '--restore-as',
        'appdb_back',
        '--inclusive',
        '--backup',
        'latest',
      ),
      {
        operation: 'recoverRows',
        input: {
          cluster: 'shop',
          target: { incident: { from: '2026-11-22T10:00:00Z', to: '2026-11-22T10:30:00Z', table: 'orders' } },
          inclusive: true,
          databases: ['appdb'],
          restoreAs: 'appdb_back',
          backup: 'latest',
        },
      },
    );
    assert.deepEqual(
      (await startedBy('recover', 'shop', '--time', '2026-11-22T10:15:00+01:00', '--tables', 'orders')).input,
      {
        cluster: 'shop',
        target: { time: '2026-11-22T10:15:00+01:00' },
        tables: ['orders'],
      },
    );
  });

  it('pgops recover refuses a missing or a double target with a usage error (exit 2), before connecting', async () => {
    started.length = 0;
    connects = 0;
    const none = await pgops('recover', 'shop', '--tables', 'orders');
    assert.equal(none.code, 2);
    assert.match(
      none.stderr,
      /pgops: give exactly one target: --xid, --time, --lsn, --name, or an incident window --from … --to …/,
    );
    const two = await pgops('recover', 'shop', '--xid', '1', '--lsn', '0/3000060', '--tables', 'orders');
    assert.equal(two.code, 2);
    assert.match(two.stderr, /give exactly one target/);
    assert.equal(connects, 0, 'refused before connecting to Temporal');
    assert.deepEqual(started, []);
  });

  it('pgops scratch open|list|gc', async () => {
    assert.deepEqual(await startedBy('scratch', 'open', 'shop', '--time', '2026-11-22T10:15:00Z', '--ttl', '2h'), {
      operation: 'openScratch',
      input: { cluster: 'shop', asOf: { time: '2026-11-22T10:15:00Z' }, ttl: '2h' },
    });
    assert.deepEqual((await startedBy('scratch', 'open', 'shop', '--backup', 'latest', '--ttl', '30m')).input, {
      cluster: 'shop',
      asOf: { backup: 'latest' },
      ttl: '30m',
    });
    assert.deepEqual(await startedBy('scratch', 'list'), { operation: 'listScratch', input: {} });
    assert.deepEqual(await startedBy('scratch', 'list', 'shop'), {
      operation: 'listScratch',
      input: { cluster: 'shop' },
    });
    assert.deepEqual(await startedBy('scratch', 'gc', '--all'), { operation: 'scratchGc', input: { all: true } });
    assert.deepEqual(await startedBy('scratch', 'gc', 'shop'), { operation: 'scratchGc', input: { cluster: 'shop' } });
    const noMoment = await pgops('scratch', 'open', 'shop', '--ttl', '2h');
    assert.equal(noMoment.code, 2);
    assert.match(noMoment.stderr, /give exactly one of --time, --lsn, --xid or --backup/);
    const noTtl = await pgops('scratch', 'open', 'shop', '--backup', 'latest');
    assert.equal(noTtl.code, 2);
    assert.match(noTtl.stderr, /required option '--ttl <duration>' not specified/);
  });
});

describe('pgops schedule … --verify: restore drill schedules beside the backup schedules (test server)', () => {
  const cluster = `drillcli-${Math.random().toString(36).slice(2, 8)}`;
  const taskQueue = `pgops-drill-cli-${Date.now()}`;
  let server: string[] = [];
  /** `pgops schedule <args>` against the test server, on this suite's task queue. */
  const schedule = (...args: string[]) => pgops(...server, 'schedule', ...args);
  before(async () => {
    const env = await testEnv();
    server = ['--address', env.server.address, '--namespace', env.server.namespace, '--task-queue', taskQueue];
  });
  after(async () => {
    await schedule('delete', cluster, '--verify');
    await schedule('delete', cluster);
  });

  it('creates pgops-verify/<cluster>, lists both kinds, and describes, pauses and deletes the one asked for', async function () {
    this.timeout(60_000);
    const { client } = await testEnv();
    const created = await schedule(
      'create',
      cluster,
      '--verify',
      '--cron',
      '30 4 * * *',
      '--to-end',
      '--max-duration',
      '3h',
    );
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.stdout, `schedule pgops-verify/${cluster} created`);
    const d = await client.schedule.getHandle(`pgops-verify/${cluster}`).describe();
    assert.equal(d.action.type === 'startWorkflow' && d.action.workflowType, 'verifyBackupWorkflow');
    assert.equal(d.action.type === 'startWorkflow' && d.action.taskQueue, taskQueue);
    assert.deepEqual(d.action.type === 'startWorkflow' && d.action.args, [
      { cluster, backup: 'latest', checks: { replayToEnd: true }, maxDuration: '3h' },
    ]);
    assert.equal(d.policies.overlap, ScheduleOverlapPolicy.SKIP);
    assert.equal(d.policies.pauseOnFailure, true);
    assert.equal((await schedule('create', cluster, '--cron', '0 3 * * *')).code, 0);

    const listed = await schedule('list');
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`^backup\\s+pgops-backup/${cluster}\\s+0 3 \\* \\* \\*\\s+active`, 'm'));
    assert.match(listed.stdout, new RegExp(`^verify\\s+pgops-verify/${cluster}\\s+30 4 \\* \\* \\*\\s+active`, 'm'));

    assert.equal((await schedule('pause', cluster, '--verify')).code, 0);
    const drill = JSON.parse((await schedule('describe', cluster, '--verify', '--json')).stdout);
    assert.deepEqual([drill.kind, drill.scheduleId, drill.paused], ['verify', `pgops-verify/${cluster}`, true]);
    const backup = JSON.parse((await schedule('describe', cluster, '--json')).stdout);
    assert.deepEqual([backup.kind, backup.paused], ['backup', false], 'the backup schedule is left alone');

    assert.equal((await schedule('delete', cluster, '--verify')).code, 0);
    assert.notEqual((await schedule('describe', cluster, '--verify')).code, 0);
    assert.equal((await schedule('describe', cluster)).code, 0, 'the backup schedule is still there');
  });

  it('refuses options of the other kind with a usage error (exit 2)', async () => {
    const keep = await schedule('create', cluster, '--verify', '--cron', '0 5 * * *', '--keep-count', '3');
    assert.equal(keep.code, 2);
    assert.match(keep.stderr, /--offline, --keep-count and --keep-age are for backups, not --verify/);
    const toEnd = await schedule('create', cluster, '--cron', '0 5 * * *', '--to-end');
    assert.equal(toEnd.code, 2);
    assert.match(toEnd.stderr, /--to-end and --max-duration need --verify/);
  });
});
