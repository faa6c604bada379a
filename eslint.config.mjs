// Temporal's recommended rules: floating promises are errors everywhere, and workflow code may
// not import Node built-ins (it runs in a deterministic sandbox and would fail at bundle time).
// The layers of src/ (the same rules as .dependency-cruiser.cjs, which `npm run -s layers` checks
// on the whole import graph, cycles included) as no-restricted-imports, one rule entry per folder:
// a later config object for the same files would replace the rule's options, not add to them.
//
// Every layer rule is an error. STILL_MOVING is for a future move of code between layers: a folder
// named there only warns (and workflows may `import type` from drivers and config) until the move is done.
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

/** Folders of src/ and, beside each, what of src/ (besides itself) it may import; `.ts` names a file of src/. */
const layers = {
  common: [],
  contract: ['common'],
  config: ['common', 'contract'],
  drivers: ['common', 'contract', 'config', 'logger.ts'],
  activities: ['common', 'contract', 'config', 'drivers', 'logger.ts'],
  workflows: ['common', 'contract', 'activities'], // activities: `import type` only (below)
  client: ['common', 'contract', 'config'],
  cli: ['client', 'common', 'contract', 'config', 'logger.ts'],
  dev: ['common', 'contract', 'config', 'drivers', 'logger.ts'],
};
const STILL_MOVING = [];
// src/index.ts is left out: `..` and `../index` from a sub-folder name the layer's own index.
const topLevelFiles = ['logger.ts', 'worker.ts', 'plugin.ts'];

/** A no-restricted-imports pattern for relative imports that reach the given folders or files of src/. */
function srcImports(names, options) {
  const bare = names.map((name) => name.replace(/\.ts$/, ''));
  return { regex: `^(\\.\\./)+(${bare.join('|')})(/|$)`, caseSensitive: true, ...options };
}

function layerRule(name, allowed, moving) {
  const forbidden = [...Object.keys(layers), ...topLevelFiles].filter((n) => n !== name && !allowed.includes(n));
  const message = `src/${name} may import only ${allowed.length ? allowed.join(', ') : 'nothing else of src/'} (the layers: eslint.config.mjs, npm run -s layers).`;
  const typesStillAllowed = name === 'workflows' && moving ? ['drivers', 'config'] : [];
  const patterns = [
    srcImports(
      forbidden.filter((n) => !typesStillAllowed.includes(n)),
      { allowTypeImports: false, message },
    ),
  ];
  if (typesStillAllowed.length) patterns.push(srcImports(typesStillAllowed, { allowTypeImports: true, message }));
  if (name === 'drivers') {
    patterns.push({ group: ['@temporalio/*'], message: 'Drivers are plain I/O code: no @temporalio/* packages.' });
  }
  if (name !== 'workflows') return [moving ? 'warn' : 'error', { patterns }];
  // workflows: no Node built-ins, no I/O libraries; activities only through `import type`.
  const paths = nodeBuiltins.map((name) => ({
    name,
    message: 'Workflow code runs in a deterministic sandbox: no Node built-ins.',
  }));
  patterns.push(
    srcImports(['activities'], {
      allowTypeImports: true,
      message: 'Workflows call activities through proxies: `import type` from src/activities only.',
    }),
    {
      group: ['pg', 'pg/*', '@kubernetes/*'],
      message: 'Workflows call activities; they never touch drivers, config or I/O directly.',
    },
  );
  return ['error', { paths, patterns }];
}

/** The project's ESLint config, with the folders in `stillMoving` held to the layer rules loosely (above). */
export function eslintConfig(stillMoving) {
  return tseslint.config(
    { ignores: ['node_modules/**', 'dist/**', '.pgops/**'] },
    ...tseslint.configs.recommended,
    {
      files: ['**/*.ts'],
      languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
      rules: {
        '@typescript-eslint/no-floating-promises': 'error',
        '@typescript-eslint/no-misused-promises': 'error',
        '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      },
    },
    ...Object.entries(layers).map(([name, allowed]) => ({
      files: [`src/${name}/**/*.ts`],
      rules: { '@typescript-eslint/no-restricted-imports': layerRule(name, allowed, stillMoving.includes(name)) },
    })),
    {
      files: ['src/workflows/**/*.ts'],
      rules: {
        'no-restricted-globals': ['error', { name: 'setTimeout', message: 'Use sleep() from @temporalio/workflow.' }],
        'no-restricted-properties': [
          'error',
          {
            object: 'Date',
            property: 'now',
            message: 'Workflow time comes from the SDK (workflowInfo(), sleep, condition).',
          },
        ],
      },
    },
  );
}

export default eslintConfig(STILL_MOVING);
