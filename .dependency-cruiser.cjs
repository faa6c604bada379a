// The layers of src/, checked by `npm run -s layers` (scripts/layers.ts). eslint.config.mjs holds
// the same rules as no-restricted-imports patterns, so an editor flags a wrong import as it is
// written; this file is the whole-graph check (it also finds import cycles).
//
//   src/common      imports nothing of src/
//   src/contract    imports common
//   src/config      imports common, contract
//   src/drivers     imports common, contract, config, src/logger.ts; no @temporalio/* packages
//   src/activities  imports common, contract, config, drivers, src/logger.ts
//   src/workflows   imports common, contract; `import type` from activities; no Node built-ins
//   src/client      imports common, contract, config
//   src/cli         imports client, common, contract, config, src/logger.ts
//   src/dev         imports common, contract, config, drivers, src/logger.ts
//   src/worker.ts, src/plugin.ts, src/index.ts (and src/logger.ts) may import anything
//
// Type-only imports count like any other (tsPreCompilationDeps), except workflows -> activities.

/** An error for an import from a file below `from` (a path pattern) to what `to` matches. */
function rule(name, comment, from, to) {
  return { name, severity: 'error', comment, from: { path: from }, to };
}

/** Files under src/<layer>/ may import, of src/, only their own folder and `allowed`. */
function layer(name, allowed, comment) {
  const folders = [name, ...allowed.filter((a) => !a.endsWith('.ts'))].join('|');
  const files = allowed.filter((a) => a.endsWith('.ts')).map((f) => `|^src/${f.replace('.', '\\.')}$`);
  return rule(`layer-${name}`, comment, `^src/${name}/`, {
    path: '^src/',
    pathNot: `^src/(${folders})/${files.join('')}`,
  });
}

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    layer('common', [], 'src/common imports nothing of src/.'),
    layer('contract', ['common'], 'src/contract imports src/common only.'),
    layer('config', ['common', 'contract'], 'src/config imports common and contract (not drivers).'),
    layer(
      'drivers',
      ['common', 'contract', 'config', 'logger.ts'],
      'src/drivers imports common, contract, config and src/logger.ts; not activities or workflows.',
    ),
    rule('layer-drivers-no-temporal', 'Drivers are plain I/O code: no @temporalio/* packages.', '^src/drivers/', {
      path: '(^|node_modules/)@temporalio/',
    }),
    layer(
      'activities',
      ['common', 'contract', 'config', 'drivers', 'logger.ts'],
      'src/activities imports common, contract, config, drivers and src/logger.ts; not workflows.',
    ),
    // Activities appear here so that workflows -> activities falls to the next rule.
    layer(
      'workflows',
      ['common', 'contract', 'activities'],
      'src/workflows imports common, contract and other workflows (type imports of drivers and config count too).',
    ),
    rule(
      'layer-workflows-type-only-activities',
      'Workflows may only `import type` from src/activities (they call activities through proxies).',
      '^src/workflows/',
      { path: '^src/activities/', dependencyTypesNot: ['type-only'] },
    ),
    rule(
      'layer-workflows-no-node',
      'Workflow code runs in a deterministic sandbox: no Node built-ins.',
      '^src/workflows/',
      { dependencyTypes: ['core'] },
    ),
    rule(
      'layer-workflows-no-io',
      'Workflows call activities; they never use pg or @kubernetes/* directly.',
      '^src/workflows/',
      { path: '(^|node_modules/)(pg|@kubernetes/[^/]+)(/|$)' },
    ),
    layer(
      'client',
      ['common', 'contract', 'config'],
      'src/client imports common, contract and config; not drivers, activities or workflows.',
    ),
    layer(
      'cli',
      ['client', 'common', 'contract', 'config', 'logger.ts'],
      'src/cli imports client, common, contract, config and src/logger.ts; not drivers, activities or workflows.',
    ),
    layer(
      'dev',
      ['common', 'contract', 'config', 'drivers', 'logger.ts'],
      'src/dev imports common, contract, config, drivers and src/logger.ts.',
    ),
    rule('no-cycle', 'An import cycle among src/ files.', '^src/', { path: '^src/', circular: true }),
  ],
  options: {
    doNotFollow: { path: '(^|/)node_modules/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
