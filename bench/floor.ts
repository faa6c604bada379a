// Benchmark: what Temporal itself costs on this machine, with no PostgreSQL and no code of ours:
// an empty workflow, one and three local activities that return at once, one activity. The
// floor under every figure of bench/stop-start.ts ("added per workflow"): a planned stop is two
// workflow tasks, an activity and the lock's update and release, each of which costs at least
// what is printed here.
// Usage: npm run bench:floor [-- runs]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { startTemporalDevServer } from '../src/dev/temporalDevServer';
import { freePort } from '../src/dev/ports';
import { printTimeline } from './timeline';

const runs = Number(process.argv[2] ?? 15);
if (!Number.isInteger(runs) || runs < 3 || runs > 500) throw new Error('runs must be an integer from 3 to 500');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
type HistoryEvent = { eventTime?: { seconds?: unknown; nanos?: number | null } | null };
const eventMs = (e: HistoryEvent) => Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'pgops-bench-floor-'));
  const server = await startTemporalDevServer({
    grpcPort: await freePort(),
    uiPort: await freePort(),
    dataDir: join(root, 'temporal'),
    headless: true,
  });
  const native = await NativeConnection.connect({ address: server.address });
  const connection = await Connection.connect({ address: server.address });
  try {
    const client = new Client({ connection });
    const worker = await Worker.create({
      connection: native,
      taskQueue: 'floor',
      workflowsPath: require.resolve('./floorWorkflows'),
      activities: { noop: async () => 1 },
    });
    await worker.runUntil(async () => {
      const types = [
        'emptyWorkflow',
        'oneLocalActivityWorkflow',
        'threeLocalActivitiesWorkflow',
        'oneActivityWorkflow',
      ];
      for (const type of types) await client.workflow.execute(type, { taskQueue: 'floor', workflowId: `warm-${type}` });
      console.log(`Temporal's own cost per workflow on this machine, median of ${runs} (client = start → result):`);
      for (const type of types) {
        const clientMs: number[] = [];
        const serverMs: number[] = [];
        const taskMs: number[] = [];
        for (let i = 0; i < runs; i++) {
          const workflowId = `${type}-${i}`;
          const t0 = performance.now();
          await client.workflow.execute(type, { taskQueue: 'floor', workflowId });
          clientMs.push(performance.now() - t0);
          const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
          serverMs.push(eventMs(events[events.length - 1]!) - eventMs(events[0]!));
          const started = events.filter((e) => e.workflowTaskStartedEventAttributes).map(eventMs);
          const completed = events.filter((e) => e.workflowTaskCompletedEventAttributes).map(eventMs);
          taskMs.push(started.reduce((sum, at, k) => sum + (completed[k]! - at), 0));
        }
        if (process.env.PGOPS_BENCH_TIMELINE) await printTimeline(client, `${type}-${runs - 1}`, '    ');
        console.log(
          `  ${type.padEnd(30)} client ${median(clientMs).toFixed(1).padStart(6)} ms, server (first event → completed) ${median(serverMs).toFixed(1).padStart(6)} ms, in workflow tasks ${median(taskMs).toFixed(1).padStart(6)} ms`,
        );
      }
    });
  } finally {
    await connection.close();
    await native.close();
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
