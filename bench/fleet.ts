// Benchmark: one worker fleet looking after many PostgreSQL clusters, on the production shape: a
// self-hosted Temporal server on PostgreSQL (four processes, SQL visibility) and W project workers as
// separate processes on one task queue and one catalog. Every cluster (a small real PostgreSQL 15,
// archiving its WAL) has a backup schedule every minute (default jitter, keep 2), the catalog caps
// concurrent backups fleet-wide, and an operation mix runs beside them: a held planned stop of a random
// cluster every 20 s (held 2 s) and a listing every 10 s. Optionally one worker is SIGKILLed every K
// minutes and a new one started.
// Prints: schedule lag (nominal time → backup workflow started, jitter excluded and included) p50/p99,
// time in backup mode p50/p99, operations failed, worker RSS and CPU, history length per workflow,
// workflow task time (sampled histories), lock workflows alive, Temporal database growth, archive size.
// Usage: npm run bench:fleet [-- clusters minutes workers maxConcurrentBackups killEveryMinutes backupEveryMinutes storage]
//   e.g. npm run bench:fleet -- 100 30 2 4 0    then    npm run bench:fleet -- 100 30 2 4 5
//   backupEveryMinutes (default 1): each cluster's schedule fires every that many minutes.
//   storage (default copy): copy (a backup copies the data directory) or btrfs (a subvolume snapshot).
import { chmodSync, cpSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { mochaHooks, scratchDir } from '../test/harness/testEnv';
import { selfHostedTemporal } from '../test/harness/selfHostedTemporal';
import { btrfsSubvolume, testBtrfs } from '../test/harness/btrfs';
import type { WorkerProcess } from '../test/harness/workers';
import {
  initLocalCluster,
  localClusterIn,
  localTargetOf,
  startLocalCluster,
  stopLocalClusterIfRunning,
  type LocalCluster,
} from '../src/dev/localPostgres';
import { archivingSettings, prepareArchiveDir } from '../src/dev/delayedReplicaSet';
import { freePort } from '../src/dev/ports';
import { runCommand } from '../src/drivers/exec';
import { withSession } from '../src/drivers/postgres/session';
import { BackupSchedules } from '../src/client/backupSchedules';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import { log, why } from './benchSupport';
import { lockStateQuery, lockWorkflowId } from '../src/contract/definitions';

const clusterCount = Number(process.argv[2] ?? 100);
const minutes = Number(process.argv[3] ?? 30);
const workerCount = Number(process.argv[4] ?? 2);
const maxConcurrentBackups = Number(process.argv[5] ?? 4);
const killEveryMinutes = Number(process.argv[6] ?? 0);
const backupEveryMinutes = Number(process.argv[7] ?? 1);
/** copy: each data directory on the host's disk, a backup copies it; btrfs: each a subvolume, a backup snapshots it. */
const storage = process.argv[8] ?? 'copy';
if (storage !== 'copy' && storage !== 'btrfs') throw new Error(`storage must be copy or btrfs, not ${storage}`);

const pct = (xs: number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : NaN;
};
const ms = (x: number) => (Number.isFinite(x) ? `${Math.round(x)} ms` : 'n/a');
const names = Array.from({ length: clusterCount }, (_, i) => `c${String(i + 1).padStart(3, '0')}`);

/** initdb once, then a copy per cluster with its own port, socket and archive: 100 clusters in seconds. */
async function makeClusters(dir: string): Promise<Array<{ name: string; cluster: LocalCluster; archiveDir: string }>> {
  const template = await initLocalCluster({
    dir: join(dir, 'template'),
    port: await freePort(),
    settings: { shared_buffers: '1MB', max_connections: '10', max_wal_senders: '0', autovacuum: 'off' },
  });
  const made = [];
  // Each cluster's data directory with its WAL is about 100 MB, and two backups pin what it overwrites.
  if (storage === 'btrfs') process.env.PGOPS_TEST_BTRFS_GB ??= String(Math.ceil(4 + clusterCount * 0.25));
  const btrfsRoot = storage === 'btrfs' ? await testBtrfs() : undefined;
  for (const name of names) {
    const base = join(dir, name);
    const archiveDir = join(base, 'archive');
    // btrfs: PGDATA a subvolume on the run's btrfs (its snapshots beside it there), the rest on the host's disk.
    const cluster = localClusterIn(base, await freePort(), btrfsRoot && join(btrfsRoot, `fleet-${name}`));
    if (btrfsRoot) await btrfsSubvolume(cluster.pgdata);
    cpSync(template.pgdata, cluster.pgdata, { recursive: true });
    chmodSync(cluster.pgdata, 0o700);
    await prepareArchiveDir(archiveDir, cluster.osUser);
    const settings = {
      ...archivingSettings(archiveDir),
      archive_timeout: "'0'",
      port: String(cluster.port),
      unix_socket_directories: `'${cluster.socketDir}'`,
    };
    writeFileSync(
      join(cluster.pgdata, 'postgresql.conf'),
      `${readFileSync(join(template.pgdata, 'postgresql.conf'), 'utf8')}\n${Object.entries(settings)
        .map(([k, v]) => `${k} = ${v}`)
        .join('\n')}\n`,
    );
    await runCommand('mkdir', ['-p', cluster.socketDir]);
    await runCommand('chown', ['-R', `${cluster.osUser}:`, base, cluster.pgdata]);
    await startLocalCluster(cluster);
    made.push({ name, cluster, archiveDir });
  }
  return made;
}

function dirBytes(path: string): number {
  if (!existsSync(path)) return 0;
  return readdirSync(path).reduce((sum, f) => sum + statSync(join(path, f)).size, 0);
}

/** RSS (MB) and CPU seconds of a process, from /proc. */
function usage(pid: number): { rssMB: number; cpuS: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    const rssKB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { rssMB: rssKB / 1024, cpuS: (Number(stat[11]) + Number(stat[12])) / 100 };
  } catch {
    return undefined;
  }
}

const alive = (w: WorkerProcess) => w.child.exitCode === null && w.child.signalCode === null;

async function list(client: Client, query: string): Promise<WorkflowExecutionInfo[]> {
  const out: WorkflowExecutionInfo[] = [];
  for await (const wf of client.workflow.list({ query })) out.push(wf);
  return out;
}

/** Longest gap between a workflow task's start and its completion in a history (sampled). */
async function workflowTaskMs(client: Client, wf: WorkflowExecutionInfo): Promise<number[]> {
  const history = await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
  const times: number[] = [];
  let started: number | undefined;
  for (const e of history.events ?? []) {
    const t = Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
    if (e.workflowTaskStartedEventAttributes) started = t;
    if (e.workflowTaskCompletedEventAttributes && started !== undefined) times.push(t - started);
  }
  return times;
}

async function temporalDbMB(db: LocalCluster): Promise<number> {
  return withSession(
    { host: '127.0.0.1', port: db.port, user: 'postgres', database: 'postgres', connectTimeoutMs: 5000 },
    async (c) =>
      Number(
        (
          await c.query(
            "SELECT sum(pg_database_size(datname))::bigint AS b FROM pg_database WHERE datname IN ('temporal', 'temporal_visibility')",
          )
        ).rows[0].b,
      ) / 1e6,
  );
}

async function main(): Promise<void> {
  log(
    `fleet bench: ${clusterCount} clusters (${storage}), ${minutes} min, ${workerCount} workers, maxConcurrentBackups ${maxConcurrentBackups}, a backup every ${backupEveryMinutes} min per cluster, ${killEveryMinutes ? `a worker SIGKILLed every ${killEveryMinutes} min` : 'no kills'}`,
  );
  const temporal = await selfHostedTemporal('fleet-temporal');
  const client = await temporal.client();
  const dir = await scratchDir('fleet');
  const t0 = Date.now();
  const clusters = await makeClusters(dir);
  log(`${clusters.length} PostgreSQL clusters up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const catalogPath = join(dir, 'pgops.yaml');
  writeFileSync(
    catalogPath,
    stringify({
      fleet: { maxConcurrentBackups },
      clusters: Object.fromEntries(
        clusters.map((c) => [
          c.name,
          { target: localTargetOf(c.cluster), storage: { kind: 'local' }, walArchive: c.archiveDir },
        ]),
      ),
    }),
  );
  const taskQueue = `pg-ops-fleet-${Math.random().toString(36).slice(2, 8)}`;
  const workers: WorkerProcess[] = [];
  // The built worker, as deployed (the npm script builds it first): tsx costs memory a deployment does not have.
  const startWorker = async () => workers.push(await temporal.worker(taskQueue, catalogPath, {}, { compiled: true }));
  for (let i = 0; i < workerCount; i++) await startWorker();
  const dbBefore = await temporalDbMB(temporal.cluster.database);
  const archiveBytes = () => clusters.reduce((sum, c) => sum + dirBytes(c.archiveDir), 0);
  const archiveBefore = archiveBytes();

  const schedules = new BackupSchedules(client, taskQueue);
  const cron = backupEveryMinutes === 1 ? '* * * * *' : `*/${backupEveryMinutes} * * * *`;
  for (const c of clusters) await schedules.create({ cluster: c.name, cron, keep: { count: 2 } });
  log(`${clusters.length} backup schedules (${cron}, default jitter, keep 2) created`);

  const runStart = new Date();
  const deadline = Date.now() + minutes * 60_000;
  const samples: Array<{ rssMB: number }> = [];
  const cpuAtStart = new Map<number, number>();
  const opsFailed: string[] = [];
  let opsRun = 0;
  let locksAliveMax = 0;
  /** Halfway, when every cluster has kept its 2 backups: from then on retention should hold the archives flat. */
  let archiveHalfway: number | undefined;
  let kills = 0;
  let lastKill = Date.now();
  let lastStop = 0;
  let lastList = 0;
  const pending: Array<Promise<unknown>> = [];
  const locksQuery = `WorkflowType = 'clusterLockWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '${taskQueue}'`;
  /** One operation of the mix on a random cluster, in the background; a failure is counted. */
  const launch = (what: string, type: string, input: Record<string, unknown>) => {
    const cluster = names[Math.floor(Math.random() * names.length)]!;
    opsRun++;
    pending.push(
      client.workflow
        .execute(type, {
          taskQueue,
          workflowId: `fleet-${what}-${cluster}-${Date.now()}`,
          args: [{ cluster, ...input }],
        })
        .catch(async (err: unknown) => {
          // Who held the cluster then, from the lock itself (a stop gives up after its waitForLock).
          const lock = await client.workflow
            .getHandle(lockWorkflowId(cluster, taskQueue))
            .query(lockStateQuery)
            .catch(() => undefined);
          const holder = lock?.holder
            ? `; lock now held by ${lock.holder.operation} ${lock.holder.workflowId} since ${lock.holder.since}, ${lock.queue.length} queued`
            : '';
          opsFailed.push(`${what} ${cluster}: ${why(err)}${holder}`);
        }),
    );
  };
  while (Date.now() < deadline) {
    for (const w of workers) {
      if (!alive(w)) continue;
      const u = usage(w.child.pid!);
      if (!u) continue;
      if (!cpuAtStart.has(w.child.pid!)) cpuAtStart.set(w.child.pid!, u.cpuS);
      samples.push({ rssMB: u.rssMB });
    }
    if (Date.now() - lastStop >= 20_000) {
      lastStop = Date.now();
      launch('stop', 'plannedStopWorkflow', { holdUntilResumed: true, maxHold: '2s', waitForLock: '5m' });
    }
    if (Date.now() - lastList >= 10_000) {
      lastList = Date.now();
      launch('list', 'listBackupsWorkflow', {});
      locksAliveMax = Math.max(locksAliveMax, (await list(client, locksQuery).catch(() => [])).length);
    }
    if (archiveHalfway === undefined && Date.now() - runStart.getTime() >= (minutes / 2) * 60_000)
      archiveHalfway = archiveBytes();
    if (killEveryMinutes && Date.now() - lastKill >= killEveryMinutes * 60_000) {
      lastKill = Date.now();
      const victim = workers.find(alive);
      if (victim) {
        await victim.kill('SIGKILL');
        kills++;
        log(`SIGKILLed a worker (${kills}); starting another`);
        await startWorker();
      }
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
  log('time is up: pausing the schedules and letting running operations end');
  const actions = { taken: 0, skippedOverlap: 0, missedCatchup: 0 };
  for (const c of clusters) {
    const schedule = client.schedule.getHandle(`pgops-backup/${c.name}`);
    await schedule.pause('bench over').catch(() => undefined);
    const info = (await schedule.describe().catch(() => undefined))?.info;
    actions.taken += info?.numActionsTaken ?? 0;
    actions.skippedOverlap += info?.numActionsSkippedOverlap ?? 0;
    actions.missedCatchup += info?.numActionsMissedCatchupWindow ?? 0;
  }
  const cpu = workers.filter(alive).map((w) => {
    const u = usage(w.child.pid!);
    return u ? (u.cpuS - (cpuAtStart.get(w.child.pid!) ?? 0)) / ((Date.now() - runStart.getTime()) / 1000) : NaN;
  });
  await Promise.allSettled(pending);
  const drainBy = Date.now() + 5 * 60_000;
  while (Date.now() < drainBy) {
    const running = await list(
      client,
      `ExecutionStatus = 'Running' AND TaskQueue = '${taskQueue}' AND WorkflowType = 'snapshotBackupWorkflow'`,
    );
    if (running.length === 0) break;
    await new Promise((r) => setTimeout(r, 2000));
  }

  const since = runStart.toISOString();
  const backups = await list(
    client,
    `WorkflowType = 'snapshotBackupWorkflow' AND TaskQueue = '${taskQueue}' AND StartTime >= '${since}'`,
  );
  const failedBackups = backups.filter((b) => b.status.name !== 'COMPLETED');
  const lagExcl: number[] = [];
  const lagIncl: number[] = [];
  const inBackupMode: number[] = [];
  for (const b of backups) {
    const scheduled = b.searchAttributes?.TemporalScheduledStartTime?.[0] as Date | undefined;
    if (scheduled) lagIncl.push(b.startTime.getTime() - new Date(scheduled).getTime());
    if (b.status.name === 'COMPLETED') {
      const result = (await client.workflow.getHandle(b.workflowId, b.runId).result()) as SnapshotBackupResult;
      if (result.backupModeMs !== undefined) inBackupMode.push(result.backupModeMs);
    }
  }
  // The schedule's own record of each action: its scheduled time (after jitter) and when it ran.
  for (const c of clusters) {
    const d = await client.schedule
      .getHandle(`pgops-backup/${c.name}`)
      .describe()
      .catch(() => undefined);
    for (const a of d?.info.recentActions ?? []) lagExcl.push(a.takenAt.getTime() - a.scheduledAt.getTime());
  }
  const all = await list(client, `TaskQueue = '${taskQueue}' AND StartTime >= '${since}'`);
  const historyLengths = all.map((w) => w.historyLength);
  const sample = all.filter((_, i) => i % Math.max(1, Math.floor(all.length / 200)) === 0);
  const taskMs = (await Promise.all(sample.map((w) => workflowTaskMs(client, w).catch(() => [])))).flat();
  const locksNow = await list(client, locksQuery);
  const dbAfter = await temporalDbMB(temporal.cluster.database);
  const archiveAfter = archiveBytes();
  const rss = samples.map((x) => x.rssMB);

  log('');
  log(
    `fleet: ${clusterCount} clusters, ${minutes} min, ${workerCount} workers (${kills} SIGKILLed), cap ${maxConcurrentBackups}`,
  );
  log(`  backups: ${backups.length - failedBackups.length}/${backups.length} completed`);
  // Overlap SKIP: a minute whose previous backup of that cluster still runs (or waits for a slot) is skipped.
  log(
    `  schedule actions: ${actions.taken} taken, ${actions.skippedOverlap} skipped (previous backup still running or waiting for a slot), ${actions.missedCatchup} missed`,
  );
  log(
    `  schedule lag, scheduled time (after jitter) → action taken: p50 ${ms(pct(lagExcl, 50))}, p99 ${ms(pct(lagExcl, 99))} (n=${lagExcl.length}, the schedules' last 10 each)`,
  );
  log(
    `  nominal time → backup workflow started (jitter included): p50 ${ms(pct(lagIncl, 50))}, p99 ${ms(pct(lagIncl, 99))}`,
  );
  log(
    `  time in backup mode: p50 ${ms(pct(inBackupMode, 50))}, p99 ${ms(pct(inBackupMode, 99))} (n=${inBackupMode.length})`,
  );
  log(
    `  other operations: ${opsRun} run, ${opsFailed.length} failed${opsFailed.length ? `: ${opsFailed.slice(0, 5).join('; ')}` : ''}`,
  );
  log(`  failed, timed out or terminated backups: ${failedBackups.length}`);
  log(
    `  worker RSS: p50 ${pct(rss, 50).toFixed(0)} MB, max ${Math.max(...rss).toFixed(0)} MB; CPU per worker ${cpu.map((c) => `${(c * 100).toFixed(0)}%`).join(', ')}`,
  );
  log(
    `  history length per workflow: p50 ${pct(historyLengths, 50)}, p99 ${pct(historyLengths, 99)}, max ${Math.max(...historyLengths)} (n=${all.length})`,
  );
  log(
    `  workflow task (started → completed, ${sample.length} sampled histories): p50 ${ms(pct(taskMs, 50))}, p99 ${ms(pct(taskMs, 99))}, max ${ms(Math.max(...taskMs))}, over 2 s: ${taskMs.filter((t) => t > 2000).length}`,
  );
  log(`  lock workflows alive: at most ${locksAliveMax} during the run, ${locksNow.length} after it`);
  log(`  Temporal's database: ${dbBefore.toFixed(0)} MB → ${dbAfter.toFixed(0)} MB`);
  const mb = (bytes: number | undefined) => (bytes === undefined ? 'n/a' : `${(bytes / 1e6).toFixed(0)} MB`);
  log(
    `  WAL archives, all clusters: ${mb(archiveBefore)} at the start, ${mb(archiveHalfway)} halfway, ${mb(archiveAfter)} at the end`,
  );

  for (const c of clusters)
    await client.schedule
      .getHandle(`pgops-backup/${c.name}`)
      .delete()
      .catch(() => undefined);
  for (const w of workers) await w.kill('SIGTERM');
  for (const c of clusters) await stopLocalClusterIfRunning(c.cluster);
  await temporal.stop();
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => mochaHooks.afterAll.call(undefined));
