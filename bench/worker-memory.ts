// Benchmark: the standalone worker's resident memory, idle, started from the compiled package
// (npm run build) with the prebuilt workflow bundle and without it (bundling at start), side by
// side. Usage: npm run bench:worker-memory
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startTemporalDevServer } from '../src/dev/temporalDevServer';
import { freePort } from '../src/dev/ports';

const rssMb = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function idleRss(
  address: string,
  catalog: string,
  dist: string,
  bundle: string,
): Promise<{ startMs: number; rss: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, [join(dist, 'worker.js')], {
    env: { ...process.env, TEMPORAL_ADDRESS: address, PGOPS_CONFIG: catalog, PGOPS_WORKFLOW_BUNDLE: bundle },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  while (!/pg-ops worker started/.test(out)) {
    if (child.exitCode !== null) throw new Error(`worker exited: ${out}`);
    await sleep(50);
  }
  const startMs = Date.now() - started;
  await sleep(10_000); // idle: polling, nothing to do
  const rss = rssMb(child.pid!);
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  return { startMs, rss };
}

async function main(): Promise<void> {
  if (!existsSync(resolve(__dirname, '../dist/workflow-bundle.js'))) throw new Error('run npm run build first');
  const root = mkdtempSync(join(tmpdir(), 'pgops-bench-mem-'));
  const server = await startTemporalDevServer({
    grpcPort: await freePort(),
    uiPort: await freePort(),
    dataDir: join(root, 'temporal'),
    headless: true,
  });
  try {
    const catalog = join(root, 'pgops.yaml');
    writeFileSync(catalog, 'clusters: {}\n');
    const rows: string[] = [];
    const dist = resolve(__dirname, '../dist');
    const baseline = process.argv[2] ? resolve(process.argv[2]) : undefined;
    const variants: [string, string, string][] = [
      ['prebuilt bundle (default after npm run build)', dist, join(dist, 'workflow-bundle.js')],
      ['bundled at start (PGOPS_WORKFLOW_BUNDLE=)', dist, ''],
    ];
    if (baseline)
      variants.push([`baseline ${baseline}, prebuilt bundle`, baseline, join(baseline, 'workflow-bundle.js')]);
    for (let round = 0; round < 2; round++) {
      for (const [name, variantDist, bundle] of round % 2 ? [...variants].reverse() : variants) {
        const r = await idleRss(server.address, catalog, variantDist, bundle);
        rows.push(`| ${name} | ${round + 1} | ${r.startMs} ms | ${Math.round(r.rss)} MB |`);
      }
    }
    console.log('| worker | round | start to "worker started" | idle RSS after 10 s |');
    console.log('|---|---|---|---|');
    for (const row of rows) console.log(row);
  } finally {
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
