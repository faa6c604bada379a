import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { localClusterFixture, type LocalFixture } from './harness/fixtures';
import { refusesConnections } from '../src/drivers/postgres/session';
import { endpointOf } from '../src/dev/localPostgres';

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

describe('the pgops CLI, spawned as a user runs it', () => {
  let fx: LocalFixture;
  let pgops: (...args: string[]) => Promise<Ran>;
  before(async () => {
    fx = await localClusterFixture('cli');
    const env = await testEnv();
    pgops = (...args) =>
      new Promise((done) => {
        const child = spawn(
          process.execPath,
          ['--require', 'tsx/cjs', resolve(__dirname, '../src/cli/main.ts'), ...args],
          {
            env: { ...process.env, TEMPORAL_ADDRESS: env.server.address, PGOPS_TASK_QUEUE: fx.taskQueue },
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.once('exit', (code) => done({ code: code ?? -1, stdout, stderr }));
      });
  });
  after(async () => fx?.teardown());

  it('teaches by example in --help and refuses a bad flag with exit code 2', async () => {
    const help = await pgops('--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Examples:[\s\S]*pgops backup orders/);
    assert.match(help.stdout, /Exit codes: 0 done/);
    const bad = await pgops('stop', fx.name, '--frobnicate');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown option '--frobnicate'/);
  });

  it('backs up, lists, holds, shows status, resumes, and maps refusals to exit codes', async function () {
    this.timeout(180_000);
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const backup = await pgops('backup', fx.name, '--offline', '--json');
      assert.equal(backup.code, 0, backup.stderr);
      const taken = JSON.parse(backup.stdout) as { workflowId: string; result: { backup: { id: string } } };
      assert.match(taken.workflowId, new RegExp(`^pgops/${fx.name}/backup/`));
      const listed = await pgops('backups', fx.name);
      assert.equal(listed.code, 0);
      assert.match(listed.stdout, new RegExp(`${taken.result.backup.id}\\s+backup\\s+offline`));

      const stop = await pgops('stop', fx.name, '--hold', '--no-wait', '--json');
      assert.equal(stop.code, 0, stop.stderr);
      const { workflowId } = JSON.parse(stop.stdout) as { workflowId: string };
      for (let i = 0; i < 100 && !(await refusesConnections(endpointOf(fx.cluster))); i++)
        await new Promise((r) => setTimeout(r, 200));
      const status = await pgops('status', fx.name);
      assert.equal(status.code, 0);
      assert.match(status.stdout, new RegExp(`${workflowId}\\s+plannedStopWorkflow\\s+hold`));
      const busy = await pgops('start', fx.name);
      assert.equal(busy.code, 3, busy.stderr);
      assert.match(busy.stderr, /is busy/);
      assert.equal((await pgops('resume', workflowId)).code, 0);

      const unknown = await pgops('start', 'nowhere');
      assert.equal(unknown.code, 4);
      assert.match(unknown.stderr, /unknown cluster "nowhere"/);
      const invalid = await pgops('stop', 'Bad_Name');
      assert.equal(invalid.code, 2);
      assert.match(invalid.stderr, /invalid input/);
      // Free text goes to the workflow as typed, and its checks refuse control characters.
      const escaped = await pgops('backup', fx.name, '--label', 'nightly\u001b[2J');
      assert.equal(escaped.code, 2, escaped.stderr);
      assert.match(escaped.stderr, /label holds an escape character \(U\+001B\)/);
      const twoLines = await pgops('stop', fx.name, '--reason', 'disk swap\nby ops');
      assert.equal(twoLines.code, 2, twoLines.stderr);
      assert.match(twoLines.stderr, /reason holds a line break/);
    });
    assert.equal(await refusesConnections(endpointOf(fx.cluster)), false, 'resumed: running again');
  });

  it('says so when Temporal cannot be reached (exit code 5)', async function () {
    this.timeout(60_000);
    const down = await pgops('--address', '127.0.0.1:1', 'start', fx.name);
    assert.equal(down.code, 5, down.stderr);
    assert.match(down.stderr, /cannot reach Temporal/);
  });

  it('schedules backups: create, trigger one now, see the backup, pause, delete', async function () {
    this.timeout(180_000);
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const created = await pgops(
        'schedule',
        'create',
        fx.name,
        '--cron',
        '0 3 * * *',
        '--offline',
        '--keep-count',
        '5',
      );
      assert.equal(created.code, 0, created.stderr);
      const badJitter = await pgops('schedule', 'create', 'other', '--cron', '* * * * *', '--jitter', 'soon');
      assert.equal(badJitter.code, 2, 'a usage error');
      assert.match(badJitter.stderr, /jitter "soon" is not a duration/);
      const before = JSON.parse((await pgops('backups', fx.name, '--json')).stdout).result.backups.length as number;
      assert.equal((await pgops('schedule', 'trigger', fx.name)).code, 0);
      let backups = before;
      for (let i = 0; i < 150 && backups === before; i++) {
        await new Promise((r) => setTimeout(r, 200));
        const d = JSON.parse((await pgops('schedule', 'describe', fx.name, '--json')).stdout) as {
          recentActions: unknown[];
        };
        if (d.recentActions.length === 0) continue;
        backups = JSON.parse((await pgops('backups', fx.name, '--json')).stdout).result.backups.length as number;
      }
      assert.equal(backups, before + 1, 'the triggered schedule took a backup');
      assert.equal((await pgops('schedule', 'pause', fx.name)).code, 0);
      const listed = await pgops('schedule', 'list');
      assert.match(listed.stdout, new RegExp(`pgops-backup/${fx.name}\\s+0 3 \\* \\* \\*\\s+PAUSED`));
      assert.equal((await pgops('schedule', 'delete', fx.name)).code, 0);
      const gone = await pgops('schedule', 'describe', fx.name);
      assert.notEqual(gone.code, 0);
    });
  });
});
