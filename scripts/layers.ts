// `npm run -s layers`: every import of src/ that breaks a layer rule of .dependency-cruiser.cjs
// (file -> imported file, and the rule) and every import cycle among src/ files, then
// "layer violations: N, cycles: M"; exits 1 when either is not 0. Type-only imports count.
import { resolve } from 'node:path';
import type { IConfiguration, ICruiseOptions, ICruiseResult } from 'dependency-cruiser';

export interface LayerReport {
  /** One line a violation: `rule: from -> to`. */
  violations: string[];
  /** One line a cycle: `a -> b -> a`. */
  cycles: string[];
}

/** Cruises `<root>/src` with the rules in this project's .dependency-cruiser.cjs. */
export async function checkLayers(root: string): Promise<LayerReport> {
  const { cruise } = await import('dependency-cruiser');
  const rules = await import(resolve(__dirname, '../.dependency-cruiser.cjs'));
  const { forbidden, options } = rules.default as IConfiguration;
  const cruiseOptions: ICruiseOptions = { ...options, ruleSet: { forbidden }, validate: true, baseDir: root };
  const { output } = await cruise(['src'], { ...cruiseOptions, outputType: 'json' });
  const result: ICruiseResult = typeof output === 'string' ? JSON.parse(output) : output;
  const report: LayerReport = { violations: [], cycles: [] };
  for (const v of result.summary.violations) {
    if (v.cycle) {
      report.cycles.push([v.from, ...v.cycle.map((step) => step.name)].join(' -> '));
    } else {
      const typeOnly = v.dependencyTypes?.includes('type-only') ? ' (import type)' : '';
      report.violations.push(`${v.rule.name}: ${v.from} -> ${v.to}${typeOnly}`);
    }
  }
  report.violations.sort();
  report.cycles.sort();
  return report;
}

async function main(): Promise<void> {
  const { violations, cycles } = await checkLayers(resolve(__dirname, '..'));
  for (const line of violations) console.log(line);
  for (const line of cycles) console.log(`cycle: ${line}`);
  console.log(`layer violations: ${violations.length}, cycles: ${cycles.length}`);
  if (violations.length > 0 || cycles.length > 0) process.exitCode = 1;
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(2);
  });
}
