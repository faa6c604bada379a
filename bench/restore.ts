// Benchmark: in-place restore time against database size, rbd rollback against rbd clone-swap side by
// side in one run (and btrfs at the same sizes), with PostgreSQL's write throughput after each.
//   - Per size: the database filled to it; then, per round, each method (the order alternated each
//     round): a fresh backup, a change, the page cache dropped, rollbackRestoreWorkflow of that
//     backup (no safety snapshot, flatten never): the workflow start → result and its rollback step.
//   - pgbench (random single-row updates over the whole table, 4 clients) for `tpsSeconds` right
//     after the restore; after a clone-swap also while `rbd flatten` runs (per-second figures while
//     it ran) and after it, with the flatten's time.
// RBD runs on a BlueStore OSD on a sparse file (../shared/design/ceph-bluestore.md).
// Aims (issue 22): the clone-swap's restore step at 16 GB within 1.2× of its 1 GB time; the whole
// workflow at 16 GB under 10 s; TPS during the flatten at least half the TPS after it.
// Usage: npm run bench:restore [-- sizesMB storages rounds tpsSeconds flattenConcurrency]
//   e.g. npm run bench:restore -- 1024,4096,16384 rbd,btrfs 1 15
import { existsSync, readdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { mochaHooks, testEnv } from '../test/harness/testEnv';
import type { BackupFixture, StorageUnderTest } from '../test/harness/backupFixture';
import type { ClusterRegistry } from '../src/activities/clusterRegistry';
import { runCommand } from '../src/drivers/exec';
import { endpointOf } from '../src/dev/localPostgres';
import { RbdSnapshotDriver } from '../src/drivers/storage/rbd';
import type { RbdStorageConfig } from '../src/config/schema';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';
import {
  archiveCaughtUp,
  bluestoreCephArgs,
  execute,
  fillTo,
  freeBytes,
  log,
  MB,
  objectStore,
  s,
  why,
  withBenchFixture,
} from './benchSupport';

const sizes = (process.argv[2] ?? '1024,4096,16384').split(',').map(Number);
const storages = (process.argv[3] ?? 'rbd,btrfs').split(',') as StorageUnderTest[];
const rounds = Number(process.argv[4] ?? 1);
const tpsSeconds = Number(process.argv[5] ?? 15);
/** Objects the flatten copies at once (storage.flattenConcurrency; default: the driver's). */
const flattenConcurrency = process.argv[6] ? Number(process.argv[6]) : undefined;
const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? (a / b).toFixed(2) : '–');

type Method = 'rollback' | 'clone-swap' | 'btrfs';
interface Run {
  storage: StorageUnderTest;
  method: Method;
  sizeMB: number;
  dbMB: number;
  workflowMs: number;
  stepMs: number;
  tpsAfterRestore: number;
  flattenMs?: number;
  tpsDuringFlatten?: number;
  tpsAfterFlatten?: number;
}
const runs: Run[] = [];
const notes: string[] = [];
/** The OSD's BlueStore block file (created by the OSD when it starts) and its size. */
let bluestore: { file: string; bytes: number } | undefined;

/** pgbench with -P 1: the per-second tps figures, and the whole run's. */
async function pgbench(
  fx: BackupFixture,
  seconds: number,
  maxId: number,
): Promise<{ tps: number; perSecond: number[] }> {
  const script = join(dirname(fx.archiveDir), 'bench-update.sql');
  writeFileSync(
    script,
    '\\set id random(1, :maxid)\nUPDATE filler SET pad = md5(random()::text) || substr(pad, 33) WHERE id = :id;\n',
  );
  const { host, port, user, database } = endpointOf(fx.cluster);
  const bin = join(fx.cluster.binDir, 'pgbench');
  const args = [
    '-n',
    '-h',
    host,
    '-p',
    String(port),
    '-U',
    user,
    '-c',
    '4',
    '-j',
    '2',
    '-T',
    String(seconds),
    '-P',
    '1',
  ];
  const result = await runCommand(bin, [...args, '-D', `maxid=${maxId}`, '-f', script, database], {
    timeoutMs: (seconds + 60) * 1000,
  });
  if (result.code !== 0) throw new Error(`pgbench failed: ${result.stderr.trim().split('\n').at(-1)}`);
  const perSecond = [...result.stderr.matchAll(/progress: [\d.]+ s, ([\d.]+) tps/g)].map((m) => Number(m[1]));
  const tps = Number(/tps = ([\d.]+)/.exec(result.stdout)?.[1] ?? Number.NaN);
  return { tps, perSecond };
}

function dropCaches(): void {
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3');
  } catch {
    notes.push('the page cache could not be dropped (not root): restores ran with a warm cache');
  }
}

/** The rbd methods measured: both unless PGOPS_BENCH_RESTORE_METHODS names one (clone-swap or rollback). */
const rbdMethods = (process.env.PGOPS_BENCH_RESTORE_METHODS ?? 'rollback,clone-swap').split(',') as Method[];

/** Every archived segment but the newest few: what a fill leaves behind, needed by no backup of this run. */
async function pruneArchivedSegments(fx: BackupFixture): Promise<void> {
  const last = (await fx.sql<{ w: string | null }>('SELECT last_archived_wal AS w FROM pg_stat_archiver'))[0]!.w;
  if (!last || !/^[0-9A-F]{24}$/.test(last)) return;
  const segments = readdirSync(fx.archiveDir)
    .filter((n) => /^[0-9A-F]{24}$/.test(n) && n < last)
    .sort();
  for (const name of segments.slice(0, -4)) unlinkSync(join(fx.archiveDir, name));
}

/** Archived segments from before the backup are not needed by it: the archive would otherwise grow by the fill. */
function pruneArchiveBefore(fx: BackupFixture, backup: SnapshotBackupResult['backup']): void {
  const first = /START WAL LOCATION: [0-9A-F/]+ \(file ([0-9A-F]{24})\)/.exec(backup.labelfile ?? '')?.[1];
  if (!first) return;
  for (const name of readdirSync(fx.archiveDir))
    if (/^[0-9A-F]{24}$/.test(name) && name.slice(8) < first.slice(8)) unlinkSync(join(fx.archiveDir, name));
}

async function oneRestore(
  fx: BackupFixture,
  registry: ClusterRegistry,
  storage: StorageUnderTest,
  method: Method,
  size: { sizeMB: number; dbMB: number; maxId: number },
): Promise<void> {
  const { result: taken } = await execute<SnapshotBackupResult>(fx, 'snapshotBackupWorkflow', { cluster: fx.name });
  await archiveCaughtUp(fx);
  pruneArchiveBefore(fx, taken.backup);
  await fx.sql('UPDATE filler SET pad = md5(pad) WHERE id % 5000 = 0');
  dropCaches();
  const { result, ms } = await execute<RollbackRestoreResult>(fx, 'rollbackRestoreWorkflow', {
    cluster: fx.name,
    backup: taken.backup.id,
    confirm: fx.name,
    safetySnapshot: false,
    flatten: 'never',
    ...(method === 'btrfs' ? {} : { restoreMethod: method }),
  });
  if (method !== 'btrfs' && result.rollback.method !== method)
    throw new Error(`asked for ${method}, the restore used ${result.rollback.method}: ${result.rollback.methodNote}`);
  const after = await pgbench(fx, tpsSeconds, size.maxId);
  const run: Run = {
    storage,
    method,
    sizeMB: size.sizeMB,
    dbMB: size.dbMB,
    workflowMs: ms,
    stepMs: result.rollback.ms,
    tpsAfterRestore: after.tps,
  };
  if (method === 'clone-swap') {
    const driver = new RbdSnapshotDriver(fx.storage as RbdStorageConfig, fx.cluster.pgdata);
    const started = Date.now();
    let flattenMs: number | undefined;
    const flatten = driver.flatten(result.rollback.flatten ?? []).then(() => (flattenMs = Date.now() - started));
    const during = await pgbench(fx, Math.max(5, tpsSeconds), size.maxId);
    await flatten;
    const seconds = Math.max(1, Math.floor(flattenMs! / 1000));
    const inFlatten = during.perSecond.slice(0, seconds);
    run.flattenMs = flattenMs;
    run.tpsDuringFlatten = inFlatten.reduce((a, b) => a + b, 0) / Math.max(1, inFlatten.length);
    run.tpsAfterFlatten = (await pgbench(fx, tpsSeconds, size.maxId)).tps;
  }
  runs.push(run);
  log(
    `${storage} ${method} ${Math.round(size.dbMB)} MB: workflow ${s(ms)} (step ${s(result.rollback.ms)}, start ${s(result.started.msToReady)}, recovery ${s(result.recovery?.ms ?? 0)}), ${after.tps.toFixed(0)} tps after${run.flattenMs !== undefined ? `; flatten ${s(run.flattenMs)}, ${run.tpsDuringFlatten!.toFixed(0)} tps during, ${run.tpsAfterFlatten!.toFixed(0)} after` : ''}`,
  );
  await registry.services(fx.name).storage().deleteBackup(taken.backup.id);
}

async function benchStorage(storage: StorageUnderTest): Promise<void> {
  const largest = Math.max(...sizes);
  await withBenchFixture(storage, Math.round(largest * 2.5) + 1024, async (fx, registry) => {
    if (storage === 'rbd' && flattenConcurrency) {
      // In the catalog: rbd-fuse, which runs a flatten of the image it holds, is started with it.
      (fx.storage as RbdStorageConfig).flattenConcurrency = flattenConcurrency;
      fx.writeCatalog();
    }
    for (const sizeMB of [...sizes].sort((a, b) => a - b)) {
      // BlueStore on a sparse file never gives space back, but never grows past its block size either: what
      // it may still take, and room for the fill's archive. btrfs holds the data, its WAL churn and a snapshot.
      const need =
        storage === 'rbd' && bluestore
          ? Math.max(0, bluestore.bytes - (existsSync(bluestore.file) ? statSync(bluestore.file).blocks * 512 : 0)) +
            4 * 1024 * MB
          : 3.5 * sizeMB * MB;
      if (freeBytes(fx.archiveDir) < need) {
        notes.push(
          `${storage} ${sizeMB} MB: skipped, ${Math.round(freeBytes(fx.archiveDir) / 1e9)} GB free, about ${Math.round(need / 1e9)} GB needed`,
        );
        continue;
      }
      try {
        log(`${storage} ${sizeMB} MB: filling`);
        // The fill's WAL is archived, and no backup of this run needs it: the disk holds the data twice already.
        const dbMB = await fillTo(fx, sizeMB, async () => pruneArchivedSegments(fx));
        const maxId = Number((await fx.sql<{ n: string }>('SELECT max(id) AS n FROM filler'))[0]!.n);
        const methods: Method[] = storage === 'rbd' ? rbdMethods : ['btrfs'];
        for (let round = 0; round < rounds; round++)
          for (const method of round % 2 ? [...methods].reverse() : methods)
            await oneRestore(fx, registry, storage, method, { sizeMB, dbMB, maxId });
      } catch (err) {
        notes.push(`${storage} ${sizeMB} MB: failed: ${why(err)}`);
        log(`${storage} ${sizeMB} MB failed: ${why(err)}`);
        break;
      }
    }
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] ?? Number.NaN;

async function main(): Promise<void> {
  const largestGB = Math.max(...sizes) / 1024;
  // btrfs keeps a whole extent while any page of it is still referenced: a 16 GB fill used about 28 GB.
  process.env.PGOPS_TEST_BTRFS_GB ??= String(Math.ceil(4 + largestGB * 3.5));
  const started = Date.now();
  const startLoad = loadavg()[0]!.toFixed(1);
  const { root } = await testEnv();
  if (storages.includes('rbd')) {
    const gigabytes = Math.ceil(8 + largestGB * 3.5);
    bluestore = { file: join(root, 'bluestore-block.img'), bytes: gigabytes * 1024 * MB };
    // PGOPS_BENCH_CEPH_ARGS: more options for every Ceph process of the run (rbd-fuse included), to try settings.
    process.env.CEPH_ARGS = [bluestoreCephArgs(bluestore.file, gigabytes), process.env.PGOPS_BENCH_CEPH_ARGS ?? '']
      .join(' ')
      .trim();
  }
  let store = 'none';
  try {
    for (const storage of storages) {
      try {
        if (storage === 'rbd') store = await objectStore();
        await benchStorage(storage);
      } catch (err) {
        notes.push(`${storage}: failed: ${why(err)}`);
      }
    }
  } finally {
    await mochaHooks.afterAll.call(undefined);
  }
  console.log(
    `\nIn-place restore (no safety snapshot, page cache dropped), ${rounds} round(s), the methods alternated; pgbench: 4 clients, random single-row updates, ${tpsSeconds} s; ${s(Date.now() - started)} in all, load average ${startLoad} at the start, ${loadavg()[0]!.toFixed(1)} at the end; rbd on Ceph ${store}:\n`,
  );
  console.log(
    '| storage | method | database | restore workflow | restore step | tps after the restore | flatten | tps during the flatten | tps after the flatten |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  const groups = new Map<string, Run[]>();
  for (const r of runs) {
    const key = `${r.storage}|${r.method}|${r.sizeMB}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const med = (g: Run[], f: (r: Run) => number | undefined) =>
    median(g.map(f).filter((x): x is number => x !== undefined));
  for (const g of groups.values()) {
    const r = g[0]!;
    const opt = (f: (r: Run) => number | undefined, fmt: (x: number) => string) => {
      const v = med(g, f);
      return Number.isFinite(v) ? fmt(v) : '–';
    };
    console.log(
      `| ${r.storage} | ${r.method} | ${Math.round(r.dbMB)} MB | ${s(med(g, (x) => x.workflowMs))} | ${s(med(g, (x) => x.stepMs))} | ${med(g, (x) => x.tpsAfterRestore).toFixed(0)} | ${opt((x) => x.flattenMs, s)} | ${opt(
        (x) => x.tpsDuringFlatten,
        (v) => v.toFixed(0),
      )} | ${opt(
        (x) => x.tpsAfterFlatten,
        (v) => v.toFixed(0),
      )} |`,
    );
  }
  const [small, large] = [Math.min(...sizes), Math.max(...sizes)];
  if (small !== large) {
    console.log(
      `\nGrowth with size, ${large} MB ÷ ${small} MB (flat is 1.00), and rollback ÷ clone-swap at each size:\n`,
    );
    console.log('| storage | method | restore step | restore workflow |');
    console.log('|---|---|---|---|');
    for (const [key, g] of groups) {
      if (!key.endsWith(`|${small}`)) continue;
      const big = groups.get(key.replace(new RegExp(`\\|${small}$`), `|${large}`));
      if (!big) continue;
      const r = g[0]!;
      console.log(
        `| ${r.storage} | ${r.method} | **${ratio(
          med(big, (x) => x.stepMs),
          med(g, (x) => x.stepMs),
        )}** | ${ratio(
          med(big, (x) => x.workflowMs),
          med(g, (x) => x.workflowMs),
        )} |`,
      );
    }
    for (const sizeMB of sizes) {
      const rb = groups.get(`rbd|rollback|${sizeMB}`);
      const cs = groups.get(`rbd|clone-swap|${sizeMB}`);
      if (rb && cs)
        console.log(
          `\nrbd ${sizeMB} MB: rollback ÷ clone-swap, restore step ${ratio(
            med(rb, (x) => x.stepMs),
            med(cs, (x) => x.stepMs),
          )}, workflow ${ratio(
            med(rb, (x) => x.workflowMs),
            med(cs, (x) => x.workflowMs),
          )}; tps during the flatten ÷ after it ${ratio(
            med(cs, (x) => x.tpsDuringFlatten),
            med(cs, (x) => x.tpsAfterFlatten),
          )}`,
        );
    }
  }
  if (notes.length) console.log(`\n${[...new Set(notes)].map((n) => `- ${n}`).join('\n')}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
