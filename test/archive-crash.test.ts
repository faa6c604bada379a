// The archive step's removal is resumable: a worker SIGKILLed after the first file is removed
// leaves the intent file (what it had decided) in the archive; the next run finishes exactly
// that list before it decides anything new, and the backup's result counts it.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { testEnv } from './harness/testEnv';
import { withWorker, workerProcess, type WorkerProcess } from './harness/workers';
import { attemptsByActivity } from './harness/crashRuns';
import { backupFixture, type BackupFixture } from './harness/backupFixture';
import { listArchivedSegments } from '../src/drivers/postgres/archive/walInspect';
import { parseLsn } from '../src/common/lsn';
import { PRUNE_INTENT_FILE, type PruneIntent } from '../src/drivers/postgres/archive/archivePrune';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';

const SEGMENT = 16n * 1024n * 1024n;

describe('crash: the worker is SIGKILLed inside the WAL archive step', () => {
  let fx: BackupFixture;
  const workers: WorkerProcess[] = [];
  before(async function () {
    this.timeout(120_000);
    fx = await backupFixture('archive-crash', { storage: 'copy', rows: 200 });
  });
  after(async () => {
    for (const w of workers) await w.kill();
    await fx?.teardown();
  });

  it('finishes the removal the killed run began, then nothing older than the kept backup is left', async function () {
    this.timeout(300_000);
    const { client } = await testEnv();
    await withWorker(fx.taskQueue, fx.catalogPath, () =>
      client.workflow.execute('snapshotBackupWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `archive-crash-first-${Date.now()}`,
        args: [{ cluster: fx.name }],
      }),
    );
    for (let i = 0; i < 4; i++) {
      await fx.commit([`INSERT INTO orders SELECT 700000 + g + ${i * 100}, 'filler', 1 FROM generate_series(1, 50) g`]);
      await fx.archiveNow();
    }

    const first = await workerProcess(fx.taskQueue, fx.catalogPath, {
      PGOPS_TEST_PAUSE_AT: 'archive-prune-removing:20000',
    });
    workers.push(first);
    const handle = await client.workflow.start('snapshotBackupWorkflow', {
      taskQueue: fx.taskQueue,
      workflowId: `archive-crash-${Date.now()}`,
      args: [{ cluster: fx.name, keep: { count: 1 } }],
    });
    await first.waitForOutput(/"pausedAt":"archive-prune-removing"/, 180_000);
    await first.kill('SIGKILL');

    // What the killed run left: its intent, the first file of it removed, the others still there.
    const intentPath = join(fx.archiveDir, PRUNE_INTENT_FILE);
    assert.ok(existsSync(intentPath), 'the intent file is in the archive');
    const intent = JSON.parse(readFileSync(intentPath, 'utf8')) as PruneIntent;
    assert.ok(intent.files.length >= 4, `${intent.files.length} files decided`);
    assert.equal(existsSync(join(fx.archiveDir, intent.files[0]!.fileName)), false, 'the first one is gone');
    assert.ok(
      intent.files.slice(1).some((f) => existsSync(join(fx.archiveDir, f.fileName))),
      'the others are still there',
    );

    const next = await workerProcess(fx.taskQueue, fx.catalogPath);
    workers.push(next);
    const result = (await handle.result()) as SnapshotBackupResult;
    await next.kill();
    const pruned = result.archivePruned!;
    assert.equal(pruned.finishedFromEarlierRun, intent.files.length, 'the next run finished the list');
    assert.ok(pruned.removedFiles >= intent.files.length);
    assert.equal((await attemptsByActivity(handle)).get('pruneWalArchive'), 2);
    assert.equal(existsSync(intentPath), false, 'the intent is gone');
    for (const f of intent.files) assert.equal(existsSync(join(fx.archiveDir, f.fileName)), false, f.fileName);
    const keptFrom = parseLsn(result.backup.startLsn) / SEGMENT;
    assert.ok(
      listArchivedSegments(fx.archiveDir).every((s) => s.segmentNumber >= keptFrom),
      'nothing older than the kept backup is left',
    );
  });
});
