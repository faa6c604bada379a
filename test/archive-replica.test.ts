// WAL archive retention and the replicas of the catalog: a delayed replica restoring from the
// archive keeps, from its restart point on, every segment a kept backup alone would let go; once
// it has caught up and made a restart point, the next prune removes them. A replica that cannot
// be asked keeps everything from the oldest kept backup on, and the status says so. `pgops
// archive status` prints the oldest needed segment and what needs it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { scratchDir, testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { createDelayedReplicaSet, type ReplicaSet } from '../src/dev/delayedReplicaSet';
import { localTargetOf } from '../src/dev/localPostgres';
import { freePort } from '../src/dev/ports';
import { withSession, type PgEndpoint } from '../src/drivers/postgres/session';
import { listArchivedSegments } from '../src/drivers/postgres/archive/walInspect';
import { segmentFileName } from '../src/drivers/postgres/archive/timelines';
import { compareLsn, parseLsn } from '../src/common/lsn';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { ArchiveStatus } from '../src/contract/archive';
import { switchWalAndWaitForArchiver } from './harness/sampleData';

const SEGMENT = 16n * 1024n * 1024n;
const segmentOf = (lsn: string) => parseLsn(lsn) / SEGMENT;

const one = <T>(endpoint: PgEndpoint, sql: string) =>
  withSession(endpoint, async (c) => (await c.query(sql)).rows[0] as T);

describe('WAL archive retention keeps what a catalog replica has not replayed', () => {
  let set: ReplicaSet;
  let dir: string;
  let catalogPath: string;
  const taskQueue = `pg-ops-archive-replica-${Math.random().toString(36).slice(2, 8)}`;
  let seq = 0;

  const writeCatalog = (extra: Record<string, unknown> = {}) =>
    writeFileSync(
      catalogPath,
      stringify({
        clusters: {
          orders: {
            target: localTargetOf(set.primary),
            storage: { kind: 'local', method: 'copy', snapshotDir: join(dir, 'snapshots') },
            walArchive: set.archiveDir,
          },
          'orders-delayed': { target: localTargetOf(set.replica), replicaOf: 'orders', walArchive: set.archiveDir },
          ...extra,
        },
      }),
    );
  async function run<T>(type: string, input: Record<string, unknown>): Promise<T> {
    const { client } = await testEnv();
    return withWorker(taskQueue, catalogPath, () =>
      client.workflow.execute(type, { taskQueue, workflowId: `${type}-replica-${Date.now()}-${seq++}`, args: [input] }),
    ) as Promise<T>;
  }
  const backup = (keep?: { count: number }) =>
    run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: 'orders', keep });

  /** A commit, then a switch, awaited in the archive. */
  async function writeWal(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      await one(set.primaryEndpoint, 'INSERT INTO filler SELECT g FROM generate_series(1, 100) g');
      await switchWalAndWaitForArchiver(set.primaryEndpoint);
    }
  }
  const restartPoint = () =>
    one<{ redo: string; tli: number }>(
      set.replicaEndpoint,
      'SELECT redo_lsn::text AS redo, timeline_id AS tli FROM pg_control_checkpoint()',
    );

  before(async function () {
    this.timeout(180_000);
    dir = await scratchDir('archive-replica');
    set = await createDelayedReplicaSet({ dir: join(dir, 'set'), delay: '1h' });
    catalogPath = join(dir, 'pgops.yaml');
    writeCatalog();
    await withSession(set.primaryEndpoint, (c) => c.query('CREATE TABLE filler (x int)'));
  });
  after(async () => set?.stop());

  let lagging: { redo: string; tli: number };

  it("keeps every segment from a lagging replica's restart point, though no kept backup needs them", async function () {
    this.timeout(300_000);
    await writeWal(2);
    lagging = await restartPoint();
    await backup();
    await writeWal(3);
    const before = listArchivedSegments(set.archiveDir);
    const taken = await backup({ count: 1 });
    assert.equal(taken.pruned?.deleted.length, 1);
    assert.ok(segmentOf(lagging.redo) < segmentOf(taken.backup.startLsn), 'the replica is behind the kept backup');
    const from = segmentOf(lagging.redo);
    for (const s of before.filter((s) => s.segmentNumber >= from))
      assert.ok(existsSync(join(set.archiveDir, s.fileName)), `${s.fileName}, not yet replayed, stays`);
    const needed = taken.archivePruned!.oldestNeeded!;
    assert.equal(needed.fileName, segmentFileName(lagging.tli, from, SEGMENT));
    assert.match(needed.neededBy.join('; '), /^replica orders-delayed \(restart point /);

    // The CLI says the same.
    const env = await testEnv();
    const printed = await withWorker(
      taskQueue,
      catalogPath,
      () =>
        new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
          const child = spawn(
            process.execPath,
            ['--require', 'tsx/cjs', resolve(__dirname, '../src/cli/main.ts'), 'archive', 'status', 'orders'],
            {
              env: { ...process.env, TEMPORAL_ADDRESS: env.server.address, PGOPS_TASK_QUEUE: taskQueue },
              stdio: ['ignore', 'pipe', 'pipe'],
            },
          );
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          child.once('exit', (code) => done({ code: code ?? -1, stdout, stderr }));
        }),
    );
    assert.equal(printed.code, 0, printed.stderr);
    assert.match(printed.stdout, new RegExp(`oldest needed ${needed.fileName} .*by: replica orders-delayed`));
    assert.match(printed.stdout, /segment\(s\), \d+ file\(s\), [\d.]+ MB/);
  });

  it('removes them once the replica has replayed past them and made a restart point', async function () {
    this.timeout(300_000);
    await withSession(set.replicaEndpoint, async (c) => {
      await c.query('ALTER SYSTEM SET recovery_min_apply_delay = 0');
      await c.query('SELECT pg_reload_conf()');
    });
    const target = (await one<{ lsn: string }>(set.primaryEndpoint, 'SELECT pg_current_wal_lsn()::text AS lsn')).lsn;
    await writeWal(1);
    for (let t = 0; ; t++) {
      const at = await one<{ lsn: string | null }>(set.replicaEndpoint, 'SELECT pg_last_wal_replay_lsn()::text AS lsn');
      if (at.lsn && compareLsn(at.lsn, target) >= 0) break;
      if (t > 600) throw new Error(`the replica did not replay to ${target} (at ${at.lsn})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await withSession(set.replicaEndpoint, (c) => c.query('CHECKPOINT')); // a restart point
    const caughtUp = await restartPoint();
    assert.ok(segmentOf(caughtUp.redo) > segmentOf(lagging.redo), 'the restart point moved');
    const taken = await backup({ count: 1 });
    assert.equal(
      existsSync(join(set.archiveDir, segmentFileName(lagging.tli, segmentOf(lagging.redo), SEGMENT))),
      false,
    );
    const oldest = listArchivedSegments(set.archiveDir)[0]!;
    const floor = [caughtUp.redo, taken.backup.startLsn].sort(compareLsn)[0]!;
    assert.equal(oldest.segmentNumber, segmentOf(floor));
    assert.ok(taken.archivePruned!.removedSegments > 0);
  });

  it('keeps everything from the oldest kept backup on when a replica cannot be asked, and says so', async function () {
    this.timeout(300_000);
    writeCatalog({
      ghost: {
        target: { kind: 'local', pgdata: join(dir, 'ghost', 'data'), port: await freePort() },
        replicaOf: 'orders',
      },
    });
    await writeWal(2);
    const taken = await backup({ count: 1 });
    assert.match(
      taken.archivePruned!.notes.join(' '),
      /could not ask ghost .*everything from the oldest kept backup's start/,
    );
    const status = await run<ArchiveStatus>('archiveStatusWorkflow', { cluster: 'orders' });
    assert.match(status.notes.join(' '), /could not ask ghost/);
    assert.ok(status.oldestNeeded);
    writeCatalog();
  });
});
