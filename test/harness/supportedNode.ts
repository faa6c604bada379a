// Loaded by mocha before anything else: on an unsupported Node.js the dependencies fail to load with an
// obscure error (undici 8 under @kubernetes/client-node 2 needs 22.19), so say what to do instead.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/** package.json's engines.node, a `>=major.minor` range. */
export const supportedNode = (
  JSON.parse(readFileSync(resolve(__dirname, '../../package.json'), 'utf8')) as { engines: { node: string } }
).engines.node;

/** Whether a Node.js version (`v24.1.0` or `24.1.0`) satisfies `supportedNode`. */
export function isSupportedNode(version: string): boolean {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  const [wantMajor = 0, wantMinor = 0] = supportedNode.replace(/^>=/, '').split('.').map(Number);
  return major > wantMajor || (major === wantMajor && minor >= wantMinor);
}

if (!isSupportedNode(process.version)) {
  throw new Error(
    `the tests need Node.js ${supportedNode} and run on ${process.version}: run them through npm (npm test, npm run test:only) ` +
      'or put the project\'s Node.js first on PATH: export PATH="$(bash scripts/node-runtime.sh):$PATH"',
  );
}
