// `npm run build`: compiled JavaScript and type declarations in dist/ (so a user's project needs
// no tsx), and dist/workflow-bundle.js, the workflows bundled once here instead of at every
// worker start (the standalone worker uses it when it is there).
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';

async function main(): Promise<void> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: resolve(__dirname, '../src/workflows'),
    logger: new DefaultLogger('WARN'),
  });
  const out = resolve(__dirname, '../dist/workflow-bundle.js');
  writeFileSync(out, code);
  console.log(`[build] workflow bundle: ${out} (${Math.round(code.length / 1024)} KiB)`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
