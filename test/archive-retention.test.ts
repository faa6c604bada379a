// WAL archive retention after a backup's prune (README, "WAL archive retention"), on a real
// PostgreSQL archiving with archive_command: what keep: 1 removes and keeps, that the kept
// backup still restores to a late target, a second timeline's abandoned branch kept while a kept
// backup reaches it and removed once none does, `.history` files never removed, and catalog
// values that are refused.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { join } from 'node:path';
import { backupFixture, type BackupFixture } from './harness/backupFixture';
import { listArchivedSegments } from '../src/drivers/postgres/archive/walInspect';
import { readTimelines, segmentFileName } from '../src/drivers/postgres/archive/timelines';
import { parseLsn } from '../src/common/lsn';
import { parseCatalog } from '../src/config/catalog';
import { PRUNE_INTENT_FILE } from '../src/drivers/postgres/archive/archivePrune';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';
import type { ArchiveStatus } from '../src/contract/archive';

const SEGMENT = 16n * 1024n * 1024n;
const segmentOf = (lsn: string) => parseLsn(lsn) / SEGMENT;
const segmentName = (timeline: number, lsn: string) => segmentFileName(timeline, segmentOf(lsn), SEGMENT);

let seq = 0;
/** Fills and archives `n` WAL segments of their own. */
async function writeWal(fx: BackupFixture, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await fx.commit([
      `INSERT INTO orders SELECT 500000 + g + ${i * 100 + seq++ * 10_000}, 'filler', 1 FROM generate_series(1, 50) g`,
    ]);
    await fx.archiveNow();
  }
}

const segmentsOn = (fx: BackupFixture, timeline: number) =>
  listArchivedSegments(fx.archiveDir).filter((s) => s.timeline === timeline);

describe('WAL archive retention after a backup prune', () => {
  let fx: BackupFixture;
  const backup = (extra: Record<string, unknown> = {}) =>
    fx.run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: fx.name, ...extra });
  let kept: SnapshotBackupResult['backup'];
  let forkSegment: bigint;

  before(async function () {
    this.timeout(120_000);
    fx = await backupFixture('archive-keep', { storage: 'copy', rows: 200 });
  });
  after(async () => fx?.teardown());

  it('with keep: 1, removes the segments older than the kept backup, keeps everything it needs, and it still restores to a late target', async function () {
    this.timeout(300_000);
    const first = (await backup()).backup;
    await writeWal(fx, 2);
    await backup();
    await writeWal(fx, 2);
    const before = listArchivedSegments(fx.archiveDir);
    const taken = await backup({ keep: { count: 1 } });
    kept = taken.backup;
    assert.equal(taken.pruned?.deleted.length, 2);
    const pruned = taken.archivePruned!;
    assert.ok(pruned, 'the result reports the archive step');
    const keptFrom = segmentOf(kept.startLsn);
    const expected = before.filter((s) => s.segmentNumber < keptFrom);
    assert.ok(expected.length >= 4, `segments before the kept backup (${expected.length})`);
    // archive_timeout may have completed one more before the backup began.
    assert.ok(pruned.removedSegments >= expected.length, `${pruned.removedSegments} removed`);
    for (const s of expected) assert.ok(!existsSync(join(fx.archiveDir, s.fileName)), `${s.fileName} removed`);
    assert.ok(pruned.removedBytes >= expected.length * Number(SEGMENT));
    assert.equal(pruned.firstRemoved, expected[0]!.fileName);
    const left = segmentsOn(fx, 1);
    assert.ok(
      left.every((s) => s.segmentNumber >= keptFrom),
      'nothing older than the kept backup is left',
    );
    assert.equal(left[0]!.fileName, segmentName(1, kept.startLsn), "the kept backup's first segment stays");
    const leftNames = new Set(left.map((s) => s.fileName));
    for (const s of before.filter((s) => s.segmentNumber >= keptFrom))
      assert.ok(leftNames.has(s.fileName), `${s.fileName}, after the kept backup's start, stays`);
    // The backup history (.backup) file of the kept backup stays; those of the deleted ones go.
    const labels = readdirSync(fx.archiveDir).filter((f) => f.endsWith('.backup'));
    assert.equal(labels.length, 1, labels.join(', '));
    assert.ok(labels[0]!.startsWith(segmentName(1, kept.startLsn)));
    assert.ok(!existsSync(join(fx.archiveDir, segmentName(1, first.startLsn))));
    assert.equal(pruned.oldestNeeded?.fileName, segmentName(1, kept.startLsn));
    assert.deepEqual(pruned.oldestNeeded?.neededBy, [`backup ${kept.id}`]);
    assert.equal(existsSync(join(fx.archiveDir, PRUNE_INTENT_FILE)), false);

    // Restore the kept backup to a target after all that WAL: it replays from the archive.
    const late = await fx.commit(["INSERT INTO orders VALUES (20001, 'mark-late', 1)"]);
    await writeWal(fx, 2); // timeline 1 goes on after the target: the branch the restore abandons
    const after = await fx.commit(["INSERT INTO orders VALUES (20002, 'mark-after', 1)"]);
    await fx.archiveNow();
    const restored = await fx.run<RollbackRestoreResult>('rollbackRestoreWorkflow', {
      cluster: fx.name,
      confirm: fx.name,
      backup: kept.id,
      recoveryTarget: { xid: late.xid },
      inclusive: true,
      safetySnapshot: false,
    });
    assert.equal(restored.verified.timeline, 2);
    const marks = await fx.sql<{ customer: string }>(
      "SELECT customer FROM orders WHERE customer LIKE 'mark-%' ORDER BY id",
    );
    assert.deepEqual(
      marks.map((m) => m.customer),
      ['mark-late'],
      `restored up to ${late.xid}, not ${after.xid}`,
    );
    const fork = readTimelines(fx.archiveDir).get(2)!.history.at(-1)!.switchpoint;
    forkSegment = segmentOf(fork);
    assert.ok(
      segmentsOn(fx, 1).some((s) => s.segmentNumber > forkSegment),
      'timeline 1 has archived segments past the fork',
    );
  });

  it('keeps the abandoned branch of timeline 1 while a kept backup lies before its fork', async function () {
    this.timeout(300_000);
    await fx.commit(["INSERT INTO orders VALUES (20003, 'mark-tl2', 1)"]);
    await writeWal(fx, 1);
    const tl1Before = segmentsOn(fx, 1).map((s) => s.fileName);
    const taken = await backup({ keep: { count: 2 } });
    assert.equal(taken.backup.timeline, 2);
    assert.deepEqual(taken.pruned?.deleted, []);
    assert.deepEqual(
      segmentsOn(fx, 1).map((s) => s.fileName),
      tl1Before,
      'timeline 1, past the fork too, stays: the kept backup of timeline 1 can be restored along it',
    );
    assert.equal(taken.archivePruned?.removedSegments, 0);
  });

  it('removes the abandoned branch once no kept backup reaches it, and never a .history file', async function () {
    this.timeout(300_000);
    await writeWal(fx, 1);
    const taken = await backup({ keep: { count: 1 } });
    const newest = taken.backup;
    assert.equal(newest.timeline, 2);
    assert.equal(taken.pruned?.deleted.length, 2);
    assert.deepEqual(segmentsOn(fx, 1), [], 'no kept backup reaches timeline 1');
    const files = readdirSync(fx.archiveDir);
    assert.ok(!files.some((f) => f.startsWith('00000001') && f.endsWith('.partial')), 'its .partial segment went too');
    assert.ok(files.includes('00000002.history'), 'the history file stays');
    const tl2 = segmentsOn(fx, 2);
    assert.equal(tl2[0]!.fileName, segmentName(2, newest.startLsn));
    assert.ok(taken.archivePruned!.removedSegments > 0);

    const status = await fx.run<ArchiveStatus>('archiveStatusWorkflow', { cluster: fx.name });
    assert.ok(status.segments >= tl2.length);
    assert.equal(status.oldestNeeded?.fileName, segmentName(2, newest.startLsn));
    assert.deepEqual(status.oldestNeeded?.neededBy, [`backup ${newest.id}`]);
    assert.deepEqual(status.removable, { files: 0, bytes: 0 });
    assert.match(status.timelines ?? '', /timeline 2: forked from 1 at/);
  });

  it('removes nothing when keepExtra covers the whole archive, and nothing with prune: false', async function () {
    this.timeout(300_000);
    await writeWal(fx, 2);
    const before = readdirSync(fx.archiveDir).sort();
    fx.writeCatalog();
    const catalogWith = (retention: Record<string, unknown>) => {
      const doc = parse(readFileSync(fx.catalogPath, 'utf8')) as { clusters: Record<string, Record<string, unknown>> };
      doc.clusters[fx.name]!.walArchiveRetention = retention;
      writeFileSync(fx.catalogPath, stringify(doc));
    };
    catalogWith({ keepExtra: '1d' });
    const extra = await backup({ keep: { count: 1 } });
    assert.equal(extra.archivePruned?.removedSegments, 0);
    assert.match(extra.archivePruned!.notes.join(' '), /archived since .* are kept \(keepExtra\)/);
    catalogWith({ prune: false });
    const off = await backup({ keep: { count: 1 } });
    assert.match(off.archivePruned?.skipped ?? '', /prune is false/);
    const now = readdirSync(fx.archiveDir);
    assert.deepEqual(
      before.filter((f) => /^[0-9A-F]{24}$/.test(f) && !now.includes(f)),
      [],
      'no segment was removed',
    );
    fx.writeCatalog();
  });
});

describe('walArchiveRetention in the catalog', () => {
  const entry = (extra: Record<string, unknown>) =>
    JSON.stringify({
      clusters: {
        db: { target: { kind: 'local', pgdata: '/srv/pg/data', port: 5432 }, walArchive: '/srv/archive', ...extra },
      },
    });

  it('reads keepExtra and prune, and leaves old catalogs (walArchive a path) as they were', () => {
    const catalog = parseCatalog(entry({ walArchiveRetention: { keepExtra: '7d' } }), '/etc/pgops.yaml');
    assert.deepEqual(catalog.clusters.db!.walArchiveRetention, { keepExtra: '7d', prune: true });
    assert.equal(catalog.clusters.db!.walArchive, '/srv/archive');
    const old = parseCatalog(entry({}), '/etc/pgops.yaml');
    assert.equal(old.clusters.db!.walArchiveRetention, undefined);
  });

  it('refuses a bad duration, a number, an unknown field and retention without an archive', () => {
    const refused = (extra: Record<string, unknown>) => {
      try {
        parseCatalog(entry(extra), '/etc/pgops.yaml');
      } catch (err) {
        return (err as Error).message;
      }
      assert.fail(`accepted ${JSON.stringify(extra)}`);
    };
    assert.match(
      refused({ walArchiveRetention: { keepExtra: '7 days' } }),
      /cluster "db", field walArchiveRetention.keepExtra: keepExtra "7 days" is not a duration/,
    );
    assert.match(refused({ walArchiveRetention: { keepExtra: '20000d' } }), /longer than the maximum/);
    assert.match(refused({ walArchiveRetention: { keepExtra: 7 } }), /field walArchiveRetention.keepExtra/);
    assert.match(refused({ walArchiveRetention: { keep: '7d' } }), /field walArchiveRetention/);
    assert.match(refused({ walArchiveRetention: { prune: 'no' } }), /field walArchiveRetention.prune/);
    assert.match(
      parseCatalogError({
        db: { target: { kind: 'local', pgdata: '/srv/pg/data', port: 5432 }, walArchiveRetention: { keepExtra: '1d' } },
      }),
      /walArchiveRetention needs walArchive/,
    );
  });
});

function parseCatalogError(clusters: Record<string, unknown>): string {
  try {
    parseCatalog(JSON.stringify({ clusters }), '/etc/pgops.yaml');
  } catch (err) {
    return (err as Error).message;
  }
  return 'accepted';
}
