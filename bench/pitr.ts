// Benchmark: delayed-replica PITR (procedures.md §4) through delayedReplicaPitrWorkflow against
// bare PostgreSQL, side by side in one run, on a real primary, WAL archive and archive-only
// delayed replica (src/dev/delayedReplicaSet.ts) with a Temporal dev server and a worker process.
//  1. Pause latency, N runs: a fresh bad DELETE on the primary (held back by the delay), then the
//     bare pause (connect + SELECT pg_wal_replay_pause(), and the statement alone on an open
//     session; resumed at once, no target is set), then the workflow to that xid with then=pause,
//     returnToDelay: its first step pauses; the bench waits for the "inspect" hold, sends
//     "resume", and takes result.pause.latencyMs (workflow start → replay paused). A warm-up run
//     is made first and left out.
//  2. Targeted replay, measured fairly: walMB of WAL in 100+ separate commits (the delay holds
//     commit records, so the replica stays at the start of that WAL), a bad DELETE after it,
//     archived. The replica is stopped and copied once; then, for `rounds` rounds in alternating
//     order, each side starts from that copy put back in place, with the page cache dropped:
//     the workflow to the bad xid (then=pause, no return to delay), start → result, with its WAL
//     read-ahead (the default) and with it off (replayReadAhead: 0); the seed's manual runbook
//     by a plain script on the same replica (pause, ALTER SYSTEM the target with delay 0,
//     restart, poll on one session until paused at the target); the runbook with the
//     prefetch settings a DBA would not bother with during an incident (tunings); and the limit,
//     the runbook with every segment already in pg_wal and in the page cache, no restore_command
//     (the copy not counted): replay that never waits for WAL.
// Usage: npx tsx bench/pitr.ts [pauseRuns=20] [walMB=1024] [rounds=2]
import { spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { Client as PgClient } from 'pg';
import { tsToMs } from '@temporalio/common/lib/time';
import { stringify } from 'yaml';
import { startTemporalDevServer, type RunningDevServer } from '../src/dev/temporalDevServer';
import { freePort } from '../src/dev/ports';
import { createDelayedReplicaSet, type ReplicaSet } from '../src/dev/delayedReplicaSet';
import { localTargetOf, pgCtl, startLocalCluster, stopLocalClusterIfRunning } from '../src/dev/localPostgres';
import { clientConfig, waitForSql, withSession, type PgEndpoint } from '../src/drivers/postgres/session';
import { archiveEndLsn } from '../src/drivers/postgres/archive/walInspect';
import { runCommand } from '../src/drivers/exec';
import { compareLsn, lsnBytesBetween } from '../src/common/lsn';
import { ensureSearchAttributes } from '../src/worker';
import { progressQuery, resumeSignal } from '../src/contract/definitions';
import type { DelayedReplicaPitrResult } from '../src/workflows/delayedReplicaPitr';
import { printTimeline } from './timeline';
import { generateWal, untilPaused } from './replayRuns';

const pauseRuns = Number(process.argv[2] ?? 20);
const walMB = Number(process.argv[3] ?? 1024);
if (!Number.isInteger(pauseRuns) || pauseRuns < 1 || pauseRuns > 500)
  throw new Error('pauseRuns must be an integer from 1 to 500');
if (!Number.isFinite(walMB) || walMB < 16 || walMB > 8192) throw new Error('walMB must be a number from 16 to 8192');
const rateRounds = Number(process.argv[4] ?? 2);
if (!Number.isInteger(rateRounds) || rateRounds < 1 || rateRounds > 20)
  throw new Error('rounds must be an integer from 1 to 20');

/** Settings tried on top of the runbook (each restarts with the target, so postmaster-level ones apply). */
const tunings: Array<[string, Record<string, string>]> = [
  [
    'prefetch (recovery_prefetch on, maintenance_io_concurrency 64, wal_decode_buffer_size 4MB)',
    { recovery_prefetch: 'on', maintenance_io_concurrency: '64', wal_decode_buffer_size: '4MB' },
  ],
];
/** The same replica in the catalog with the WAL read-ahead off: the workflow as it was before it. */
const CLUSTER_NO_READ_AHEAD = 'orders-delayed-no-read-ahead';

interface RateRun {
  ms: number;
  /** Where replay paused. */
  lsn: string;
  detail?: string;
}

/** Delay during the pause runs: each run's return to delay waits up to this for its bad commit. */
const PAUSE_DELAY = '60s';
/** Delay during the rate run: must outlast generating the WAL, archiving, copying and the pause. */
const RATE_DELAY = '30min';
const ORDERS = 100_000;
/** Pause run i deletes ids i*50+1 … i*50+50; the rate run deletes ids above RATE_DELETE_FROM. */
const RATE_DELETE_FROM = 60_000;
const MIN_COMMITS = 100;
const CLUSTER = 'orders-delayed';
const RUNBOOK = 'manual runbook (pause → paused at the target)';
const LIMIT = 'limit: runbook, every segment already in pg_wal';
const MB = 1024 * 1024;

const t0Bench = performance.now();
const log = (line: string) =>
  console.log(`[${((performance.now() - t0Bench) / 1000).toFixed(1).padStart(6)} s] ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const worst = (xs: number[]) => Math.max(...xs);
const best = (xs: number[]) => Math.min(...xs);
const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const mbps = (bytes: number, millis: number) => bytes / MB / (millis / 1000);

const query = <T>(endpoint: PgEndpoint, sql: string, params: unknown[] = []) =>
  withSession(endpoint, async (c) => (await c.query(sql, params)).rows[0] as T);

async function commit(endpoint: PgEndpoint, statements: string[]): Promise<string> {
  return withSession(endpoint, async (c) => {
    await c.query('BEGIN');
    for (const sql of statements) await c.query(sql);
    const xid = String((await c.query('SELECT pg_current_xact_id()::text AS x')).rows[0].x);
    await c.query('COMMIT');
    return xid;
  });
}

async function waitForArchive(set: ReplicaSet): Promise<void> {
  const lsn = (await query<{ l: string }>(set.primaryEndpoint, 'SELECT pg_current_wal_insert_lsn()::text AS l')).l;
  // Write what we wait for: a commit record past `lsn`, then a segment switch. Right after a
  // switch, `lsn` is the first position of a segment with nothing in it, and archive_timeout does
  // not switch a segment without records: waiting for other activity once hung here for 300 s.
  await query(set.primaryEndpoint, 'SELECT txid_current()::text AS x');
  await query(set.primaryEndpoint, 'SELECT pg_switch_wal()::text AS l');
  const started = Date.now();
  let nextNote = started + 10_000;
  for (;;) {
    const end = archiveEndLsn(set.archiveDir);
    if (end && compareLsn(end, lsn) > 0) return;
    if (Date.now() > nextNote) {
      nextNote += 10_000;
      const a = await query<{ archived: string; failed: string; last_failed: string | null }>(
        set.primaryEndpoint,
        'SELECT archived_count::text AS archived, failed_count::text AS failed, last_failed_wal AS last_failed FROM pg_stat_archiver',
      );
      log(
        `  still waiting for the archive to pass ${lsn} (it ends at ${end}); pg_stat_archiver: ${a.archived} archived, ${a.failed} failed (last failed ${a.last_failed ?? 'none'})`,
      );
    }
    if (Date.now() - started > 300_000)
      throw new Error(`the archive did not reach ${lsn} within 300 s (it ends at ${end})`);
    await sleep(100);
  }
}

async function waitForReplicaToSee(set: ReplicaSet, sql: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const row = await query<{ ok: boolean }>(set.replicaEndpoint, sql).catch(() => undefined);
    if (row?.ok) return;
    if (Date.now() > deadline)
      throw new Error(`the delayed replica did not replay within ${timeoutMs / 1000} s: ${sql}`);
    await sleep(250);
  }
}

/** pg_wal_replay_resume() only where no recovery target is in force: at a paused target it promotes. */
async function resumeWithoutTarget(c: PgClient): Promise<void> {
  const r = (
    await c.query(`SELECT pg_is_in_recovery() AS rec, current_setting('recovery_target') || current_setting('recovery_target_xid')
      || current_setting('recovery_target_lsn') || current_setting('recovery_target_time') || current_setting('recovery_target_name') AS targets`)
  ).rows[0];
  if (!r.rec || r.targets !== '')
    throw new Error(
      `refusing pg_wal_replay_resume(): in recovery ${r.rec}, recovery target settings ${JSON.stringify(r.targets)} (resume at a target would promote)`,
    );
  await c.query('SELECT pg_wal_replay_resume()');
}

/** Waits until the workflow's progress query reports `step`; throws if the workflow ends first. */
async function untilStep(handle: WorkflowHandle, step: string, timeoutMs: number): Promise<void> {
  let ended: { error?: unknown } | undefined;
  const watch = handle.result().then(
    () => (ended = {}),
    (error: unknown) => (ended = { error }),
  );
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    if (ended) {
      await watch;
      throw ended.error ?? new Error(`the workflow ended before reaching step ${step} (last step ${last})`);
    }
    const progress = await handle.query(progressQuery).catch(() => undefined);
    last = progress?.step ?? last;
    if (last === step) return;
    if (Date.now() > deadline)
      throw new Error(`the workflow did not reach step ${step} within ${timeoutMs / 1000} s (step ${last})`);
    await sleep(100);
  }
}

interface ActivitySpan {
  name: string;
  scheduled: number;
  started?: number;
  completed?: number;
  result?: unknown;
}
/** Server-side times of each activity of a workflow (the last attempt of each type), from its history. */
async function activitySpans(handle: WorkflowHandle): Promise<Map<string, ActivitySpan>> {
  const history = await handle.fetchHistory();
  const byEvent = new Map<string, ActivitySpan>();
  const byName = new Map<string, ActivitySpan>();
  for (const e of history.events ?? []) {
    const at = tsToMs(e.eventTime);
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) {
      const span: ActivitySpan = { name: scheduled.activityType?.name ?? '?', scheduled: at };
      byEvent.set(String(e.eventId), span);
      byName.set(span.name, span);
    }
    const started = byEvent.get(String(e.activityTaskStartedEventAttributes?.scheduledEventId));
    if (started && e.activityTaskStartedEventAttributes) started.started = at;
    const completed = byEvent.get(String(e.activityTaskCompletedEventAttributes?.scheduledEventId));
    if (completed && e.activityTaskCompletedEventAttributes) {
      completed.completed = at;
      const data = e.activityTaskCompletedEventAttributes.result?.payloads?.[0]?.data;
      if (data) completed.result = JSON.parse(Buffer.from(data).toString());
    }
  }
  return byName;
}

/**
 * Copies the archive's segments of the copy's timeline from `fromFile` on into `pgdata`/pg_wal
 * as the server's OS user (overwriting segments a restartpoint recycled under those names); returns their names.
 */
async function stageArchiveInPgWal(archiveDir: string, fromFile: string, pgdata: string, osUser: string) {
  const timeline = fromFile.slice(0, 8);
  const segments = readdirSync(archiveDir)
    .filter((f) => /^[0-9A-F]{24}$/.test(f) && f.startsWith(timeline) && f >= fromFile)
    .sort();
  for (const f of segments) {
    const copied = await runCommand('cp', ['-f', join(archiveDir, f), join(pgdata, 'pg_wal', f)], { asUser: osUser });
    if (copied.code !== 0) throw new Error(`cp of ${f} into pg_wal failed: ${copied.stderr}`);
  }
  return segments;
}

function diskUsedMb(dir: string): Promise<number> {
  return runCommand('du', ['-sm', dir]).then((r) => Number(r.stdout.split(/\s/)[0] ?? NaN));
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'pgops-bench-pitr-'));
  chmodSync(root, 0o755);
  let server: RunningDevServer | undefined;
  let set: ReplicaSet | undefined;
  let worker: ChildProcess | undefined;
  let connection: Connection | undefined;
  let cleaned: Promise<void> | undefined;
  const workerLog = join(root, 'worker.log');
  const workerLogTail = () =>
    existsSync(workerLog)
      ? readFileSync(workerLog, 'utf8').trimEnd().split('\n').slice(-15).join('\n')
      : '(no worker log)';
  const cleanup = () =>
    (cleaned ??= (async () => {
      if (worker && worker.exitCode === null && worker.signalCode === null) {
        const w = worker;
        const gone = new Promise<void>((r) => w.once('exit', () => r()));
        w.kill('SIGTERM');
        const timer = setTimeout(() => w.kill('SIGKILL'), 15_000);
        await gone;
        clearTimeout(timer);
      }
      await connection?.close().catch(() => undefined);
      await set?.stop().catch(() => undefined);
      await server?.stop().catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    })());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping every server and process this benchmark started`);
      void cleanup().finally(() => process.exit(130));
    });
  }

  try {
    log(`pitr benchmark: ${pauseRuns} pause runs, ${walMB} MB of WAL; scratch ${root}`);
    server = await startTemporalDevServer({
      grpcPort: await freePort(),
      uiPort: await freePort(),
      dataDir: join(root, 'temporal'),
      headless: true,
    });
    await ensureSearchAttributes(server.address, server.namespace);
    log(`temporal dev server on ${server.address}`);
    set = await createDelayedReplicaSet({ dir: join(root, 'set'), delay: PAUSE_DELAY });
    const { primaryEndpoint, replicaEndpoint, replica } = set;
    log(
      `primary on port ${set.primary.port}, archive-only replica on port ${replica.port} with recovery_min_apply_delay ${PAUSE_DELAY}`,
    );

    const catalogPath = join(root, 'pgops.yaml');
    writeFileSync(
      catalogPath,
      stringify({
        clusters: {
          orders: { target: localTargetOf(set.primary) },
          [CLUSTER]: {
            target: localTargetOf(replica),
            replicaOf: 'orders',
            walArchive: set.archiveDir,
            exportDir: join(root, 'exports'),
          },
          [CLUSTER_NO_READ_AHEAD]: {
            target: localTargetOf(replica),
            replicaOf: 'orders',
            walArchive: set.archiveDir,
            exportDir: join(root, 'exports'),
            replayReadAhead: 0,
          },
        },
      }),
    );
    const taskQueue = 'pg-ops-bench-pitr';
    const workerLogFd = openSync(workerLog, 'a');
    worker = spawn(process.execPath, ['--require', 'tsx/cjs', resolve(__dirname, '../src/worker.ts')], {
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: server.address,
        TEMPORAL_NAMESPACE: server.namespace,
        PGOPS_TASK_QUEUE: taskQueue,
        PGOPS_CONFIG: catalogPath,
        PGOPS_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', workerLogFd, workerLogFd],
    });
    closeSync(workerLogFd);
    worker.once('exit', (code, signal) => {
      if (cleaned) return;
      console.error(
        `the worker exited unexpectedly (code ${code}, signal ${signal}); its log ends:\n${workerLogTail()}`,
      );
      void cleanup().finally(() => process.exit(1));
    });
    connection = await Connection.connect({ address: server.address });
    const client = new Client({ connection, namespace: server.namespace });

    await commit(primaryEndpoint, [
      'CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL)',
      `INSERT INTO orders SELECT g, 'customer-' || (g % 97) FROM generate_series(1, ${ORDERS}) g`,
    ]);
    await waitForArchive(set);
    await waitForReplicaToSee(set, `SELECT count(*) = ${ORDERS} AS ok FROM orders`, 120_000);
    log(`orders (${ORDERS} rows) replayed on the delayed replica`);

    // ---- 1. pause latency ---------------------------------------------------------------------
    const wfMs: number[] = [];
    const bareConnectMs: number[] = [];
    const bareStatementMs: number[] = [];
    const runMs: number[] = [];
    const states = new Map<string, number>();
    for (let i = 0; i <= pauseRuns; i++) {
      const runStart = performance.now();
      const xid = await commit(primaryEndpoint, [
        `DELETE FROM orders WHERE id BETWEEN ${i * 50 + 1} AND ${i * 50 + 50}`,
      ]);
      const committed = performance.now();
      await waitForArchive(set);
      const archivedMs = performance.now() - committed;

      // Bare: what an operator types, on the same replica in the same state (holding the commit).
      const session = new PgClient(clientConfig(replicaEndpoint));
      session.on('error', () => undefined);
      const tb = performance.now();
      await session.connect();
      await session.query('SELECT pg_wal_replay_pause()');
      const connectMs = performance.now() - tb;
      await resumeWithoutTarget(session);
      const ts = performance.now();
      await session.query('SELECT pg_wal_replay_pause()');
      const statementMs = performance.now() - ts;
      await resumeWithoutTarget(session);
      await session.end();

      const handle = await client.workflow.start('delayedReplicaPitrWorkflow', {
        taskQueue,
        workflowId: `bench-pitr-pause-${i}-${Date.now()}`,
        args: [{ cluster: CLUSTER, target: { xid }, then: 'pause', returnToDelay: true }],
      });
      const started = performance.now();
      let result: DelayedReplicaPitrResult;
      try {
        await untilStep(handle, 'inspect', 300_000);
        await handle.signal(resumeSignal, { by: 'bench/pitr.ts' });
        result = (await handle.result()) as DelayedReplicaPitrResult;
      } catch (err) {
        console.error(
          `pause run ${i} failed: bad DELETE xid ${xid} committed, archived ${(archivedMs / 1000).toFixed(1)} s later, workflow started ${((started - committed) / 1000).toFixed(1)} s after the commit (replica delay ${PAUSE_DELAY})`,
        );
        throw err;
      }
      if (result.finalState !== 'delayed replica again')
        throw new Error(`pause run ${i}: the workflow ended '${result.finalState}', not back to delay`);
      const took = performance.now() - runStart;
      const label = i === 0 ? 'warm-up' : `pause run ${i}/${pauseRuns}`;
      log(
        `${label}: workflow ${result.pause.latencyMs} ms (${result.pause.state} at ${result.pause.replayLsn}), bare connect+pause ${ms(connectMs)} ms, statement ${ms(statementMs)} ms; xid ${xid} archived in ${ms(archivedMs)} ms, stopped before at ${result.reached.replayLsn}; run ${(took / 1000).toFixed(1)} s`,
      );
      if (i === 0) continue;
      if (process.env.PGOPS_BENCH_TIMELINE && i === pauseRuns) await printTimeline(client, handle.workflowId, '      ');
      wfMs.push(result.pause.latencyMs);
      bareConnectMs.push(connectMs);
      bareStatementMs.push(statementMs);
      runMs.push(took);
      states.set(result.pause.state, (states.get(result.pause.state) ?? 0) + 1);
    }

    // ---- 2. replay rate -----------------------------------------------------------------------
    await commit(primaryEndpoint, ['CREATE TABLE bulk (id bigint, pad text)']);
    // A checkpoint the replica replays now (while its delay is short): its restartpoint, made when
    // it is stopped for the copy, then sits just before the generated WAL, where both replays begin.
    await query(primaryEndpoint, 'CHECKPOINT');
    const checkpointLsn = (
      await query<{ l: string }>(primaryEndpoint, 'SELECT checkpoint_lsn::text AS l FROM pg_control_checkpoint()')
    ).l;
    await waitForArchive(set);
    await waitForReplicaToSee(set, `SELECT pg_last_wal_replay_lsn() > '${checkpointLsn}'::pg_lsn AS ok`, 120_000);
    // Raising the delay is safe at any time (only lowering it while replaying is not).
    await query(replicaEndpoint, `ALTER SYSTEM SET recovery_min_apply_delay = '${RATE_DELAY}'`);
    await query(replicaEndpoint, 'SELECT pg_reload_conf()');
    for (let tries = 0; ; tries++) {
      const shown = (
        await query<{ recovery_min_apply_delay: string }>(replicaEndpoint, 'SHOW recovery_min_apply_delay')
      ).recovery_min_apply_delay;
      if (shown === RATE_DELAY) break;
      if (tries > 50)
        throw new Error(`the replica did not take recovery_min_apply_delay = ${RATE_DELAY} (it shows ${shown})`);
      await sleep(100);
    }
    log(`replica replayed a fresh checkpoint (${checkpointLsn}); its delay raised to ${RATE_DELAY} for the rate run`);

    const tg = performance.now();
    const { from: genStart, written, commits: made } = await generateWal(primaryEndpoint, walMB, MIN_COMMITS, log);
    const genMs = performance.now() - tg;
    const badXid = await commit(primaryEndpoint, [`DELETE FROM orders WHERE id > ${RATE_DELETE_FROM}`]);
    log(
      `generated ${(written / MB).toFixed(0)} MB of WAL in ${made} commits in ${(genMs / 1000).toFixed(1)} s; bad DELETE after it: xid ${badXid}`,
    );
    await waitForArchive(set);
    log(`archive holds it (ends at ${archiveEndLsn(set.archiveDir)}); scratch now ${await diskUsedMb(root)} MB`);

    const held = (
      await query<{ l: string; s: string }>(
        replicaEndpoint,
        'SELECT pg_last_wal_replay_lsn()::text AS l, pg_get_wal_replay_pause_state() AS s',
      )
    ).l;
    const heldInto = Number(lsnBytesBetween(genStart, held));
    log(
      `the replica is held at ${held}: ${heldInto <= 0 ? 'before' : `${(heldInto / MB).toFixed(1)} MB into`} the ${(written / MB).toFixed(0)} MB generated from ${genStart}`,
    );
    if (heldInto > written * 0.05)
      console.warn(
        `WARNING: the replica already replayed ${(heldInto / MB).toFixed(0)} MB of the generated WAL: the delay did not hold it at the start`,
      );

    // The rounds. The replica is stopped once and kept as a pristine copy; before each side it is
    // put back from that copy and started (still delayed, held at the start of the generated WAL),
    // and the page cache is dropped, so every side replays the same WAL from the same archive,
    // cold, on the same data directory and port.
    await pgCtl(replica, ['stop', '-m', 'fast', '-w', '-t', '300']);
    const pristine = join(root, 'replica-pristine');
    const copied = await runCommand('cp', ['-a', replica.pgdata, pristine]);
    if (copied.code !== 0) throw new Error(`cp -a of the stopped replica failed: ${copied.stderr}`);
    const controldata = await runCommand(join(replica.binDir, 'pg_controldata'), ['-D', pristine], {
      asUser: replica.osUser,
    });
    const copyRedo = /Latest checkpoint's REDO location:\s+(\S+)/.exec(controldata.stdout)?.[1];
    const copyRedoFile = /Latest checkpoint's REDO WAL file:\s+(\S+)/.exec(controldata.stdout)?.[1];
    if (!copyRedoFile) throw new Error(`pg_controldata of the copy shows no REDO WAL file:\n${controldata.stdout}`);
    const putReplicaBack = async () => {
      await stopLocalClusterIfRunning(replica, 'fast');
      rmSync(replica.pgdata, { recursive: true, force: true });
      const back = await runCommand('cp', ['-a', pristine, replica.pgdata]);
      if (back.code !== 0) throw new Error(`restoring the replica from its copy failed: ${back.stderr}`);
      await startLocalCluster(replica);
      await waitForSql(replicaEndpoint, { timeoutMs: 600_000 });
    };
    const dropCaches = async () => {
      await runCommand('sync', []);
      try {
        writeFileSync('/proc/sys/vm/drop_caches', '3');
        return true;
      } catch {
        return false; // not root: the sides still alternate, but replay from a warm cache
      }
    };

    /** The PITR workflow, end to end: start → result (paused at the target, no return to delay). */
    const workflowSide = async (cluster: string): Promise<RateRun> => {
      const t = performance.now();
      const handle = await client.workflow.start('delayedReplicaPitrWorkflow', {
        taskQueue,
        workflowId: `bench-pitr-rate-${Date.now()}`,
        args: [{ cluster, target: { xid: badXid }, then: 'pause', returnToDelay: false }],
      });
      const result = (await handle.result()) as DelayedReplicaPitrResult;
      const ms = performance.now() - t;
      if (process.env.PGOPS_BENCH_TIMELINE) await printTimeline(client, handle.workflowId, '      ');
      const spans = await activitySpans(handle);
      const steps = [...spans.values()]
        .map((a) => `${a.name} ${a.completed === undefined ? '?' : ((a.completed - a.scheduled) / 1000).toFixed(2)}`)
        .join(', ');
      type RestartResult = { phasesMs?: Record<string, number> };
      const phases =
        (spans.get('restartReplicaIfPending')?.result as RestartResult | undefined)?.phasesMs ??
        (spans.get('restartAndWaitForReplayTarget')?.result as { restart?: RestartResult } | undefined)?.restart
          ?.phasesMs;
      return {
        ms,
        lsn: result.reached.replayLsn,
        detail: [
          `steps (s): ${steps}`,
          `check phases (ms): ${JSON.stringify(result.checked.phasesMs ?? {})}`,
          `commit at ${result.checked.targetLsn}, archive now ends at ${archiveEndLsn(set!.archiveDir)}`,
          `archive search: ${JSON.stringify(result.checked.archiveSearch ?? {})}`,
          `restart phases (ms): ${JSON.stringify(phases ?? {})}`,
          `watched ${result.reached.ms} ms`,
          `read-ahead: ${JSON.stringify(result.reached.readAhead ?? 'off')}`,
        ].join('; '),
      };
    };
    /**
     * The seed's manual runbook as a plain script: pause, set the target with delay 0, restart
     * the replica, wait until replay pauses at the target (polled every 100 ms). `extra`: more
     * settings written with the target (the tuning a DBA would not bother with by hand).
     * `whileStopped`: work between the stop and the start, not counted; it returns a note.
     */
    const runbookSide = async (
      extra: Record<string, string>,
      whileStopped?: () => Promise<string>,
    ): Promise<RateRun> => {
      const t = performance.now();
      await query(replicaEndpoint, 'SELECT pg_wal_replay_pause()');
      const settings: Record<string, string> = {
        recovery_target_xid: badXid,
        recovery_target_inclusive: 'off',
        recovery_target_action: 'pause',
        recovery_min_apply_delay: '0',
        ...extra,
      };
      await withSession(replicaEndpoint, async (c) => {
        for (const [name, value] of Object.entries(settings)) await c.query(`ALTER SYSTEM SET ${name} = '${value}'`);
      });
      const tStop = performance.now();
      await pgCtl(replica, ['stop', '-m', 'fast', '-w', '-t', '300']);
      const tStopped = performance.now();
      const note = await whileStopped?.();
      const tStart = performance.now();
      await startLocalCluster(replica);
      const tStarted = performance.now();
      const paused = await untilPaused(replicaEndpoint, 1_800_000);
      const phases = {
        settings: tStop - t,
        stop: tStopped - tStop,
        start: tStarted - tStart,
        watch: paused.at - tStarted,
      };
      return {
        ms: paused.at - t - (tStart - tStopped),
        lsn: paused.lsn,
        detail: `phases (ms): ${Object.entries(phases)
          .map(([k, v]) => `${k} ${v.toFixed(0)}`)
          .join(', ')}${note ? `; ${note}` : ''}`,
      };
    };
    /**
     * The limit: the runbook with every segment it needs already in pg_wal, in the page cache, and
     * no restore_command, so replay never waits for WAL. The copy into pg_wal, the page cache drop
     * (the data files cold, as on every side) and the read of the WAL back are not counted.
     */
    const limitSide = () =>
      runbookSide({ restore_command: '' }, async () => {
        const staged = await stageArchiveInPgWal(set!.archiveDir, copyRedoFile, replica.pgdata, replica.osUser);
        await dropCaches();
        for (const f of staged) readFileSync(join(replica.pgdata, 'pg_wal', f));
        return `${staged.length} segments put in pg_wal and read into the page cache beforehand (not counted)`;
      });
    const sides: Array<[string, () => Promise<RateRun>]> = [
      ['workflow (start → result)', () => workflowSide(CLUSTER)],
      ['workflow, WAL read-ahead off', () => workflowSide(CLUSTER_NO_READ_AHEAD)],
      [RUNBOOK, () => runbookSide({})],
      [LIMIT, limitSide],
      ...tunings.map(
        ([name, extra]) => [`runbook + ${name}`, () => runbookSide(extra)] as [string, () => Promise<RateRun>],
      ),
    ];
    const runs = new Map<string, RateRun[]>(sides.map(([name]) => [name, []]));
    let cold = true;
    for (let round = 0; round < rateRounds; round++) {
      // Each round in the other order: workflow first, then runbook first, and so on.
      const order = round % 2 === 0 ? sides : [...sides].reverse();
      for (const [name, side] of order) {
        await putReplicaBack();
        cold = (await dropCaches()) && cold;
        const logFrom = existsSync(replica.logFile) ? statSync(replica.logFile).size : 0;
        const run = await side();
        if (process.env.PGOPS_BENCH_SERVER_LOG)
          console.log(
            readFileSync(replica.logFile, 'utf8')
              .slice(logFrom)
              .split('\n')
              .filter((l) => /redo|shut|restartpoint|consistent|ready|stopping|pausing|starting/.test(l))
              .map((l) => `      ${l}`)
              .join('\n'),
          );
        runs.get(name)!.push(run);
        log(
          `round ${round + 1}/${rateRounds}: ${name}: ${(run.ms / 1000).toFixed(2)} s, paused at ${run.lsn}${run.detail ? `; ${run.detail}` : ''}`,
        );
      }
    }
    await putReplicaBack(); // delayed again, for the clean-up

    // ---- summary --------------------------------------------------------------------------------
    const wfMed = median(wfMs);
    const wfWorst = worst(wfMs);
    console.log(`\n=== delayed-replica PITR benchmark (pauseRuns ${pauseRuns}, walMB ${walMB}) ===`);
    console.log(
      `\n1. pause latency over ${pauseRuns} runs (a warm-up run left out), replica delay ${PAUSE_DELAY}, each run a fresh bad DELETE held by the delay`,
    );
    console.log('                                                          median     worst      best');
    const row3 = (name: string, xs: number[]) =>
      console.log(
        `  ${name.padEnd(54)}${ms(median(xs)).padStart(7)} ms${ms(worst(xs)).padStart(7)} ms${ms(best(xs)).padStart(7)} ms`,
      );
    row3('workflow start → replay paused (result.pause.latencyMs)', wfMs);
    row3('bare: connect + SELECT pg_wal_replay_pause()', bareConnectMs);
    row3('bare: SELECT pg_wal_replay_pause() on an open session', bareStatementMs);
    console.log(
      `  aim: workflow median ≤ 50 ms (${wfMed <= 50 ? 'met' : 'NOT met'}), worst ≤ 100 ms (${wfWorst <= 100 ? 'met' : 'NOT met'})`,
    );
    console.log(`  pause state the workflow saw: ${[...states].map(([s, n]) => `'${s}' ×${n}`).join(', ')}`);
    console.log(
      `  whole run (delete, archive, bare pause, PITR to the xid, hold, resume, back to delay): median ${(median(runMs) / 1000).toFixed(1)} s, worst ${(worst(runMs) / 1000).toFixed(1)} s`,
    );

    const replayed = copyRedo ? Number(lsnBytesBetween(copyRedo, runs.get(sides[0]![0])![0]!.lsn)) : NaN;
    console.log(
      `\n2. targeted replay: ${(written / MB).toFixed(0)} MB of WAL in ${made} commits, then a bad DELETE (xid ${badXid}); ${rateRounds} rounds, the order reversed every round, the replica put back from one stopped copy before each side${cold ? ', page cache dropped before each' : ' (page cache NOT dropped: not root)'}`,
    );
    const lsns = new Set([...runs.values()].flat().map((r) => r.lsn));
    console.log(
      `  every run paused at ${[...lsns].join(', ')}${lsns.size === 1 ? ' (the same LSN)' : ' (DIFFERENT LSNs)'}; ${(replayed / MB).toFixed(0)} MB replayed from the copy's REDO ${copyRedo}`,
    );
    const runbookMedian = median(runs.get(RUNBOOK)!.map((r) => r.ms));
    console.log(`  ${''.padEnd(50)}  median    MB/s   ÷ runbook   each run (s)`);
    for (const [name] of sides) {
      const times = runs.get(name)!.map((r) => r.ms);
      const med = median(times);
      console.log(
        `  ${name.padEnd(50)}${(med / 1000).toFixed(2).padStart(6)} s${mbps(replayed, med).toFixed(0).padStart(7)}${(runbookMedian / med).toFixed(2).padStart(11)}   ${times.map((t) => (t / 1000).toFixed(2)).join(' ')}`,
      );
    }
    console.log("  (÷ runbook: the runbook's median time over this side's; above 1 is faster than the runbook)");
    const limitMedian = median(runs.get(LIMIT)!.map((r) => r.ms));
    const workflowMedian = median(runs.get(sides[0]![0])!.map((r) => r.ms));
    console.log(
      `  workflow ÷ limit (the limit's median time over the workflow's): ${(limitMedian / workflowMedian).toFixed(2)} (aim ≥ 0.90: ${limitMedian / workflowMedian >= 0.9 ? 'met' : 'NOT met'}); limit ÷ runbook ${(runbookMedian / limitMedian).toFixed(2)}, the most any replay from this archive could gain`,
    );
    console.log(`  scratch space at the end: ${await diskUsedMb(root)} MB (removed now)`);
  } catch (err) {
    if (!cleaned) console.error(`the worker's log (warnings and errors) ends:\n${workerLogTail()}`);
    throw err;
  } finally {
    await cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
