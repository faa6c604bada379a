import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { processAlive } from '../src/drivers/cluster/local';

describe('LocalClusterDriver process checks', () => {
  it('counts an exited but unreaped process (a zombie) as gone, and a live one as alive', async () => {
    // `sleep 0` exits at once; its parent becomes `sleep 3`, which never reaps it: a zombie.
    const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 3'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const zombiePid = await new Promise<number>((resolve) =>
      parent.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim()))),
    );
    await new Promise((r) => setTimeout(r, 300));
    try {
      assert.equal(processAlive(zombiePid), false);
      assert.equal(processAlive(parent.pid!), true);
      assert.equal(processAlive(process.pid), true);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});
