// Benchmark: planned stop + start through the workflows against the same driver calls run bare
// (pg_ctl stop -m fast, pg_ctl start -w, first query), side by side in one run, several rounds.
// Prints the ratio and the milliseconds the workflow adds, and the worker's resident memory idle
// and under load (30 queued start workflows contending for the cluster lock).
// Usage: npm run bench:stop-start [-- rounds]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, chmodSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { stringify } from 'yaml';
import { startTemporalDevServer } from '../src/dev/temporalDevServer';
import { freePort } from '../src/dev/ports';
import {
  endpointOf,
  initLocalCluster,
  localTargetOf,
  startLocalCluster,
  stopLocalClusterIfRunning,
} from '../src/dev/localPostgres';
import { LocalClusterDriver } from '../src/drivers/cluster/local';
import { waitForSql, withSession } from '../src/drivers/postgres/session';
import { ensureSearchAttributes } from '../src/worker';
import { printTimeline } from './timeline';

const rounds = Number(process.argv[2] ?? 5);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const rssMb = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'pgops-bench-'));
  chmodSync(root, 0o755);
  const server = await startTemporalDevServer({
    grpcPort: await freePort(),
    uiPort: await freePort(),
    dataDir: join(root, 'temporal'),
    headless: true,
  });
  const cluster = await initLocalCluster({ dir: join(root, 'pg'), port: await freePort() });
  let worker: ReturnType<typeof spawn> | undefined;
  try {
    await ensureSearchAttributes(server.address, server.namespace);
    await startLocalCluster(cluster);
    const endpoint = endpointOf(cluster);
    await withSession(endpoint, (c) => c.query('CREATE TABLE t AS SELECT g FROM generate_series(1, 100000) g'));
    const catalogPath = join(root, 'pgops.yaml');
    const target = localTargetOf(cluster, 300);
    writeFileSync(catalogPath, stringify({ clusters: { bench: { target } } }));
    const taskQueue = 'pg-ops-bench';
    // The worker as deployed (`node dist/worker.js`, prebuilt workflow bundle; `npm run
    // bench:stop-start` builds it first), or from source with tsx (bundling at start) if not built.
    const compiled = resolve(__dirname, '../dist/worker.js');
    const workerArgs = existsSync(compiled)
      ? [compiled]
      : ['--require', 'tsx/cjs', resolve(__dirname, '../src/worker.ts')];
    console.log(`worker: node ${workerArgs.join(' ')}`);
    worker = spawn(process.execPath, workerArgs, {
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: server.address,
        PGOPS_TASK_QUEUE: taskQueue,
        PGOPS_CONFIG: catalogPath,
        PGOPS_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const connection = await Connection.connect({ address: server.address });
    const client = new Client({ connection });
    const driver = new LocalClusterDriver(target);

    const bareStopMs: number[] = [];
    const bareStartMs: number[] = [];
    const bare = async () => {
      const t0 = performance.now();
      await driver.stop();
      const t1 = performance.now();
      await driver.start(1);
      await waitForSql(endpoint, { timeoutMs: 60_000 });
      const t2 = performance.now();
      bareStopMs.push(t1 - t0);
      bareStartMs.push(t2 - t1);
      return t2 - t0;
    };
    const splits: Split[] = [];
    /** One workflow, with where its time went: the start call, the server's own run, the result wait. */
    const timed = async (type: string, workflowId: string) => {
      const t0 = Date.now();
      const handle = await client.workflow.start(type, { taskQueue, workflowId, args: [{ cluster: 'bench' }] });
      const started = Date.now();
      await handle.result();
      const done = Date.now();
      splits.push({ workflowId, t0, started, done });
    };
    const viaWorkflows = async (i: number) => {
      const t0 = performance.now();
      await timed('plannedStopWorkflow', `bench-stop-${i}`);
      await timed('plannedStartWorkflow', `bench-start-${i}`);
      return performance.now() - t0;
    };

    await viaWorkflows(-1); // warm-up: worker bundle loaded, lock workflow started
    await bare();
    await new Promise((r) => setTimeout(r, 2000));
    const idleRss = rssMb(worker.pid!);
    const bareMs: number[] = [];
    const wfMs: number[] = [];
    let peakRss = idleRss;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssMb(worker!.pid!))), 100);
    for (let i = 0; i < rounds; i++) {
      bareMs.push(await bare());
      wfMs.push(await viaWorkflows(i));
      console.log(`round ${i + 1}/${rounds}: bare ${bareMs[i]!.toFixed(0)} ms, workflows ${wfMs[i]!.toFixed(0)} ms`);
    }
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        client.workflow.execute('plannedStartWorkflow', {
          taskQueue,
          workflowId: `bench-load-${i}`,
          args: [{ cluster: 'bench', waitForLock: '10m' }],
        }),
      ),
    );
    const loadMs = performance.now() - t0;
    clearInterval(sampler);
    const b = median(bareMs);
    const w = median(wfMs);
    console.log('\nplanned stop + start, median of', rounds, 'rounds');
    console.log(`  bare pg_ctl stop/start + first query : ${b.toFixed(0)} ms`);
    console.log(`  plannedStop + plannedStart workflows : ${w.toFixed(0)} ms`);
    console.log(`  ratio workflows / bare               : ${(w / b).toFixed(2)}`);
    console.log(`  added per workflow                   : ${((w - b) / 2).toFixed(0)} ms (aim: ≤ 150 ms)`);
    // On a shared machine the median moves with the load; the fastest round of each side is the
    // closest to what the orchestration itself costs.
    const bMin = Math.min(...bareMs);
    const wMin = Math.min(...wfMs);
    console.log(`  fastest round, bare / workflows      : ${bMin.toFixed(0)} / ${wMin.toFixed(0)} ms`);
    console.log(`  added per workflow, fastest rounds   : ${((wMin - bMin) / 2).toFixed(0)} ms`);
    console.log(
      `  bare stop / start + first query      : ${median(bareStopMs).toFixed(0)} / ${median(bareStartMs).toFixed(0)} ms (medians)`,
    );
    console.log(`  worker RSS idle                      : ${idleRss.toFixed(0)} MB`);
    console.log(
      `  worker RSS peak under load           : ${peakRss.toFixed(0)} MB (rounds + 30 queued starts in ${(loadMs / 1000).toFixed(1)} s)`,
    );
    await printSplits(
      client,
      splits.filter((x) => !x.workflowId.endsWith('-1')),
    );
    await printTimeline(client, `bench-stop-${rounds - 1}`);
    await printTimeline(client, `bench-start-${rounds - 1}`);
    await connection.close();
  } finally {
    worker?.kill('SIGTERM');
    await stopLocalClusterIfRunning(cluster);
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

interface Split {
  workflowId: string;
  t0: number;
  started: number;
  done: number;
}

const eventMs = (e: { eventTime?: { seconds?: unknown; nanos?: number | null } | null }) =>
  Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;

/**
 * The client's view against the server's: start call → first event (request in flight and
 * persisted), first event → completion (the server's run: workflow tasks, activities), completion
 * → result returned (the result long poll). Same machine, same clock.
 */
async function printSplits(client: Client, splits: Split[]): Promise<void> {
  const rows: Array<{ toFirst: number; call: number; run: number; afterClose: number; total: number }> = [];
  for (const x of splits) {
    const events = (await client.workflow.getHandle(x.workflowId).fetchHistory()).events ?? [];
    const first = eventMs(events[0]!);
    const close = eventMs(events[events.length - 1]!);
    rows.push({
      toFirst: first - x.t0,
      call: x.started - x.t0,
      run: close - first,
      afterClose: x.done - close,
      total: x.done - x.t0,
    });
  }
  const line = (name: string, pick: (r: (typeof rows)[number]) => number) => {
    const xs = rows.map(pick).sort((a, b) => a - b);
    const pct = (q: number) => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))]!.toFixed(0);
    console.log(`  ${name.padEnd(44)}: ${pct(0.5).padStart(5)} ms  (min ${xs[0]!.toFixed(0)}, max ${pct(1)})`);
  };
  console.log(`\nper workflow, ${rows.length} workflows (client clock = server clock, one machine):`);
  line('client start call returned', (r) => r.call);
  line('client start call → first history event', (r) => r.toFirst);
  line('first event → workflow completed (server)', (r) => r.run);
  line('workflow completed → result at the client', (r) => r.afterClose);
  line('client total', (r) => r.total);
  await printPhases(client, splits);
}

/**
 * Per workflow type, medians on the server's clock: the first workflow task (scheduled →
 * completed: the lock request and what runs with it), the step's activity (scheduled →
 * completed), the last workflow task (the release and the completion).
 */
async function printPhases(client: Client, splits: Split[]): Promise<void> {
  const byType = new Map<string, { first: number[]; step: number[]; last: number[] }>();
  for (const x of splits) {
    const type = x.workflowId.replace(/-\d+$/, '');
    const events = (await client.workflow.getHandle(x.workflowId).fetchHistory()).events ?? [];
    const scheduled = events.filter((e) => e.workflowTaskScheduledEventAttributes).map(eventMs);
    const completed = events.filter((e) => e.workflowTaskCompletedEventAttributes).map(eventMs);
    const activity = events.find((e) => e.activityTaskScheduledEventAttributes);
    const closed = events.find((e) => e.activityTaskCompletedEventAttributes);
    if (!activity || !closed || scheduled.length < 2) continue;
    const phases = byType.get(type) ?? { first: [], step: [], last: [] };
    phases.first.push(completed[0]! - scheduled[0]!);
    phases.step.push(eventMs(closed) - eventMs(activity));
    phases.last.push(completed[completed.length - 1]! - scheduled[scheduled.length - 1]!);
    byType.set(type, phases);
  }
  console.log('\nper workflow type, medians on the server clock (first task / step activity / last task):');
  for (const [type, p] of byType)
    console.log(
      `  ${type.padEnd(12)}: ${median(p.first).toFixed(0)} / ${median(p.step).toFixed(0)} / ${median(p.last).toFixed(0)} ms`,
    );
}

/** Where one workflow's time goes: each activity's schedule → start → close, from its history. */
main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
