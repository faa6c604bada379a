// Restores on a history with several timelines (README "History"): a backup of timeline 1, a
// first restore that promotes to timeline 2 and writes there, then restores of the same backup
// to targets on each branch. Before recovery_target_timeline was chosen from the archive's
// history files, the restore to a time on timeline 1 followed 'latest' (timeline 2), PostgreSQL
// ended with "recovery ended before configured recovery target was reached", and the start was
// retried every minute with the database down.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { failureOf } from './harness/failures';
import { backupFixture, type BackupFixture } from './harness/backupFixture';
import { refusesConnections } from '../src/drivers/postgres/session';
import { endpointOf } from '../src/dev/localPostgres';
import { listArchivedSegments } from '../src/drivers/postgres/archive/walInspect';
import { compareLsn } from '../src/common/lsn';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';
import { resultLosingSegment } from './harness/lostSegment';

let seq = 0;
const marks = async (fx: BackupFixture) =>
  (await fx.sql<{ customer: string }>("SELECT customer FROM orders WHERE customer LIKE 'mark-%' ORDER BY id")).map(
    (r) => r.customer,
  );

/** An LSN in the tail of the timeline's last archived segment, after the switch that ended it. */
function pastLastRecord(fx: BackupFixture, timeline: number): string {
  const last = listArchivedSegments(fx.archiveDir)
    .filter((s) => s.timeline === timeline)
    .at(-1)!;
  return last.endLsn.replace(/[0-9A-F]{1,8}$/, (low) => (parseInt(low, 16) - 0x100).toString(16).toUpperCase());
}

/** Runs a restore and takes `timeline`'s segment holding `lsn` away once its check has passed. */
async function restoreLosingSegment(
  fx: BackupFixture,
  input: Record<string, unknown>,
  timeline: number,
  lsn: string,
): Promise<{ type: string | undefined; message: string }> {
  const { client } = await testEnv();
  return withWorker(fx.taskQueue, fx.catalogPath, async () => {
    const handle = await client.workflow.start('rollbackRestoreWorkflow', {
      taskQueue: fx.taskQueue,
      workflowId: `rollbackRestoreWorkflow-lost-segment-${Date.now()}-${seq++}`,
      args: [{ cluster: fx.name, confirm: fx.name, ...input }],
    });
    return failureOf(resultLosingSegment(handle, fx.archiveDir, timeline, lsn));
  });
}

describe('restore on a history of several timelines', () => {
  let fx: BackupFixture;
  let backup: SnapshotBackupResult['backup'];
  let onTl1: { xid: string; commitTime: string; lsn: string };
  let laterOnTl1: { xid: string; commitTime: string; lsn: string };
  let onTl2: { xid: string; commitTime: string; lsn: string };
  let laterOnTl2: { xid: string; commitTime: string; lsn: string };
  const restore = (extra: Record<string, unknown>) =>
    fx.run<RollbackRestoreResult>('rollbackRestoreWorkflow', { cluster: fx.name, confirm: fx.name, ...extra });

  before(async function () {
    this.timeout(180_000);
    fx = await backupFixture('timelines', { storage: 'copy', rows: 200 });
    backup = (await fx.run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: fx.name })).backup;
    assert.equal(backup.timeline, 1);
    onTl1 = await fx.commit(["INSERT INTO orders VALUES (10001, 'mark-tl1-a', 1)"]);
    // Each later row in a segment of its own, which the tests of a failed recovery take away.
    await fx.archiveNow();
    await new Promise((r) => setTimeout(r, 1100));
    laterOnTl1 = await fx.commit(["INSERT INTO orders VALUES (10002, 'mark-tl1-b', 1)"]);
    await fx.archiveNow();
    // The first restore: back to the backup, promoted to timeline 2, which then gets a row of its own.
    const first = await restore({ backup: backup.id });
    assert.equal(first.verified.timeline, 2);
    onTl2 = await fx.commit(["INSERT INTO orders VALUES (10003, 'mark-tl2', 1)"]);
    await fx.archiveNow();
    laterOnTl2 = await fx.commit(["INSERT INTO orders VALUES (10004, 'later-on-tl2', 1)"]);
    await fx.archiveNow();
  });
  after(async () => fx?.teardown());

  it('restores to a time on timeline 1 after the fork, following timeline 1 (not latest), and says so', async function () {
    this.timeout(180_000);
    // Between the two commits of timeline 1: the first is kept, the second and timeline 2's row are not.
    const time = new Date(Date.parse(onTl1.commitTime) + 500).toISOString();
    const restored = await restore({ backup: backup.id, recoveryTarget: { time } });
    assert.equal(restored.recoveryTimeline?.timeline, 1, JSON.stringify(restored.recoveryTimeline));
    assert.equal(restored.recoveryFiles.settings.recovery_target_timeline, '1');
    assert.equal(compareLsn(restored.recoveryTimeline!.stopLsn!, laterOnTl1.lsn) < 0, true);
    assert.deepEqual(await marks(fx), ['mark-tl1-a']);
    assert.equal(restored.verified.inRecovery, false);
    assert.equal(restored.verified.timeline, 3, 'a new timeline after the largest one in the archive');
  });

  it('refuses an xid handed out on two branches unless the timeline is named, then follows the one named', async function () {
    this.timeout(180_000);
    // Timeline 2 started from the backup's next xid: its first transaction reused timeline 1's xid.
    assert.equal(onTl2.xid, onTl1.xid, 'the test needs the same xid on both branches');
    const before = await fx.checksum();
    const refused = await failureOf(restore({ backup: backup.id, recoveryTarget: { xid: onTl2.xid } }));
    assert.equal(refused.type, 'PreconditionFailed');
    assert.match(refused.message, /transaction \d+ lies on several timelines \(timeline 1 at .*timeline 2 at /);
    assert.match(refused.message, /recoveryTargetTimeline/);
    assert.match(refused.message, /timeline 2: forked from 1 at /, 'the timelines are listed');
    assert.equal(await fx.checksum(), before, 'nothing was changed');

    const restored = await restore({
      backup: backup.id,
      recoveryTarget: { xid: onTl2.xid },
      inclusive: true,
      recoveryTargetTimeline: 2,
    });
    assert.equal(restored.recoveryFiles.settings.recovery_target_timeline, '2');
    assert.deepEqual(await marks(fx), ['mark-tl2']);
  });

  it('refuses a timeline that does not exist and a target on a branch the backup does not lead to', async function () {
    this.timeout(180_000);
    const before = await fx.checksum();
    const noSuch = await failureOf(
      restore({ backup: backup.id, recoveryTarget: { time: onTl2.commitTime }, recoveryTargetTimeline: 9 }),
    );
    assert.match(noSuch.message, /timeline 9 does not exist in the WAL archive/);
    // A backup of today's timeline cannot go back to a row of timeline 1's abandoned branch.
    const now = (await fx.run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: fx.name })).backup;
    assert.ok(now.timeline >= 4);
    const elsewhere = await failureOf(restore({ backup: now.id, recoveryTarget: { xid: laterOnTl1.xid } }));
    assert.equal(elsewhere.type, 'PreconditionFailed');
    assert.match(elsewhere.message, /lies on no timeline reachable from backup/);
    assert.match(elsewhere.message, /timeline 1: the first/);
    assert.equal(await fx.checksum(), before, 'nothing was changed');
  });

  it('puts the safety snapshot back when recovery ends before its target: running as before, lock free', async function () {
    this.timeout(240_000);
    const before = await fx.checksum();
    const started = Date.now();
    const failure = await restoreLosingSegment(
      fx,
      { backup: backup.id, recoveryTarget: { lsn: laterOnTl2.lsn }, recoveryTargetTimeline: 2 },
      2,
      laterOnTl2.lsn,
    );
    assert.equal(failure.type, 'RestoreFailed');
    assert.match(failure.message, /recovery ended before configured recovery target was reached/);
    assert.match(failure.message, /safety snapshot .* was put back and the cluster is running again/);
    assert.ok(Date.now() - started < 120_000, 'not retried minute after minute');
    assert.equal(await fx.checksum(), before, 'the cluster is exactly as before the restore');
    // The lock was released: another operation runs at once.
    await fx.run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: fx.name });
  });

  it('without a safety snapshot, leaves the cluster stopped with recovery.signal removed, and says so', async function () {
    this.timeout(240_000);
    const failure = await failureOf(
      restore({ backup: backup.id, recoveryTarget: { lsn: '7F/0' }, recoveryTargetTimeline: 1, safetySnapshot: false }),
    );
    // Refused before anything is touched: the LSN is beyond the archive.
    assert.equal(failure.type, 'PreconditionFailed');
    // So is one inside the last archived segment but past its last record (the segment was
    // switched): PostgreSQL would run out of WAL before it.
    const past = await failureOf(
      restore({
        backup: backup.id,
        recoveryTarget: { lsn: pastLastRecord(fx, 1) },
        recoveryTargetTimeline: 1,
        safetySnapshot: false,
      }),
    );
    assert.equal(past.type, 'PreconditionFailed', past.message);
    assert.match(past.message, /lies on no timeline reachable from backup .*along timeline 1/);
    assert.equal(await refusesConnections(endpointOf(fx.cluster)), false, 'still running');

    const failed = await restoreLosingSegment(
      fx,
      { backup: backup.id, recoveryTarget: { lsn: laterOnTl1.lsn }, recoveryTargetTimeline: 1, safetySnapshot: false },
      1,
      laterOnTl1.lsn,
    );
    assert.equal(failed.type, 'RestoreFailed');
    assert.match(failed.message, /recovery ended before configured recovery target was reached/);
    assert.match(failed.message, /left STOPPED/);
    assert.equal(await refusesConnections(endpointOf(fx.cluster)), true, 'stopped');
    assert.equal(existsSync(join(fx.cluster.pgdata, 'recovery.signal')), false, 'recovery.signal removed');
    // And the cluster can be brought back by a restore of a good target.
    const back = await restore({
      backup: backup.id,
      recoveryTarget: { xid: laterOnTl1.xid },
      inclusive: true,
      recoveryTargetTimeline: 1, // timeline 2 handed the same xid out again
    });
    assert.equal(back.recoveryTimeline?.timeline, 1);
    assert.deepEqual(await marks(fx), ['mark-tl1-a', 'mark-tl1-b']);
  });
});
