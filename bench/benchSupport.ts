// What the benchmarks share: a log on stderr, a database filled to a size, the archive caught up,
// a workflow run to its end and timed, and the harness's Ceph on a BlueStore OSD
// (../shared/design/ceph-bluestore.md) for timings a memstore OSD in RAM cannot show.
import { statfsSync } from 'node:fs';
import { testEnv } from '../test/harness/testEnv';
import { testCeph } from '../test/harness/ceph';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { backupFixture, type BackupFixture, type StorageUnderTest } from '../test/harness/backupFixture';
import { inProcessWorker } from '../test/harness/workers';
import { loadCatalog } from '../src/config/catalog';
import { ClusterRegistry } from '../src/activities/clusterRegistry';
import { runCommand } from '../src/drivers/exec';
import { pollUntil } from '../src/drivers/waiting';
import { segmentArchived } from '../src/drivers/postgres/backupMode';
import { withSession } from '../src/drivers/postgres/session';
import { endpointOf } from '../src/dev/localPostgres';

export const MB = 1024 * 1024;
export const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const t0 = Date.now();
export const log = (line: string) =>
  console.error(`[bench ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}`);

/** A failure's message with its causes (a workflow's failure is in its cause). */
export function why(err: unknown): string {
  const parts: string[] = [];
  for (let e = err as { message?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e)
    if (e.message) parts.push(e.message.split('\n')[0]!);
  return parts.join(': ');
}

export async function dbMB(fx: BackupFixture): Promise<number> {
  const r = await fx.sql<{ b: string }>('SELECT pg_database_size(current_database()) AS b');
  return Number(r[0]!.b) / MB;
}

/** Fills the database to about `megabytes` (pg_database_size), about 1 KB a row, in 100k-row statements. */
export async function fillTo(fx: BackupFixture, megabytes: number, afterBatch?: () => Promise<void>): Promise<number> {
  await fx.sql(`CREATE TABLE IF NOT EXISTS filler (id bigint PRIMARY KEY, pad text)`);
  for (let size = await dbMB(fx); size < megabytes; size = await dbMB(fx)) {
    const next = Number((await fx.sql<{ n: string }>('SELECT coalesce(max(id), 0) AS n FROM filler'))[0]!.n);
    const batch = Math.min(100_000, Math.ceil(((megabytes - size) * MB) / 1150) + 1);
    await fx.sql(
      `INSERT INTO filler SELECT g, repeat(md5(g::text), 28) FROM generate_series($1::bigint, $2::bigint) g`,
      [next + 1, next + batch],
    );
    await afterBatch?.();
  }
  await fx.sql('CHECKPOINT');
  await archiveCaughtUp(fx);
  return dbMB(fx);
}

/** The archiver has every segment written so far (a fill leaves gigabytes behind it). */
export async function archiveCaughtUp(fx: BackupFixture): Promise<void> {
  // The segment that ends where the switch returns: the last one with WAL in it, even when the
  // current segment was empty and nothing was switched.
  const wal = (await fx.sql<{ f: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS f'))[0]!.f;
  const since = Date.now();
  let told = since;
  await pollUntil(
    async () => {
      const r = (
        await fx.sql<{ last: string | null; failed: string | null }>(
          'SELECT last_archived_wal AS last, last_failed_wal AS failed FROM pg_stat_archiver',
        )
      )[0]!;
      // Its .done mark, or the archiver past it (a backup history file archived after it is not).
      const ok = await withSession(endpointOf(fx.cluster), (c) => segmentArchived(c, wal, r.last));
      if (!ok && Date.now() - told > 10_000) {
        told = Date.now();
        log(`waiting ${s(told - since)} for ${wal} to be archived: last ${r.last}, last failed ${r.failed}`);
      }
      return ok ? { done: undefined } : { waiting: 'archiving' };
    },
    { intervalMs: 250, timeoutMs: 900_000, what: `WAL ${wal} to be archived` },
  );
}

let seq = 0;

/** Runs a workflow on the fixture's task queue to its end: its result and the milliseconds from start to result. */
export async function execute<T>(fx: BackupFixture, type: string, input: Record<string, unknown>) {
  const { client } = await testEnv();
  const started = Date.now();
  const result = (await client.workflow.execute(type, {
    taskQueue: fx.taskQueue,
    workflowId: `bench-${type}-${Date.now()}-${seq++}`,
    args: [input],
  })) as T;
  return { result, ms: Date.now() - started };
}

/** Free bytes of the file system holding `path`. */
export function freeBytes(path: string): number {
  const st = statfsSync(path);
  return st.bavail * st.bsize;
}

/** The OSD's object store as the running OSD reports it. */
export async function objectStore(): Promise<string> {
  const ceph = await testCeph();
  const meta = await runCommand('ceph', ['-c', ceph.conf, 'osd', 'metadata', '0'], { timeoutMs: 30_000 });
  try {
    return String((JSON.parse(meta.stdout) as { osd_objectstore?: string }).osd_objectstore ?? 'unknown');
  } catch {
    return 'unknown';
  }
}

/**
 * CEPH_ARGS that put the harness's OSD on BlueStore over a sparse file of `gigabytes` at `blockFile`
 * (command-line options win over its ceph.conf); the file is removed with the run's directory.
 */
export function bluestoreCephArgs(blockFile: string, gigabytes: number): string {
  return [
    '--osd_objectstore=bluestore',
    `--bluestore_block_path=${blockFile}`,
    '--bluestore_block_create=true',
    `--bluestore_block_size=${gigabytes * 1024 ** 3}`,
    '--bluestore_block_db_create=false',
    '--bluestore_block_wal_create=false',
    '--osd_memory_target=1073741824',
    '--bluestore_cache_autotune=false',
    '--bluestore_cache_size=268435456',
  ].join(' ');
}

/**
 * A fixture of `storage` with a data volume of `dataVolumeMB`, a worker running on its task queue
 * while `body` runs, then everything removed: the data, its archive and its snapshots are gigabytes
 * the next storage may need.
 */
export async function withBenchFixture(
  storage: StorageUnderTest,
  dataVolumeMB: number,
  body: (fx: BackupFixture, registry: ClusterRegistry) => Promise<void>,
): Promise<void> {
  // A one-letter label: the scratch server's socket lies below its volume's directory, and its path
  // may not pass 107 bytes (RBD: /tmp/pgops-test-*/r-volumes-*/data-rbd.pgops-scratch/<id>/socket/…).
  const fx = await backupFixture(storage.slice(0, 1), { storage, rows: 1000, dataVolumeMB });
  const registry = new ClusterRegistry(() => loadCatalog(fx.catalogPath));
  try {
    const worker = await inProcessWorker(fx.taskQueue, fx.catalogPath);
    await worker.runUntil(() => body(fx, registry));
  } finally {
    await fx.teardown();
    rmSync(dirname(fx.archiveDir), { recursive: true, force: true });
  }
}
