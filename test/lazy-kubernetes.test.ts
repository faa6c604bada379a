import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

const root = resolve(__dirname, '..');

/** Runs `code` in a fresh node (tsx) and returns how many @kubernetes/client-node files it loaded. */
function clientNodeFilesLoadedBy(code: string): number {
  const out = execFileSync(
    'npx',
    [
      '--no-install',
      'tsx',
      '-e',
      `${code}; console.log(Object.keys(require.cache).filter((f) => f.includes('@kubernetes/client-node')).length)`,
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return Number(out.toString().trim().split('\n').at(-1));
}

describe('the Kubernetes client is loaded only by a worker that uses it (about 80 MB resident)', function () {
  this.timeout(60_000);

  it('a worker with its activities, on a catalog of local clusters only, does not load @kubernetes/client-node', () => {
    const loaded = clientNodeFilesLoadedBy(
      "require('./src/worker'); require('./src/activities').createActivities({ catalog: () => ({ clusters: {} }) })",
    );
    assert.equal(loaded, 0);
  });

  it('the first Kubernetes driver asked for loads it', () => {
    const loaded = clientNodeFilesLoadedBy("require('./src/drivers/kubernetes').kubernetesDrivers().loadKubeConfig");
    assert.ok(loaded > 0, 'kubernetesDrivers() loaded @kubernetes/client-node');
  });
});
