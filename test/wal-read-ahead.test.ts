// The WAL read-ahead on its own (drivers/postgres/archive/walReadAhead.ts): segments staged in order,
// never more than `depth` waiting, whole or not at all, stale ones removed, nothing left behind;
// and the restore_command it puts in front of the replica's own. The replay side runs on a real
// replica in pitr-workflow.test.ts.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  isReadAheadRestoreCommand,
  readAheadRestoreCommand,
  readAheadStageDir,
  runReadAhead,
} from '../src/drivers/postgres/archive/walReadAhead';
import { MB, REDO_TO_TARGET, segmentArchive, segmentLsn, segmentName } from './harness/walSegments';

const name = segmentName;
const lsnOf = segmentLsn;

describe('WAL read-ahead (staging archived segments ahead of replay)', function () {
  this.timeout(30_000);
  let root: string;
  let archive: string;
  let pgdata: string;
  beforeEach(() => {
    ({ root, archive, pgdata } = segmentArchive('pgops-readahead-'));
    writeFileSync(join(archive, name(10)), Buffer.alloc(1000)); // not whole: left to restore_command
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('stages the segments from the REDO to the target in order, at most depth at a time, and leaves nothing behind', async () => {
    const stage = readAheadStageDir(pgdata);
    const taken: string[] = [];
    let maxWaiting = 0;
    let replay = lsnOf(2);
    const abort = new AbortController();
    // The startup process: takes each segment in order (as restore_command's mv does), slower than the copy.
    const consumer = (async () => {
      for (let seg = 2; seg <= 7; seg++) {
        for (;;) {
          const waiting = existsSync(stage) ? readdirSync(stage).filter((n) => !n.startsWith('.')) : [];
          maxWaiting = Math.max(maxWaiting, waiting.length);
          if (waiting.includes(name(seg))) break;
          await new Promise((r) => setTimeout(r, 5));
        }
        await new Promise((r) => setTimeout(r, 30));
        renameSync(join(stage, name(seg)), join(root, 'RECOVERYXLOG'));
        taken.push(name(seg));
        replay = lsnOf(seg + 1);
      }
    })();
    const stats = await runReadAhead({
      archiveDir: archive,
      stageDir: stage,
      ...REDO_TO_TARGET,
      replayLsn: () => replay,
      signal: abort.signal,
      pollMs: 2,
    });
    await consumer;
    assert.deepEqual(taken, [2, 3, 4, 5, 6, 7].map(name), 'every segment from the REDO to the target, in order');
    assert.deepEqual(stats, { staged: 6, consumed: 6, discarded: 0, skipped: 0 });
    assert.ok(maxWaiting <= 3, `${maxWaiting} segments waited at once (depth 3)`);
    assert.equal(existsSync(stage), false, 'the staging directory is removed');
  });

  it('removes a staged segment replay passed without it, never stages one not whole in the archive, and stops when aborted', async () => {
    const stage = readAheadStageDir(pgdata);
    let replay = lsnOf(8);
    const abort = new AbortController();
    const running = runReadAhead({
      archiveDir: archive,
      stageDir: stage,
      timeline: 1,
      fromLsn: lsnOf(8),
      depth: 2,
      replayLsn: () => replay,
      signal: abort.signal,
      pollMs: 2,
    });
    // Segments 8 and 9 get staged, 10 is not whole; then replay moves past 8 and 9 on its own.
    for (
      let i = 0;
      i < 200 && (!existsSync(stage) || readdirSync(stage).filter((n) => !n.startsWith('.')).length < 2);
      i++
    )
      await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(readdirSync(stage).sort(), [name(8), name(9)], 'depth 2: the third (not whole anyway) waits');
    replay = lsnOf(10);
    const stats = await running;
    assert.deepEqual(
      stats,
      { staged: 2, consumed: 0, discarded: 2, skipped: 0 },
      'segment 10, not whole, is never staged',
    );
    assert.equal(existsSync(stage), false);

    const aborted = new AbortController();
    aborted.abort();
    const none = await runReadAhead({
      archiveDir: archive,
      stageDir: stage,
      timeline: 1,
      fromLsn: lsnOf(1),
      depth: 2,
      replayLsn: () => undefined,
      signal: aborted.signal,
    });
    assert.equal(none.staged, 0);
    assert.equal(existsSync(stage), false);
  });

  it('stages fewer of large segments: never more than 256 MB in pg_wal', async () => {
    const big = join(root, 'big-archive');
    mkdirSync(big);
    const segBytes = 128 * MB;
    // 128 MB segments (wal_segment_size can be up to 1 GB), sparse: the names give 0/0, 0/8000000, …
    for (let seg = 0; seg < 4; seg++) {
      const file = join(big, `000000010000000000000${seg.toString(16).toUpperCase().padStart(3, '0')}`);
      writeFileSync(file, '');
      truncateSync(file, segBytes);
    }
    const stage = readAheadStageDir(pgdata);
    const abort = new AbortController();
    const running = runReadAhead({
      archiveDir: big,
      stageDir: stage,
      timeline: 1,
      fromLsn: '0/0',
      depth: 4,
      replayLsn: () => undefined,
      signal: abort.signal,
      pollMs: 2,
    });
    let seen = 0;
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setTimeout(r, 20));
      seen = Math.max(seen, existsSync(stage) ? readdirSync(stage).filter((n) => !n.startsWith('.')).length : 0);
    }
    abort.abort();
    const stats = await running;
    assert.equal(seen, 2, `${seen} segments of 128 MB staged at once`);
    assert.equal(stats.staged, 2);
    assert.equal(existsSync(stage), false);
  });

  it("puts a rename from the staging directory in front of the replica's own restore_command, which still fetches the rest", () => {
    const stage = readAheadStageDir(pgdata);
    const own = `cp ${archive}/%f %p`;
    const command = readAheadRestoreCommand(stage, own)!;
    assert.ok(isReadAheadRestoreCommand(command));
    assert.equal(readAheadRestoreCommand(stage, command), command, 'applied twice, wrapped once');
    assert.equal(readAheadRestoreCommand(stage, ''), undefined, 'nothing to fall back to: no read-ahead');
    assert.equal(readAheadRestoreCommand('/data/pg wal/x', own), undefined, 'a path that would be shell syntax');
    const run = (file: string) => {
      const sh = command.replace(/%f/g, file).replace(/%p/g, join(root, 'RECOVERYXLOG'));
      return spawnSync('sh', ['-c', sh], { cwd: pgdata }).status;
    };
    mkdirSync(stage);
    writeFileSync(join(stage, name(3)), Buffer.alloc(MB, 99));
    assert.equal(run(name(3)), 0);
    assert.equal(readdirSync(stage).length, 0, 'the staged segment was renamed into place');
    assert.equal(run(name(4)), 0, 'not staged: fetched from the archive by the own command');
    assert.notEqual(run(name(40)), 0, 'in neither: the own command fails, so does the whole');
  });
});
