// Benchmark: snapshot backup and rollback restore on the three local storages (copy, btrfs, real
// Ceph RBD), side by side in one run:
//   1. time PostgreSQL spends in backup mode, against the bare snapshot of the same volumes
//      (the storage step alone, no PostgreSQL call): aim within 200 ms;
//   2. the online backup workflow end to end, against the same steps run bare in one script
//      (pg_backup_start, snapshot, pg_backup_stop, WAL archived, record written): aim < 500 ms added;
//   3. restore time against database size (about 100 MB and 2 GB), per storage.
// Rounds alternate which side runs first. Usage: npm run bench:backup [-- rounds sizesMB storages]
//   e.g. npm run bench:backup -- 5 100,2000
import { Worker } from '@temporalio/worker';
import { mochaHooks, testEnv } from '../test/harness/testEnv';
import { execute } from './benchSupport';
import { inProcessWorker } from '../test/harness/workers';
import { backupFixture, type BackupFixture, type StorageUnderTest } from '../test/harness/backupFixture';
import { loadCatalog } from '../src/config/catalog';
import { ClusterRegistry } from '../src/activities/clusterRegistry';
import { openBackupSession } from '../src/drivers/postgres/backupMode';
import { databaseVolumes } from '../src/drivers/postgres/dataLayout';
import { endpointOf } from '../src/dev/localPostgres';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';

const rounds = Number(process.argv[2] ?? 5);
const sizes = (process.argv[3] ?? '100,2000').split(',').map(Number);
const storages = (process.argv[4] ?? 'copy,btrfs,rbd').split(',') as StorageUnderTest[];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const fmt = (ms: number) => `${Math.round(ms)} ms`;
let seq = 0;

async function fillTo(fx: BackupFixture, megabytes: number): Promise<number> {
  // About 1 KB a row; the table is the bulk of the database.
  await fx.sql(`CREATE TABLE IF NOT EXISTS filler (id bigint PRIMARY KEY, pad text)`);
  await fx.sql(`INSERT INTO filler SELECT g, repeat(md5(g::text), 28) FROM generate_series(1, $1) g`, [
    megabytes * 1000,
  ]);
  await fx.sql('CHECKPOINT');
  const rows = await fx.sql<{ b: string }>('SELECT pg_database_size(current_database()) AS b');
  return Number(rows[0]!.b) / 1e6;
}

/** The online backup's steps with no Temporal: what a careful script would do. */
async function bareBackup(
  fx: BackupFixture,
  registry: ClusterRegistry,
): Promise<{ ms: number; snapshotMs: number; id: string }> {
  const started = Date.now();
  const storage = registry.services(fx.name).storage();
  const id = `20000101T000000Z-${(seq++).toString(16).padStart(8, '0')}`;
  const session = await openBackupSession(endpointOf(fx.cluster));
  try {
    const begun = await session.start('bare');
    const snapStart = Date.now();
    const snapshots = await storage.createSnapshots(id, databaseVolumes(fx.cluster.pgdata), { online: true });
    const snapshotMs = Date.now() - snapStart;
    const stopped = await session.stop();
    await session.waitForArchived(stopped.stopLsn);
    await storage.saveRecord({
      id,
      cluster: fx.name,
      kind: 'backup',
      mode: 'online',
      label: 'bare',
      systemIdentifier: begun.systemIdentifier,
      pgVersion: begun.pgVersion,
      timeline: begun.timeline,
      startLsn: begun.startLsn,
      stopLsn: stopped.stopLsn,
      labelfile: stopped.labelfile,
      startedAt: begun.startedAt,
      stoppedAt: stopped.stoppedAt,
      storage: storage.kind,
      snapshots,
      workflowId: 'bench',
    });
    return { ms: Date.now() - started, snapshotMs, id };
  } finally {
    await session.close();
  }
}

async function benchStorage(storage: StorageUnderTest): Promise<string[]> {
  const lines: string[] = [];
  for (const [i, size] of sizes.entries()) {
    const fx = await backupFixture(`bench-${storage}-${size}`, {
      storage,
      rows: 1000,
      dataVolumeMB: Math.max(512, Math.round(size * 2.5)),
    });
    const registry = new ClusterRegistry(() => loadCatalog(fx.catalogPath));
    try {
      const dbMB = await fillTo(fx, size);
      const worker: Worker = await inProcessWorker(fx.taskQueue, fx.catalogPath);
      await worker.runUntil(async () => {
        if (i === 0) {
          const mode: number[] = [];
          const bareSnap: number[] = [];
          const wf: number[] = [];
          const bare: number[] = [];
          for (let r = 0; r < rounds; r++) {
            const sides = [
              async () => {
                const { result, ms } = await execute<SnapshotBackupResult>(fx, 'snapshotBackupWorkflow', {
                  cluster: fx.name,
                });
                mode.push(result.backupModeMs ?? NaN);
                wf.push(ms);
                await registry.services(fx.name).storage().deleteBackup(result.backup.id);
              },
              async () => {
                const b = await bareBackup(fx, registry);
                bare.push(b.ms);
                bareSnap.push(b.snapshotMs);
                await registry.services(fx.name).storage().deleteBackup(b.id);
              },
            ];
            if (r % 2 === 1) sides.reverse();
            for (const side of sides) await side();
            console.log(
              `[bench] ${storage} round ${r + 1}: in backup mode ${fmt(mode[r]!)}, bare snapshot ${fmt(bareSnap[r]!)}; workflow ${fmt(wf[r]!)}, bare steps ${fmt(bare[r]!)}`,
            );
          }
          lines.push(
            `| ${storage} | ${Math.round(dbMB)} MB | ${fmt(median(mode))} | ${fmt(median(bareSnap))} | **${fmt(median(mode) - median(bareSnap))}** | ${fmt(median(wf))} | ${fmt(median(bare))} | **${fmt(median(wf) - median(bare))}** |`,
          );
        }
        const { result: taken } = await execute<SnapshotBackupResult>(fx, 'snapshotBackupWorkflow', {
          cluster: fx.name,
        });
        await fx.sql('DELETE FROM filler WHERE id % 10 = 0');
        const { result, ms } = await execute<RollbackRestoreResult>(fx, 'rollbackRestoreWorkflow', {
          cluster: fx.name,
          backup: taken.backup.id,
          confirm: fx.name,
          safetySnapshot: false,
        });
        lines.push(
          `restore | ${storage} | ${Math.round(dbMB)} MB | rollback ${fmt(result.rollback.ms)} | recovery ${fmt(result.recovery?.ms ?? 0)} | workflow ${fmt(ms)}`,
        );
      });
    } finally {
      await fx.teardown();
    }
  }
  return lines;
}

async function main(): Promise<void> {
  process.env.PGOPS_TEST_BTRFS_GB ??= String(3 + Math.ceil((Math.max(...sizes) * 5) / 1000));
  process.env.PGOPS_TEST_CEPH_MEMSTORE_GB ??= String(Math.max(6, Math.ceil((Math.max(...sizes) * 4) / 1000)));
  await testEnv();
  const out: string[] = [];
  try {
    for (const storage of storages) {
      console.error(`[bench] ${storage}…`);
      try {
        out.push(...(await benchStorage(storage)));
      } catch (err) {
        console.error(`[bench] ${storage} failed:`, err);
      }
    }
  } finally {
    await mochaHooks.afterAll.call(undefined);
  }
  console.log(`\nOnline backup, median of ${rounds} rounds (order alternated):\n`);
  console.log('| storage | database | in backup mode | bare snapshot | difference | workflow | bare steps | added |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const l of out.filter((l) => l.startsWith('|'))) console.log(l);
  console.log('\nRollback restore (no safety snapshot), one run per size:\n');
  console.log('| storage | database | rollback step | recovery | workflow end to end |');
  console.log('|---|---|---|---|---|');
  for (const l of out.filter((l) => l.startsWith('restore'))) console.log(`| ${l.split(' | ').slice(1).join(' | ')} |`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
