// Deletions a SIGKILL interrupts: a backup half deleted (a copy half removed, an RBD snapshot
// removed with its mark still there) is listed as "being deleted", refused by a restore, and
// finished by the next delete or prune, which report it; a prune retried after a kill finishes
// its own. Afterwards nothing of the backup is left: no file, no snapshot, no record, no mark.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { testEnv } from './harness/testEnv';
import { workerProcess, type WorkerProcess } from './harness/workers';
import { failureOf } from './harness/failures';
import { runThroughKills } from './harness/crashRuns';
import { backupFixture, type BackupFixture, type StorageUnderTest } from './harness/backupFixture';
import { testCeph } from './harness/ceph';
import { RBD_DELETING_PREFIX, RBD_META_PREFIX, RBD_SNAP_PREFIX } from '../src/drivers/storage/rbdImageSet';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { DeleteBackupResult, ListBackupsResult } from '../src/workflows/backupCatalog';

let seq = 0;

function deletionSuite(storage: StorageUnderTest) {
  describe(`deletions interrupted by a SIGKILL are finished by the next delete or prune (${storage})`, () => {
    let fx: BackupFixture;
    const workers: WorkerProcess[] = [];
    before(async function () {
      this.timeout(120_000);
      fx = await backupFixture(`delete-crash-${storage}`, { storage, rows: 5000 });
    });
    after(async () => {
      for (const w of workers) await w.kill();
      await fx?.teardown();
    });

    const backup = (extra: Record<string, unknown> = {}) =>
      fx.run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: fx.name, ...extra });
    const list = () => fx.run<ListBackupsResult>('listBackupsWorkflow', { cluster: fx.name });

    /** What is left of a backup in the storage itself: files, snapshots, record keys. */
    async function leftovers(id: string): Promise<string[]> {
      if (fx.storage.kind === 'local') {
        const dir = join(fx.storage.snapshotDir!, id);
        return existsSync(dir) ? readdirSync(dir).map((e) => `${id}/${e}`) : [];
      }
      if (fx.storage.kind !== 'rbd') throw new Error('local or rbd only');
      const { rbd } = await testCeph();
      const left: string[] = [];
      for (const v of fx.storage.volumes ?? []) {
        const spec = `${v.pool}/${v.image}`;
        for (const s of await rbd.listSnapshots(spec))
          if (s.name === `${RBD_SNAP_PREFIX}${id}`) left.push(`${spec}@${s.name}`);
        for (const key of Object.keys(await rbd.listMetadata(spec)))
          if (key === `${RBD_META_PREFIX}${id}` || key === `${RBD_DELETING_PREFIX}${id}`) left.push(`${spec} ${key}`);
      }
      return left;
    }

    /** Starts a deletion on a worker process, SIGKILLs it at `pause`, and terminates the run: the deletion is abandoned. */
    async function abandonDeletion(id: string, pause: string): Promise<void> {
      const { client } = await testEnv();
      const worker = await workerProcess(fx.taskQueue, fx.catalogPath, { PGOPS_TEST_PAUSE_AT: `${pause}:30000` });
      workers.push(worker);
      const handle = await client.workflow.start('deleteBackupWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `delete-killed-${Date.now()}-${seq++}`,
        args: [{ cluster: fx.name, backup: id, confirm: fx.name }],
      });
      await worker.waitForOutput(new RegExp(`"pausedAt":"${pause}"`), 120_000);
      await worker.kill('SIGKILL');
      await handle.terminate('the test abandons the deletion its worker was killed in');
    }

    it('lists a backup whose deletion was killed half-way as being deleted, refuses to restore it, and the next delete finishes it', async function () {
      this.timeout(300_000);
      const taken = await backup();
      const kept = await backup();
      const id = taken.backup.id;
      await abandonDeletion(id, 'delete-partly-removed');

      const left = await leftovers(id);
      if (storage === 'copy') {
        assert.ok(left.includes(`${id}/manifest.json.deleting`), `the mark is there: ${left.join(', ')}`);
        assert.ok(!left.includes(`${id}/manifest.json`), 'the record is no longer a backup');
        assert.ok(left.includes(`${id}/0-data`), 'the copy is half removed');
        const copyParts = readdirSync(join((fx.storage as { snapshotDir: string }).snapshotDir, id, '0-data'));
        const dataParts = readdirSync(fx.cluster.pgdata);
        assert.ok(
          copyParts.length < dataParts.length,
          `part of the copy is gone (${copyParts.length} of ${dataParts.length})`,
        );
      } else {
        assert.deepEqual(
          left.map((l) => l.replace(/^\S+ /, '')),
          [`${RBD_DELETING_PREFIX}${id}`],
          'the snapshot is removed, the mark is still there',
        );
      }

      const listed = await list();
      assert.deepEqual(
        listed.backups.map((b) => b.id),
        [kept.backup.id],
        'a backup being deleted is not listed as a backup',
      );
      assert.deepEqual(
        listed.beingDeleted.map((b) => [b.id, b.state, b.stopLsn]),
        [[id, 'being deleted', taken.backup.stopLsn]],
      );
      assert.match(listed.beingDeleted[0]!.deletion.by, /^delete-killed-/);
      assert.deepEqual(listed.strays, [], 'nor as a stray');

      const refused = await failureOf(
        fx.run('rollbackRestoreWorkflow', { cluster: fx.name, backup: id, confirm: fx.name }),
      );
      assert.match(refused.message, /is being deleted .*cannot be restored.*finishes the deletion/);

      const deleted = await fx.run<DeleteBackupResult>('deleteBackupWorkflow', {
        cluster: fx.name,
        backup: id,
        confirm: fx.name,
      });
      assert.equal(deleted.deleted.id, id);
      assert.equal(deleted.resumed, true, 'it says it finished an interrupted deletion');
      assert.equal('deletion' in deleted.deleted, false, 'the record as it was');
      assert.deepEqual(await leftovers(id), [], 'nothing of the backup is left');
      const after = await list();
      assert.deepEqual(after.beingDeleted, []);
      assert.deepEqual(after.strays, []);
      assert.deepEqual(
        after.backups.map((b) => b.id),
        [kept.backup.id],
      );
    });

    it('a prune killed inside its deletions finishes them on retry; a deletion abandoned elsewhere is finished by the next prune', async function () {
      this.timeout(400_000);
      const before = (await list()).backups.map((b) => b.id);
      const older = [(await backup()).backup.id, (await backup()).backup.id];
      const pruning = await runThroughKills<SnapshotBackupResult>(
        fx,
        workers,
        'snapshotBackupWorkflow',
        { cluster: fx.name, keep: { count: 1 } },
        [{ pause: 'delete-marked' }, { pause: 'delete-partly-removed' }],
      );
      const doomed = [...older, ...before];
      assert.deepEqual([...pruning.result.pruned!.deleted].sort(), [...doomed].sort(), 'every backup past the newest');
      assert.deepEqual(pruning.result.pruned!.finished, [], 'its own deletions are not reported as somebody else’s');
      for (const id of doomed) assert.deepEqual(await leftovers(id), [], `nothing is left of ${id}`);

      const abandoned = (await backup()).backup.id;
      await abandonDeletion(abandoned, 'delete-marked');
      assert.deepEqual(
        (await list()).beingDeleted.map((b) => b.id),
        [abandoned],
      );
      const next = await backup({ keep: { count: 5 } });
      assert.deepEqual(next.pruned!.finished, [abandoned], 'the prune reports the deletion it finished');
      assert.deepEqual(next.pruned!.deleted, []);
      assert.deepEqual(await leftovers(abandoned), [], 'nothing is left of the abandoned one');
      const after = await list();
      assert.deepEqual(
        after.backups.map((b) => b.id),
        [next.backup.id, pruning.result.backup.id],
      );
      assert.deepEqual(after.beingDeleted, []);
      assert.deepEqual(after.strays, []);
    });
  });
}

deletionSuite('copy');
deletionSuite('rbd');
