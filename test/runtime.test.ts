import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { isSupportedNode as satisfiesEngines, supportedNode as engines } from './harness/supportedNode';

const root = resolve(__dirname, '..');

function nodeVersionOf(file: string): string {
  return execFileSync(file, ['-p', 'process.version']).toString().trim();
}

describe('the Node.js runtime', () => {
  it(`runs the tests on a Node.js that package.json's engines (${engines}) accepts`, () => {
    assert.match(engines, /^>=\d+\.\d+$/);
    assert.ok(satisfiesEngines(process.version), `tests run on ${process.version}, engines say ${engines}`);
  });

  it('gives every child the same node: the one on PATH (npm scripts, npx, tsx, mocha) is the one running the tests', function () {
    this.timeout(60_000);
    assert.equal(nodeVersionOf('node'), process.version);
    // What `npm run` and `npx tsx` start (the demo test spawns `npx tsx scripts/demo.ts`).
    const viaNpx = execFileSync('npx', ['--no-install', 'tsx', '-e', 'console.log(process.version)'], { cwd: root });
    assert.equal(viaNpx.toString().trim(), process.version);
  });

  it("provides the cached Node.js 24 when the machine's node is older (scripts/node-runtime.sh)", function () {
    this.timeout(300_000);
    const machineNode = '/usr/bin/node';
    if (!existsSync(machineNode) || satisfiesEngines(nodeVersionOf(machineNode))) this.skip(); // nothing to provide
    const out = execFileSync('bash', [join(root, 'scripts/node-runtime.sh')], {
      env: { ...process.env, PATH: `${dirname(machineNode)}:${process.env.PATH}` },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const bin = out.toString().trim();
    const cache = join(homedir(), '.cache', 'pgops', 'node');
    assert.equal(dirname(dirname(bin)), cache, `${bin} is under ${cache}`);
    const version = nodeVersionOf(join(bin, 'node'));
    assert.match(version, /^v24\./);
    assert.equal(`v${basename(dirname(bin))}`, version, 'the directory is named after the version');
    assert.ok(satisfiesEngines(version));
  });
});
