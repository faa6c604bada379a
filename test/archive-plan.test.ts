// What archive retention decides, on archives made of files alone (sparse 16 MB segments and
// history files, no server): the cases the suites on a real PostgreSQL do not reach.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { planArchivePrune, type WalAnchor } from '../src/drivers/postgres/archive/archiveRetention';
import { carryOutPruneIntent, PRUNE_INTENT_FILE, readPruneIntent } from '../src/drivers/postgres/archive/archivePrune';

const SEGMENT = 16 * 1024 * 1024;

function archive(files: string[], histories: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgops-archive-plan-'));
  for (const name of files) {
    writeFileSync(join(dir, name), '');
    truncateSync(join(dir, name), SEGMENT);
  }
  for (const [name, text] of Object.entries(histories)) writeFileSync(join(dir, name), text);
  return dir;
}
const seg = (tli: number, n: number) =>
  `${tli.toString(16).toUpperCase().padStart(8, '0')}00000000${n.toString(16).toUpperCase().padStart(8, '0')}`;
const backupAt = (n: number, timeline = 1): WalAnchor => ({
  what: `backup at ${n}`,
  timeline,
  startLsn: `0/${(n * SEGMENT + 0x28).toString(16).toUpperCase()}`,
  stopLsn: `0/${(n * SEGMENT + 0x100).toString(16).toUpperCase()}`,
});
const removed = (dir: string, anchors: WalAnchor[], rules = {}) =>
  planArchivePrune(dir, anchors, rules).remove.map((f) => f.fileName);

describe('archive retention plan (files only)', () => {
  it('removes nothing without a kept backup, and says so', () => {
    const dir = archive([seg(1, 1), seg(1, 2)]);
    const plan = planArchivePrune(dir, []);
    assert.deepEqual(plan.remove, []);
    assert.match(plan.notes.join(' '), /no backup is kept/);
  });

  it('removes what precedes the backup, oldest first, and keeps a timeline whose history file is missing', () => {
    const dir = archive([seg(1, 1), seg(1, 2), seg(1, 3), seg(1, 4), seg(3, 1), seg(3, 2)]);
    const plan = planArchivePrune(dir, [backupAt(3)]);
    assert.deepEqual(
      plan.remove.map((f) => f.fileName),
      [seg(1, 1), seg(1, 2)],
    );
    assert.equal(plan.oldestNeeded?.fileName, seg(3, 1), 'timeline 3 without history counts as needed');
    assert.match(plan.notes.join(' '), /timeline 3 has no history file/);
  });

  it('follows the fork: the branch a kept backup before it can reach stays, the other goes', () => {
    // Timeline 2 forked from 1 in segment 3.
    const files = [seg(1, 1), seg(1, 2), seg(1, 3), seg(1, 4), seg(1, 5), seg(2, 3), seg(2, 4), seg(2, 5)];
    const histories = { '00000002.history': '1\t0/3000100\tno recovery target specified\n' };
    const before = archive(files, histories);
    assert.deepEqual(removed(before, [backupAt(2)]), [seg(1, 1)], 'timeline 1 after the fork stays');
    const after = archive(files, histories);
    assert.deepEqual(
      removed(after, [backupAt(4, 2)]),
      [seg(1, 1), seg(1, 2), seg(1, 3), seg(2, 3), seg(1, 4), seg(1, 5)],
      'a backup on timeline 2 past the fork reaches neither timeline 1 nor what precedes it',
    );
    assert.ok(existsSync(join(after, '00000002.history')));
    // A backup on timeline 1 after the fork cannot follow timeline 2.
    const late = archive(files, histories);
    assert.deepEqual(removed(late, [backupAt(4, 1)]), [
      seg(1, 1),
      seg(1, 2),
      seg(1, 3),
      seg(2, 3),
      seg(2, 4),
      seg(2, 5),
    ]);
  });

  it('keeps everything from keepFrom on every timeline, and everything after an anchor on an unknown timeline', () => {
    const dir = archive([seg(1, 1), seg(1, 2), seg(1, 3), seg(1, 4)]);
    assert.deepEqual(removed(dir, [backupAt(4)], { keepFrom: { lsn: '0/2000000', why: 'a replica' } }), [seg(1, 1)]);
    const unknown = planArchivePrune(dir, [backupAt(4), backupAt(2, 7)]);
    assert.deepEqual(
      unknown.remove.map((f) => f.fileName),
      [seg(1, 1)],
    );
    assert.match(unknown.notes.join(' '), /timeline 7, which the archive does not know/);
  });

  it('removes nothing when none of what the backups need is in the directory', () => {
    const dir = archive([seg(1, 1), seg(1, 2)]);
    const plan = planArchivePrune(dir, [backupAt(9)]);
    assert.deepEqual(plan.remove, []);
    assert.match(plan.notes.join(' '), /none of the segments the kept backups need/);
  });

  it('carries out an intent without ever removing a history file or a path outside the archive', async () => {
    const dir = archive([seg(1, 1), seg(1, 2)], { '00000002.history': '1\t0/1000000\tx\n' });
    writeFileSync(
      join(dir, PRUNE_INTENT_FILE),
      JSON.stringify({
        cluster: 'db',
        writtenBy: 'test',
        writtenAt: new Date().toISOString(),
        files: [
          { fileName: seg(1, 1), bytes: SEGMENT },
          { fileName: '00000002.history', bytes: 30 },
          { fileName: `../${seg(1, 2)}`, bytes: SEGMENT },
        ],
      }),
    );
    const intent = readPruneIntent(dir)!;
    assert.deepEqual(
      intent.files.map((f) => f.fileName),
      [seg(1, 1)],
    );
    const done = await carryOutPruneIntent(dir, intent);
    assert.deepEqual(done, { files: 1, segments: 1, bytes: SEGMENT, first: seg(1, 1), last: seg(1, 1) });
    assert.deepEqual(readdirSync(dir).sort(), [seg(1, 2), '00000002.history']);
    // Again: nothing left to do, nothing fails.
    assert.equal(readPruneIntent(dir), undefined);
  });

  it('drops an intent it cannot read (it was never acted on: intents are renamed into place whole)', () => {
    const dir = archive([seg(1, 1)]);
    writeFileSync(join(dir, PRUNE_INTENT_FILE), '{"cluster": "db", "fil');
    assert.equal(readPruneIntent(dir), undefined);
    assert.equal(existsSync(join(dir, PRUNE_INTENT_FILE)), false);
    assert.ok(existsSync(join(dir, seg(1, 1))));
  });
});
