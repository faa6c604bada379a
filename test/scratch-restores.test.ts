import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testEnv } from './harness/testEnv';
import { inProcessWorker } from './harness/workers';
import { failureOf } from './harness/failures';
import { waitForStep } from './harness/progress';
import { backupFixture, type BackupFixture, type StorageUnderTest } from './harness/backupFixture';
import { withSession } from '../src/drivers/postgres/session';
import { endpointOf } from '../src/dev/localPostgres';
import { pollUntil } from '../src/drivers/waiting';
import { closeScratchSignal, progressQuery, resumeSignal } from '../src/contract/definitions';
import { listArchivedSegments } from '../src/drivers/postgres/archive/walInspect';
import { compareLsn } from '../src/common/lsn';
import { runCommand } from '../src/drivers/exec';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { ListBackupsResult } from '../src/workflows/backupCatalog';
import { localTargetOf } from '../src/dev/localPostgres';
import type {
  ScratchGcResult,
  OpenScratchResult,
  RecoverRowsResult,
  VerifyBackupResult,
} from '../src/contract/operations/scratchRestores';

const backup = (fx: BackupFixture) => fx.run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: fx.name });
const verify = (fx: BackupFixture, extra: Record<string, unknown> = {}) =>
  fx.run<VerifyBackupResult>('verifyBackupWorkflow', { cluster: fx.name, ...extra });
const recover = (fx: BackupFixture, extra: Record<string, unknown>) =>
  fx.run<RecoverRowsResult>('recoverRowsWorkflow', { cluster: fx.name, ...extra });

/** Every file of the archive with its size and modification time: what a scratch server must never change. */
function archiveListing(dir: string): Map<string, string> {
  return new Map(
    readdirSync(dir)
      // Not a file production's archive_command is writing now (<segment>.tmp, renamed when whole).
      .filter((f) => !f.startsWith('.') && !f.endsWith('.tmp'))
      .map((f) => {
        const s = statSync(join(dir, f));
        return [f, `${s.size}@${s.mtimeMs}`];
      }),
  );
}

/** The archive after an operation: the files there before unchanged, and nothing new that production did not write. */
function assertArchiveUntouched(before: Map<string, string>, dir: string, productionTimeline: number): void {
  const after = archiveListing(dir);
  for (const [file, stamp] of before) assert.equal(after.get(file), stamp, `${file} is unchanged in the archive`);
  const added = [...after.keys()].filter((f) => !before.has(f));
  for (const file of added) {
    assert.ok(
      !file.endsWith('.history'),
      `no timeline history was archived (${file}): a scratch server promoted into it`,
    );
    assert.equal(parseInt(file.slice(0, 8), 16), productionTimeline, `${file} is production's own WAL`);
  }
}

async function timelineOf(fx: BackupFixture): Promise<number> {
  const rows = await fx.sql<{ t: number }>('SELECT timeline_id AS t FROM pg_control_checkpoint()');
  return Number(rows[0]!.t);
}

/** What is left in the scratch directory: beside PGDATA, or beside the mount point of its RBD image. */
function scratchLeft(fx: BackupFixture): string[] {
  const rbd =
    fx.storage.kind === 'rbd'
      ? fx.storage.volumes?.find((v) => fx.cluster.pgdata.startsWith(`${v.mountpoint}/`))
      : undefined;
  const dir = rbd ? `${rbd.mountpoint}.pgops-scratch` : `${fx.cluster.pgdata}.pgops-scratch`;
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** The fixture's cluster entry, as its catalog has it. */
function catalogEntry(fx: BackupFixture): Record<string, unknown> {
  return { target: localTargetOf(fx.cluster), storage: fx.storage, walArchive: fx.archiveDir };
}

function scratchSuite(storage: StorageUnderTest) {
  describe(`scratch restores on ${storage} storage: drills, rows and databases back, previews`, () => {
    let fx: BackupFixture;
    let taken: SnapshotBackupResult;
    before(async function () {
      this.timeout(180_000);
      fx = await backupFixture(`scr-${storage}`, { storage, waldir: storage !== 'rbd', dataChecksums: true });
      taken = await backup(fx);
      await fx.commit(["INSERT INTO orders SELECT g, 'after-backup', 1 FROM generate_series(5001, 5100) g"]);
      await fx.archiveNow();
    });
    after(async () => fx?.teardown());

    it('a drill passes: recovered, pg_amcheck, pg_checksums and the archive checked, timed, kept in the record; production untouched', async function () {
      this.timeout(240_000);
      const sum = await fx.checksum();
      const archive = archiveListing(fx.archiveDir);
      const timeline = await timelineOf(fx);
      const drill = await verify(fx, { backup: taken.backup.id });
      assert.equal(drill.backup, taken.backup.id);
      assert.equal(drill.verification.ok, true);
      assert.deepEqual(drill.verification.findings, []);
      assert.ok(drill.checks.amcheck?.ok && drill.checks.amcheck.databases >= 2, 'pg_amcheck ran over every database');
      assert.deepEqual(drill.checks.checksums, { ok: true, enabled: true, badBlocks: 0, problems: [] });
      assert.equal(drill.checks.archive?.ok, true);
      assert.ok(
        drill.verification.timeToUsableMs > 0 && drill.verification.timeToUsableMs >= drill.verification.recoveryMs,
      );
      assert.equal(drill.scratch.removed, true);
      const method = { copy: /cp --reflink=auto/, btrfs: /writable btrfs snapshot/, rbd: /rbd clone .* \(format 2\)/ }[
        storage
      ];
      for (const line of drill.scratch.methods)
        assert.match(line, method, 'each volume cloned the way its storage can');
      assert.deepEqual(scratchLeft(fx), [], 'no scratch instance is left');
      const listed = await fx.run<ListBackupsResult>('listBackupsWorkflow', { cluster: fx.name });
      const record = listed.backups.find((b) => b.id === taken.backup.id);
      assert.equal(record?.verification?.ok, true, "the backup's record keeps the drill's verdict");
      assert.equal(record?.verification?.timeToUsableMs, drill.verification.timeToUsableMs);
      assert.equal(await fx.checksum(), sum, 'production rows unchanged');
      assertArchiveUntouched(archive, fx.archiveDir, timeline);
    });

    it('rows deleted on the primary come back from the backup while the primary keeps writing: every later write kept', async function () {
      this.timeout(240_000);
      const goodCount = Number((await fx.sql<{ n: string }>('SELECT count(*) AS n FROM orders'))[0]!.n);
      const bad = await fx.commit(['DELETE FROM orders WHERE id BETWEEN 100 AND 399']);
      await fx.commit(["INSERT INTO orders VALUES (900001, 'later', 5)", 'UPDATE orders SET amount = 77 WHERE id = 7']);
      await fx.archiveNow();
      const archive = archiveListing(fx.archiveDir);
      const recovered = await recover(fx, { target: { xid: bad.xid }, tables: ['orders'], insertMissing: true });
      assert.equal(recovered.backup, taken.backup.id, 'the newest backup before the target');
      assert.equal(recovered.exported?.[0]?.rows, goodCount, 'exactly the rows as they were just before the delete');
      assert.deepEqual(
        recovered.inserted?.map((i) => [i.table, i.inserted]),
        [['public.orders', 300]],
      );
      const rows = await fx.sql<{ n: string }>('SELECT count(*) AS n FROM orders WHERE id BETWEEN 100 AND 399');
      assert.equal(Number(rows[0]!.n), 300, 'the deleted rows are back');
      const later = await fx.sql<{ amount: string }>('SELECT amount FROM orders WHERE id IN (7, 900001) ORDER BY id');
      assert.deepEqual(
        later.map((r) => Number(r.amount)),
        [77, 5],
        'the writes after the incident are kept',
      );
      assert.ok(existsSync(recovered.exported![0]!.file), 'the export is on the worker');
      assert.equal(recovered.scratch.removed, true);
      assert.deepEqual(scratchLeft(fx), []);
      assertArchiveUntouched(archive, fx.archiveDir, await timelineOf(fx));
    });

    it('a preview: opened as of a moment, queried read-only, closed and removed', async function () {
      this.timeout(240_000);
      const { client } = await testEnv();
      const sum = await fx.checksum();
      const archive = archiveListing(fx.archiveDir);
      const timeline = await timelineOf(fx);
      const worker = await inProcessWorker(fx.taskQueue, fx.catalogPath);
      await worker.runUntil(async () => {
        const handle = await client.workflow.start('openScratchWorkflow', {
          taskQueue: fx.taskQueue,
          workflowId: `preview-${storage}-${Date.now()}`,
          args: [{ cluster: fx.name, asOf: { backup: taken.backup.id }, ttl: '10m' }],
        });
        const port: number = await pollUntil<number>(
          async () => {
            const p = await handle.query(progressQuery).catch(() => undefined);
            return p?.step === 'open' ? { done: Number(p.numbers.port) } : { waiting: p?.step ?? 'starting' };
          },
          { intervalMs: 200, timeoutMs: 180_000, what: 'the preview to open' },
        );
        const scratch = { ...endpointOf(fx.cluster), port };
        await withSession(scratch, async (c) => {
          const n = await c.query<{ n: string }>("SELECT count(*) AS n FROM orders WHERE customer = 'after-backup'");
          assert.equal(Number(n.rows[0]!.n), 0, 'as of the backup: the rows written after it are not there');
          await assert.rejects(c.query("INSERT INTO orders VALUES (1, 'x', 1)"), /read-only/);
        });
        await handle.signal(closeScratchSignal, { by: 'test' });
        const result = (await handle.result()) as OpenScratchResult;
        assert.equal(result.ended, 'closed');
        assert.equal(result.opened.port, port);
        assert.equal(result.scratch.removed, true);
      });
      assert.deepEqual(scratchLeft(fx), []);
      assert.equal(await fx.checksum(), sum, 'production rows unchanged');
      assertArchiveUntouched(archive, fx.archiveDir, timeline);
    });
  });
}

scratchSuite('copy');
scratchSuite('btrfs');
scratchSuite('rbd');

function refusalsSuite(storage: StorageUnderTest) {
  describe(`scratch restores: a failed drill says why, a dropped database comes back, bad input is refused (${storage} storage)`, () => {
    // On btrfs and RBD, only what depends on the storage (the failed drills, the dropped database): the
    // refusals, the drill to the end, the hold and the janitor are the same code on every kind, tested on copy.
    const onCopy = (title: string, fn: Mocha.AsyncFunc) => (storage === 'copy' ? it(title, fn) : undefined);
    let fx: BackupFixture;
    let taken: SnapshotBackupResult;
    before(async function () {
      this.timeout(180_000);
      fx = await backupFixture(`scr-more-${storage}`, { storage, dataChecksums: true });
      await fx.sql('CREATE DATABASE appdb');
      await withSession({ ...endpointOf(fx.cluster), database: 'appdb' }, async (c) => {
        await c.query('CREATE TABLE notes (id int PRIMARY KEY, body text)');
        await c.query("INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 500) g");
      });
      taken = await backup(fx);
      await fx.archiveNow();
    });
    after(async () => fx?.teardown());

    it('a dropped database comes back under a new name, found by its incident window (stopping before the drop record)', async function () {
      this.timeout(240_000);
      const from = new Date(Date.now() - 1000).toISOString();
      await fx.sql('DROP DATABASE appdb');
      await fx.commit(["INSERT INTO orders VALUES (800001, 'after the drop', 1)"]);
      const to = new Date(Date.now() + 1000).toISOString();
      await fx.archiveNow();
      const recovered = await recover(fx, {
        target: { incident: { from, to } },
        databases: ['appdb'],
        restoreAs: 'appdb_restored',
      });
      assert.equal(recovered.restoredAs?.database, 'appdb_restored');
      assert.match(
        recovered.stopped.note ?? '',
        /the drop of database .* lies before the stop point but commits at or after it/,
      );
      const rows = await withSession({ ...endpointOf(fx.cluster), database: 'appdb_restored' }, async (c) =>
        Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM notes')).rows[0]!.n),
      );
      assert.equal(rows, 500);
      const refused = await failureOf(
        recover(fx, { target: { incident: { from, to } }, databases: ['appdb'], restoreAs: 'appdb_restored' }),
      );
      assert.match(refused.message, /database "appdb_restored" already exists on the primary/);
      assert.deepEqual(scratchLeft(fx), []);
    });

    onCopy(
      'bad input is refused, nothing cloned: unknown table, target before every backup, ttl 0 or over 7 days, restoreAs of itself',
      async function () {
        this.timeout(240_000);
        const later = await fx.commit(["INSERT INTO orders VALUES (700001, 'later', 1)"]);
        await fx.archiveNow();
        const unknownTable = await failureOf(recover(fx, { target: { xid: later.xid }, tables: ['no_such_table'] }));
        assert.match(
          unknownTable.message,
          /table public\.no_such_table does not exist in the backup at the recovery target/,
        );
        const early = await failureOf(recover(fx, { target: { time: '2001-01-01T00:00:00Z' }, tables: ['orders'] }));
        assert.match(
          early.message,
          /no backup of cluster "shop" ends before recovery_target_time = '2001-01-01T00:00:00Z'/,
        );
        for (const ttl of [0, '8d']) {
          const bad = await failureOf(
            fx.run('openScratchWorkflow', { cluster: fx.name, asOf: { backup: taken.backup.id }, ttl }),
          );
          assert.equal(bad.type, 'InvalidInput');
          assert.match(bad.message, /ttl/);
        }
        const itself = await failureOf(
          recover(fx, { target: { xid: '1000' }, databases: ['appdb'], restoreAs: 'appdb' }),
        );
        assert.match(itself.message, /restoreAs must be a new name/);
        const absolute = await failureOf(
          recover(fx, { target: { xid: '1000' }, tables: ['orders'], exportDir: '/etc' }),
        );
        assert.match(absolute.message, /exportDir "\/etc" must be a relative directory/);
        // A second cluster on the same server with snapshots of its own (none yet), and one whose scratch directory is inside PGDATA.
        fx.writeCatalog({
          empty: { ...catalogEntry(fx), storage: { ...fx.storage, snapshotDir: `${fx.cluster.pgdata}.none` } },
          [fx.name]: { ...catalogEntry(fx), scratch: { dir: join(fx.cluster.pgdata, 'scratch') } },
        });
        const none = await failureOf(fx.run('verifyBackupWorkflow', { cluster: 'empty' }));
        assert.match(
          none.message,
          /cluster "empty" has no backups: take one first \(pgops backup empty\)\. Nothing was changed\./,
        );
        const inside = await failureOf(fx.run('verifyBackupWorkflow', { cluster: fx.name }));
        assert.match(
          inside.message,
          /the scratch directory .* lies inside the data directory .*: set scratch\.dir outside it/,
        );
        assert.ok(!existsSync(join(fx.cluster.pgdata, 'scratch')), 'nothing was made inside PGDATA');
        fx.writeCatalog();
        assert.deepEqual(scratchLeft(fx), []);
      },
    );

    onCopy(
      'a drill through the whole archive ("now") replays past the backup, to the newest commit',
      async function () {
        this.timeout(240_000);
        const last = await fx.commit(["INSERT INTO orders VALUES (600001, 'the newest', 9)"]);
        await fx.archiveNow();
        const drill = await verify(fx, { checks: { replayToEnd: true, amcheck: false, checksums: false } });
        assert.equal(drill.verification.ok, true);
        assert.equal(drill.verification.replayedTo, 'end of archive');
        assert.ok(
          compareLsn(drill.verification.replayLsn ?? '0/0', last.lsn) >= 0,
          `the copy replayed to ${drill.verification.replayLsn}, past the newest commit (${last.lsn})`,
        );
      },
    );

    onCopy(
      'a drill runs while a planned stop holds the cluster stopped and locked: it never needs the lock or the server',
      async function () {
        this.timeout(240_000);
        const { client } = await testEnv();
        const worker = await inProcessWorker(fx.taskQueue, fx.catalogPath);
        await worker.runUntil(async () => {
          const hold = await client.workflow.start('plannedStopWorkflow', {
            taskQueue: fx.taskQueue,
            workflowId: `hold-${Date.now()}`,
            args: [{ cluster: fx.name, holdUntilResumed: true, maxHold: '10m' }],
          });
          await waitForStep(hold, 'hold');
          const drill = (await client.workflow.execute('verifyBackupWorkflow', {
            taskQueue: fx.taskQueue,
            workflowId: `drill-during-hold-${Date.now()}`,
            args: [{ cluster: fx.name, backup: taken.backup.id, checks: { archive: false } }],
          })) as VerifyBackupResult;
          assert.equal(drill.verification.ok, true);
          assert.equal((await hold.query(progressQuery)).step, 'hold', 'the stop still holds the cluster');
          await hold.signal(resumeSignal, { by: 'test' });
          await hold.result();
        });
      },
    );

    onCopy(
      'a scratch server whose workflow was terminated is removed by pgops scratch gc (and the server stopped)',
      async function () {
        this.timeout(240_000);
        const { client } = await testEnv();
        const worker = await inProcessWorker(fx.taskQueue, fx.catalogPath);
        await worker.runUntil(async () => {
          const handle = await client.workflow.start('openScratchWorkflow', {
            taskQueue: fx.taskQueue,
            workflowId: `orphan-${Date.now()}`,
            args: [{ cluster: fx.name, asOf: { backup: taken.backup.id }, ttl: '1h' }],
          });
          const port: number = await pollUntil<number>(
            async () => {
              const p = await handle.query(progressQuery).catch(() => undefined);
              return p?.step === 'open' ? { done: Number(p.numbers.port) } : { waiting: p?.step ?? 'starting' };
            },
            { intervalMs: 200, timeoutMs: 180_000, what: 'the preview to open' },
          );
          await handle.terminate('a test: the workflow ends without its cleanup');
          assert.equal(scratchLeft(fx).length, 1, 'the terminated run left its scratch instance');
          const listed = await client.workflow.execute('listScratchWorkflow', {
            taskQueue: fx.taskQueue,
            workflowId: `list-${Date.now()}`,
            args: [{ cluster: fx.name }],
          });
          assert.equal((listed as { scratch: { port: number }[] }).scratch[0]?.port, port);
          const gc = (await client.workflow.execute('scratchGcWorkflow', {
            taskQueue: fx.taskQueue,
            workflowId: `gc-${Date.now()}`,
            args: [{ cluster: fx.name }],
          })) as ScratchGcResult;
          assert.equal(gc.removed.length, 1);
          assert.match(gc.removed[0]!.why, /its workflow orphan-\d+ is terminated/);
          await assert.rejects(
            withSession({ ...endpointOf(fx.cluster), port }, (c) => c.query('SELECT 1')),
            'its server is stopped',
          );
        });
        assert.deepEqual(scratchLeft(fx), []);
      },
    );

    it('a drill fails when the archive lost a segment after the backup, and when a heap page of the backup is corrupt: each named', async function () {
      this.timeout(300_000);
      await fx.commit(["INSERT INTO orders SELECT g, 'more', 2 FROM generate_series(6001, 6100) g"]);
      await fx.archiveNow();
      await fx.commit(["INSERT INTO orders SELECT g, 'more', 2 FROM generate_series(6101, 6200) g"]);
      await fx.archiveNow();
      const segments = listArchivedSegments(fx.archiveDir).filter((s) => s.startLsn > taken.backup.stopLsn);
      const lost = segments[1]!;
      const path = join(fx.archiveDir, lost.fileName);
      const kept = readFileSync(path);
      rmSync(path);
      try {
        const failed = await failureOf(verify(fx, { backup: taken.backup.id }));
        assert.equal(failed.type, 'DrillFailed');
        assert.match(
          failed.message,
          new RegExp(
            `restore drill of backup ${taken.backup.id} failed: WAL archive: segment ${lost.fileName} is missing`,
          ),
        );
      } finally {
        writeFileSync(path, kept);
      }
      const corrupted = storage === 'rbd' ? await corruptBeforeBackup(fx) : await corruptInSnapshot(fx, taken, storage);
      const corrupt = await failureOf(verify(fx, { backup: corrupted.backup.id, checks: { archive: false } }));
      assert.equal(corrupt.type, 'DrillFailed');
      assert.match(corrupt.message, /pg_amcheck found corruption|pg_checksums: [1-9]/);
      assert.match(corrupt.message, /checksum|line pointer/);
      const listed = await fx.run<ListBackupsResult>('listBackupsWorkflow', { cluster: fx.name });
      assert.equal(listed.backups.find((b) => b.id === corrupted.backup.id)?.verification?.ok, false);
      assert.deepEqual(scratchLeft(fx), []);
      if (storage === 'rbd') await fx.sql('DROP TABLE fragile');
    });
  });
}

/** A byte of the line pointers of the orders table's first page, flipped in the backup's own snapshot. */
async function corruptInSnapshot(
  fx: BackupFixture,
  taken: SnapshotBackupResult,
  storage: StorageUnderTest,
): Promise<SnapshotBackupResult> {
  const file = (await fx.sql<{ p: string }>("SELECT pg_relation_filepath('orders') AS p"))[0]!.p;
  const snapshot = taken.backup.snapshots.find((s) => s.role === 'data')!.ref;
  const heap = join(snapshot, file);
  const bytes = readFileSync(heap);
  bytes[26] = bytes[26]! ^ 0xff;
  // A btrfs snapshot is read-only: made writable for the flip, read-only again after.
  if (storage === 'btrfs') await runCommand('btrfs', ['property', 'set', snapshot, 'ro', 'false']);
  writeFileSync(heap, bytes);
  if (storage === 'btrfs') await runCommand('btrfs', ['property', 'set', snapshot, 'ro', 'true']);
  return taken;
}

/**
 * An RBD snapshot cannot be written: the page is corrupted on the primary's disk (a table no one
 * reads, so no buffer ever writes it back), then a backup of its own takes it along.
 */
async function corruptBeforeBackup(fx: BackupFixture): Promise<SnapshotBackupResult> {
  await fx.sql(
    "CREATE TABLE fragile WITH (autovacuum_enabled = false) AS SELECT g AS id, 'row ' || g AS body FROM generate_series(1, 500) g",
  );
  await fx.sql('CHECKPOINT');
  const file = (await fx.sql<{ p: string }>("SELECT pg_relation_filepath('fragile') AS p"))[0]!.p;
  const heap = join(fx.cluster.pgdata, file);
  const bytes = readFileSync(heap);
  bytes[26] = bytes[26]! ^ 0xff;
  writeFileSync(heap, bytes);
  return backup(fx);
}

refusalsSuite('copy');
refusalsSuite('btrfs');
refusalsSuite('rbd');
