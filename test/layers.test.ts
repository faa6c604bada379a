// `npm run -s layers` (scripts/layers.ts, rules in .dependency-cruiser.cjs) on two small made-up
// src/ trees: one that keeps every layer rule has nothing to report, and one that breaks each rule
// once (and has a cycle) gets each reported: the check can fail. ESLint's copy of the rules
// (eslint.config.mjs) flags the same imports.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ESLint } from 'eslint';
import { checkLayers } from '../scripts/layers';

/** Every layer, each importing all it may. */
const cleanTree: Record<string, string> = {
  'src/common/ids.ts': `import { join } from 'node:path';\nexport const id = join('a', 'b');\n`,
  'src/contract/types.ts': `import { id } from '../common/ids';\nexport type Input = { id: typeof id };\n`,
  'src/config/schema.ts': `import { id } from '../common/ids';\nimport type { Input } from '../contract/types';\nexport const config: Input = { id };\n`,
  'src/logger.ts': `export const log = console.log;\n`,
  'src/drivers/exec.ts': [
    `import { config } from '../config/schema';`,
    `import type { Input } from '../contract/types';`,
    `import { log } from '../logger';`,
    `import { spawn } from 'node:child_process';`,
    `export const run = (i: Input): void => { log(config, i, spawn); };`,
  ].join('\n'),
  'src/drivers/kube/pods.ts': `import { run } from '../exec';\nexport const pods = run;\n`,
  'src/activities/steps.ts': [
    `import { Context } from '@temporalio/activity';`,
    `import { pods } from '../drivers/kube/pods';`,
    `import { config } from '../config/schema';`,
    `import { log } from '../logger';`,
    `export const steps = { stop: async () => { log(Context, pods, config); } };`,
  ].join('\n'),
  'src/workflows/definitions.ts': `import { defineSignal } from '@temporalio/workflow';\nexport const resume = defineSignal('resume');\n`,
  'src/workflows/stop.ts': [
    `import { proxyActivities } from '@temporalio/workflow';`,
    `import type { steps } from '../activities/steps';`,
    `import { type Input } from '../contract/types';`,
    `import { resume } from './definitions';`,
    `import { id } from '../common/ids';`,
    `export const stop = (i: Input) => [proxyActivities<typeof steps>({}), resume, id, i];`,
  ].join('\n'),
  'src/client/client.ts': `import { Client } from '@temporalio/client';\nimport { config } from '../config/schema';\nexport const client = [Client, config];\n`,
  'src/cli/main.ts': `import { client } from '../client/client';\nimport { log } from '../logger';\nlog(client);\n`,
  'src/dev/cluster.ts': `import { run } from '../drivers/exec';\nimport { log } from '../logger';\nexport const dev = [run, log];\n`,
  'src/worker.ts': `import { steps } from './activities/steps';\nimport { stop } from './workflows/stop';\nimport { run } from './drivers/exec';\nexport const w = [steps, stop, run];\n`,
};

/** One import that breaks each rule (none of the clean files imports these, so no other cycles). */
const badFiles: Record<string, string> = {
  'src/common/bad.ts': `import type { Input } from '../contract/types';\nexport type X = Input;\n`,
  'src/contract/bad.ts': `import { config } from '../config/schema';\nexport const x = config;\n`,
  'src/config/bad.ts': `import { run } from '../drivers/exec';\nexport const x = run;\n`,
  'src/drivers/bad.ts': `import { ApplicationFailure } from '@temporalio/common';\nimport { steps } from '../activities/steps';\nexport const x = [ApplicationFailure, steps];\n`,
  'src/activities/bad.ts': `import type { resume } from '../workflows/definitions';\nexport type X = typeof resume;\n`,
  'src/activities/cycleA.ts': `import { b } from './cycleB';\nexport const a = () => b;\n`,
  'src/activities/cycleB.ts': `import type { a } from './cycleA';\nexport const b: typeof a | undefined = undefined;\n`,
  'src/workflows/bad.ts': [
    `import type { PodsDriver } from '../drivers/kube/pods';`,
    `import { steps } from '../activities/steps';`,
    `import { readFileSync } from 'node:fs';`,
    `import { Client } from 'pg';`,
    `import { log } from '../logger';`,
    `export const x = [steps, readFileSync, Client, log] as unknown as PodsDriver;`,
  ].join('\n'),
  'src/client/bad.ts': `import { stop } from '../workflows/stop';\nexport const x = stop;\n`,
  'src/cli/bad.ts': `import { pods } from '../drivers/kube/pods';\nexport const x = pods;\n`,
  'src/dev/bad.ts': `import { steps } from '../activities/steps';\nexport const x = steps;\n`,
};

function writeTree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'pgops-layers-'));
  const eslintConfig = resolve(__dirname, '../eslint.config.mjs');
  const tsConfig = { compilerOptions: { strict: true, module: 'commonjs', moduleResolution: 'node', types: [] } };
  files = {
    ...files,
    'tsconfig.json': JSON.stringify({ ...tsConfig, include: ['src'] }),
    'eslint.config.mjs': `import { eslintConfig } from ${JSON.stringify(eslintConfig)};\nexport default eslintConfig([]);\n`,
  };
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

/** `file:line` of each import ESLint's layer rules flag in the tree. */
async function eslintLayerFindings(root: string): Promise<string[]> {
  const results = await new ESLint({ cwd: root }).lintFiles(['src']);
  return results
    .flatMap((r) =>
      r.messages
        .filter((m) => m.ruleId === '@typescript-eslint/no-restricted-imports')
        .map((m) => `${r.filePath.slice(root.length + 1)}:${m.line}`),
    )
    .sort();
}

describe('layer check (npm run -s layers)', () => {
  const roots: string[] = [];
  after(() => roots.forEach((root) => rmSync(root, { recursive: true, force: true })));

  it('reports nothing for a tree that keeps the rules', async () => {
    const root = writeTree(cleanTree);
    roots.push(root);
    assert.deepEqual(await checkLayers(root), { violations: [], cycles: [] });
    assert.deepEqual(await eslintLayerFindings(root), []);
  });

  it('reports each broken rule, type-only imports included, and a cycle through an `import type`', async () => {
    const root = writeTree({ ...cleanTree, ...badFiles });
    roots.push(root);
    assert.deepEqual(await checkLayers(root), {
      violations: [
        'layer-activities: src/activities/bad.ts -> src/workflows/definitions.ts (import type)',
        'layer-cli: src/cli/bad.ts -> src/drivers/kube/pods.ts',
        'layer-client: src/client/bad.ts -> src/workflows/stop.ts',
        'layer-common: src/common/bad.ts -> src/contract/types.ts (import type)',
        'layer-config: src/config/bad.ts -> src/drivers/exec.ts',
        'layer-contract: src/contract/bad.ts -> src/config/schema.ts',
        'layer-dev: src/dev/bad.ts -> src/activities/steps.ts',
        'layer-drivers-no-temporal: src/drivers/bad.ts -> @temporalio/common',
        'layer-drivers: src/drivers/bad.ts -> src/activities/steps.ts',
        'layer-workflows-no-io: src/workflows/bad.ts -> pg',
        'layer-workflows-no-node: src/workflows/bad.ts -> fs',
        'layer-workflows-type-only-activities: src/workflows/bad.ts -> src/activities/steps.ts',
        'layer-workflows: src/workflows/bad.ts -> src/drivers/kube/pods.ts (import type)',
        'layer-workflows: src/workflows/bad.ts -> src/logger.ts',
      ],
      cycles: ['src/activities/cycleA.ts -> src/activities/cycleB.ts -> src/activities/cycleA.ts'],
    });
    // ESLint sees no cycles, but flags the same imports (workflows/bad.ts: lines 1 to 5).
    assert.deepEqual(await eslintLayerFindings(root), [
      ...['activities', 'cli', 'client', 'common', 'config', 'contract', 'dev'].map((layer) => `src/${layer}/bad.ts:1`),
      'src/drivers/bad.ts:1',
      'src/drivers/bad.ts:2',
      ...[1, 2, 3, 4, 5].map((line) => `src/workflows/bad.ts:${line}`),
    ]);
  });
});
