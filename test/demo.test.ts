import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { scratchDir } from './harness/testEnv';
import { processAlive } from '../src/drivers/cluster/local';

describe('npm run demo, on a pseudo-terminal as a person runs it', () => {
  it('runs all four acts, waits for Enter, then stops every server it started', async function () {
    this.timeout(460_000);
    const dir = await scratchDir('demo');
    // `script` gives the demo a real terminal: stdin is a TTY, so it asks for Enter.
    const child = spawn('script', ['-qfec', 'npx tsx scripts/demo.ts', '/dev/null'], {
      cwd: resolve(__dirname, '..'),
      env: { ...process.env, PGOPS_DEMO_DIR: dir, CI: '' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number>((r) => child.once('exit', (code) => r(code ?? -1)));
    const deadline = Date.now() + 420_000;
    while (!/Press Enter to stop/.test(out)) {
      if (child.exitCode !== null) assert.fail(`the demo exited before asking for Enter:\n${out}`);
      if (Date.now() > deadline) assert.fail(`the demo never asked for Enter:\n${out}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    // Waiting at the prompt must not crash it (a late gRPC timer once did, leaving servers up).
    await new Promise((r) => setTimeout(r, 5000));
    assert.equal(child.exitCode, null, `the demo died at the prompt:\n${out}`);
    const pids = ['demo/data', 'pitr/shop/primary/data', 'pitr/shop/replica/data']
      .map((d) => join(dir, d, 'postmaster.pid'))
      .filter((f) => existsSync(f))
      .map((f) => Number(readFileSync(f, 'utf8').split('\n')[0]));
    assert.equal(pids.length, 3, 'three PostgreSQL servers run during the demo');
    child.stdin.write('\r');
    assert.equal(await exited, 0, out);
    assert.match(out, /act 3/);
    assert.match(out, /the 5 good orders kept, the damage undone/);
    assert.match(out, /act 4/);
    assert.match(out, /drill of backup \S+: passed, usable on a scratch server after \d+ ms/);
    assert.match(out, /customer-13: (\d+) orders before the accident, \1 now: the deleted rows are back, unchanged/);
    assert.match(
      out,
      /the application wrote ([1-9]\d*) orders .*, \1 of them on the primary: every row the application wrote is kept/,
    );
    assert.deepEqual(readdirSync(join(dir, 'demo/data.pgops-scratch')), [], 'no scratch instance is left');
    assert.match(out, /demo finished/);
    assert.doesNotMatch(out, /Channel has been shut down|failed:/);
    for (const pid of pids) assert.equal(processAlive(pid), false, `PostgreSQL ${pid} still runs after the demo`);
  });
});
