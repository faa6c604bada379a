// Benchmark: a backup made usable on a scratch server (the restore drill) against the same backup
// restored in place, side by side in one run, per storage (local copy, local btrfs, real Ceph RBD)
// and per database size (default 1 GiB and 4 GiB):
//   - scratch: verifyBackupWorkflow with every check off; its verification.timeToUsableMs (clone,
//     start, recovery to consistency) and the drill workflow end to end;
//   - in place: rollbackRestoreWorkflow of the same backup, no safety snapshot, start to end, and
//     its own figures (rollback step, recovery).
// The aims: scratch no slower than in place; scratch flat in size on btrfs and RBD.
// RBD runs on a BlueStore OSD on a sparse file (../shared/design/ceph-bluestore.md), given to the
// harness's Ceph through CEPH_ARGS; PGOPS_BENCH_RBD_STORE=memstore keeps the harness's memstore.
// One fixture per storage, filled to each size in turn; one run of each side per size, the drill
// first. Usage: npm run bench:drill [-- sizesMB storages budgetMinutes]
//   e.g. npm run bench:drill -- 1024,4096 copy,btrfs,rbd 20
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { mochaHooks, testEnv } from '../test/harness/testEnv';
import type { BackupFixture, StorageUnderTest } from '../test/harness/backupFixture';
import type { ClusterRegistry } from '../src/activities/clusterRegistry';
import {
  MB,
  archiveCaughtUp,
  bluestoreCephArgs,
  execute,
  fillTo,
  freeBytes,
  log,
  objectStore,
  s,
  why,
  withBenchFixture,
} from './benchSupport';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';
import type { VerifyBackupResult } from '../src/contract/operations/scratchRestores';

const sizes = (process.argv[2] ?? '1024,4096').split(',').map(Number);
const storages = (process.argv[3] ?? 'copy,btrfs,rbd').split(',') as StorageUnderTest[];
const budgetMs = Number(process.argv[4] ?? 20) * 60_000;
const rbdStore = process.env.PGOPS_BENCH_RBD_STORE === 'memstore' ? 'memstore' : 'bluestore';
const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? (a / b).toFixed(2) : '–');
interface Row {
  storage: StorageUnderTest;
  sizeMB: number;
  dbMB: number;
  toUsableMs: number;
  scratchRecoveryMs: number;
  drillMs: number;
  inPlaceMs: number;
  rollbackMs: number;
  inPlaceRecoveryMs: number;
}
const rows: Row[] = [];
const notes: string[] = [];

/** One size on one storage: a backup, its drill (scratch), then the same backup restored in place. */
async function measure(fx: BackupFixture, registry: ClusterRegistry, storage: StorageUnderTest, sizeMB: number) {
  log(`${storage} ${sizeMB} MB: filling`);
  const filled = Date.now();
  const size = await fillTo(fx, sizeMB);
  log(`${storage}: ${Math.round(size)} MB in ${s(Date.now() - filled)}; backup`);
  const { result: taken, ms: backupMs } = await execute<SnapshotBackupResult>(fx, 'snapshotBackupWorkflow', {
    cluster: fx.name,
  });
  await archiveCaughtUp(fx);
  log(`${storage}: backup ${taken.backup.id} in ${s(backupMs)}; drill`);
  const drill = await execute<VerifyBackupResult>(fx, 'verifyBackupWorkflow', {
    cluster: fx.name,
    backup: taken.backup.id,
    checks: { amcheck: false, checksums: false, archive: false },
  });
  log(
    `${storage} ${Math.round(size)} MB scratch: usable after ${s(drill.result.verification.timeToUsableMs)}, recovery ${s(drill.result.verification.recoveryMs)} (${drill.result.scratch.methods.join('; ')}); drill ${s(drill.ms)}`,
  );
  const inPlace = await execute<RollbackRestoreResult>(fx, 'rollbackRestoreWorkflow', {
    cluster: fx.name,
    backup: taken.backup.id,
    confirm: fx.name,
    safetySnapshot: false,
  });
  log(
    `${storage} ${Math.round(size)} MB in place: ${s(inPlace.ms)} (rollback ${s(inPlace.result.rollback.ms)}: ${inPlace.result.rollback.methods.join('; ')})`,
  );
  rows.push({
    storage,
    sizeMB,
    dbMB: size,
    toUsableMs: drill.result.verification.timeToUsableMs,
    scratchRecoveryMs: drill.result.verification.recoveryMs,
    drillMs: drill.ms,
    inPlaceMs: inPlace.ms,
    rollbackMs: inPlace.result.rollback.ms,
    inPlaceRecoveryMs: inPlace.result.recovery?.ms ?? 0,
  });
  // The snapshot is no longer needed: on copy it is a full copy, on btrfs and RBD it pins the old blocks.
  await registry
    .services(fx.name)
    .storage()
    .deleteBackup(taken.backup.id)
    .catch((err: Error) => log(`could not delete backup ${taken.backup.id}: ${err.message}`));
}

async function benchStorage(storage: StorageUnderTest, deadline: number): Promise<void> {
  const largest = Math.max(...sizes);
  await withBenchFixture(storage, Math.max(1024, Math.round(largest * 2.5)), async (fx, registry) => {
    let previous: { sizeMB: number; ms: number } | undefined;
    for (const sizeMB of [...sizes].sort((a, b) => a - b)) {
      // Linear in size is the worst case: the fill and a copy both are.
      const estimate = previous ? (previous.ms * sizeMB) / previous.sizeMB : 0;
      if (Date.now() + estimate > deadline) {
        notes.push(
          `${storage} ${sizeMB} MB: skipped, about ${Math.round(estimate / 60_000)} min estimated from ${previous?.sizeMB} MB, over this storage's share of the ${budgetMs / 60_000} min budget`,
        );
        continue;
      }
      // Copy: the data, its archive, the snapshot and the scratch copy, each of the full size.
      const need = (storage === 'copy' ? 4 : 2) * sizeMB * MB;
      if (freeBytes(fx.archiveDir) < need) {
        notes.push(
          `${storage} ${sizeMB} MB: skipped, ${Math.round(freeBytes(fx.archiveDir) / 1e9)} GB free, about ${Math.round(need / 1e9)} GB needed`,
        );
        continue;
      }
      const started = Date.now();
      try {
        await measure(fx, registry, storage, sizeMB);
        previous = { sizeMB, ms: Date.now() - started };
      } catch (err) {
        notes.push(`${storage} ${sizeMB} MB: failed: ${why(err)}`);
        log(`${storage} ${sizeMB} MB failed: ${why(err)}`);
        break;
      }
    }
  });
}

async function main(): Promise<void> {
  const largestGB = Math.max(...sizes) / 1024;
  // btrfs: the data, the WAL it churns, and blocks a snapshot pins while the database grows.
  process.env.PGOPS_TEST_BTRFS_GB ??= String(Math.ceil(4 + largestGB * 3));
  process.env.PGOPS_TEST_CEPH_MEMSTORE_GB ??= String(Math.max(6, Math.ceil(largestGB * 3)));
  const started = Date.now();
  const startLoad = loadavg()[0]!.toFixed(1);
  const { root } = await testEnv();
  if (storages.includes('rbd') && rbdStore === 'bluestore') {
    // The harness's Ceph with its OSD on BlueStore over a sparse file (command-line options win
    // over its ceph.conf); the file sits in the run's directory, removed with it.
    process.env.CEPH_ARGS = bluestoreCephArgs(join(root, 'bluestore-block.img'), Math.ceil(8 + largestGB * 5));
  }
  let store = 'none';
  try {
    for (const [i, storage] of storages.entries()) {
      log(`${storage}…`);
      try {
        if (storage === 'rbd') {
          store = await objectStore();
          log(`Ceph OSD object store: ${store}`);
        }
        // Each storage gets an even share of what is left of the budget.
        const deadline = Date.now() + (budgetMs - (Date.now() - started)) / (storages.length - i);
        await benchStorage(storage, deadline);
      } catch (err) {
        notes.push(`${storage}: failed: ${why(err)}`);
        log(`${storage} failed: ${why(err)}`);
      }
    }
  } finally {
    await mochaHooks.afterAll.call(undefined);
  }
  const label = (st: StorageUnderTest) => (st === 'rbd' ? `rbd (Ceph, ${store})` : st);
  console.log(
    `\nScratch (time to usable: clone, start, recovery to consistency) against in place (rollback restore, no safety snapshot), one run each, the drill first; ${s(Date.now() - started)} in all, load average ${startLoad} at the start, ${loadavg()[0]!.toFixed(1)} at the end:\n`,
  );
  console.log(
    '| storage | database | scratch: to usable (recovery) | scratch: drill workflow | in place: restore workflow | in place: rollback, recovery | to usable ÷ in place | drill ÷ in place |',
  );
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of rows)
    console.log(
      `| ${label(r.storage)} | ${Math.round(r.dbMB)} MB | ${s(r.toUsableMs)} (${s(r.scratchRecoveryMs)}) | ${s(r.drillMs)} | ${s(r.inPlaceMs)} | ${s(r.rollbackMs)}, ${s(r.inPlaceRecoveryMs)} | **${ratio(r.toUsableMs, r.inPlaceMs)}** | ${ratio(r.drillMs, r.inPlaceMs)} |`,
    );
  const [small, large] = [Math.min(...sizes), Math.max(...sizes)];
  if (small !== large) {
    console.log(`\nGrowth with size, ${large} MB ÷ ${small} MB (flat is 1.00):\n`);
    console.log('| storage | database ratio | scratch: to usable | in place: restore workflow |');
    console.log('|---|---|---|---|');
    for (const storage of storages) {
      const a = rows.find((r) => r.storage === storage && r.sizeMB === small);
      const b = rows.find((r) => r.storage === storage && r.sizeMB === large);
      if (!a || !b) {
        console.log(`| ${label(storage)} | – | – | – |`);
        continue;
      }
      console.log(
        `| ${label(storage)} | ${ratio(b.dbMB, a.dbMB)} | **${ratio(b.toUsableMs, a.toUsableMs)}** | ${ratio(b.inPlaceMs, a.inPlaceMs)} |`,
      );
    }
  }
  if (storages.includes('rbd') && store === 'memstore')
    notes.push('rbd ran on a memstore OSD (in RAM): its timings do not show what a disk would cost');
  if (notes.length) console.log(`\n${notes.map((n) => `- ${n}`).join('\n')}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
