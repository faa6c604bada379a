// The read-ahead loop that runs inside a Kubernetes replica's container
// (drivers/postgres/archive/podReadAhead.ts), run here by the machine's own sh (dash) on local
// directories: the same script, the same arguments as pods/exec passes them. Segments staged in
// order and renamed when whole, never more than `depth` waiting, owned by pg_wal's owner, taken by
// the real restore_command string; the loop ends by itself when the heartbeat stops, when another
// run takes the directory over (leaving it to that run), and refuses a pg_wal it does not own.
// The pod side (pods/exec, a worker killed mid-replay) runs in kubernetes-real-node-pitr.
import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../src/drivers/exec';
import { readAheadRestoreCommand, readAheadStageDir } from '../src/drivers/postgres/archive/walReadAhead';
import {
  podReadAheadCommand,
  parsePodReadAheadResult,
  runPodReadAhead,
  segmentFileOf,
  type ContainerCommand,
} from '../src/drivers/postgres/archive/podReadAhead';
import { MB, REDO_TO_TARGET, segmentArchive, segmentLsn, segmentName } from './harness/walSegments';

const name = segmentName;
const lsnOf = segmentLsn;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The container, played by this machine: the command array run as is (no shell in between). */
const local: ContainerCommand = (command, opts) => runCommand(command[0]!, command.slice(1), opts);
const staged = (stage: string) => (existsSync(stage) ? readdirSync(stage).filter((n) => !n.startsWith('.')) : []);

describe('WAL read-ahead in the replica container (the sh loop, run by the local sh)', function () {
  this.timeout(60_000);
  let root: string;
  let archive: string;
  let pgdata: string;
  let stage: string;
  /** The processes the loop looks at for the startup process: none but what a test puts there. */
  let proc: string;
  beforeEach(() => {
    ({ root, archive, pgdata } = segmentArchive('pgops-pod-readahead-'));
    stage = readAheadStageDir(pgdata);
    proc = join(root, 'proc');
    writeFileSync(join(archive, `00000002${name(3).slice(8)}`), Buffer.alloc(MB, 3)); // another timeline
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('stages from the REDO to the target in order, at most depth waiting, taken by restore_command, nothing left behind', async () => {
    const restore = readAheadRestoreCommand(stage, `cp ${archive}/%f %p`)!;
    let replay = lsnOf(2);
    let maxWaiting = 0;
    const fetched: string[] = [];
    const abort = new AbortController();
    const starts: string[] = [];
    const running = runPodReadAhead({
      workerArchive: archive,
      archiveDir: archive,
      stageDir: stage,
      procDir: proc,
      ...REDO_TO_TARGET,
      run: local,
      replayLsn: () => replay,
      signal: abort.signal,
      heartbeatMs: 200,
      onLoopStarted: (id) => starts.push(id),
    });
    // The startup process: asks for each segment in order through the real restore_command string.
    for (let seg = 2; seg <= 7; seg++) {
      for (let i = 0; i < 400 && !staged(stage).includes(name(seg)); i++) {
        maxWaiting = Math.max(maxWaiting, staged(stage).length);
        await sleep(5);
      }
      const target = join(root, 'RECOVERYXLOG');
      const ran = await runCommand('sh', ['-c', restore.replace('%f', name(seg)).replace('%p', target)]);
      assert.equal(ran.code, 0, ran.stderr);
      assert.equal(statSync(target).size, MB);
      if (!existsSync(join(archive, name(seg)))) assert.fail('the archive lost a segment');
      fetched.push(name(seg));
      replay = lsnOf(seg + 1);
      await sleep(20);
    }
    const stats = await running; // ends by itself once every segment was taken
    assert.ok(stats, 'the loop reported');
    assert.deepEqual(
      { ...stats, detail: undefined },
      { staged: 6, consumed: 6, discarded: 0, skipped: 0, reason: 'done', detail: undefined },
    );
    assert.equal(starts.length, 1, 'one loop');
    assert.ok(maxWaiting <= 3, `${maxWaiting} segments waited at once (depth 3)`);
    assert.equal(existsSync(stage), false, 'the staging directory is removed');
    abort.abort();
  });

  it('waits for the container through a restart (exec refused), and gives up where the loop cannot run', async () => {
    // The pod being recreated: the API answers without an exit code a few times, then the loop runs.
    let refusals = 0;
    const restarting: ContainerCommand = (command, opts) =>
      command[3] === 'pgops-readahead' && refusals++ < 4
        ? Promise.resolve({ code: -1, stdout: '', stderr: 'unable to upgrade connection: container not found' })
        : local(command, opts);
    /** The loop through `run`, no position known, segments 2 to 7. */
    const through = (run: ContainerCommand, signal = new AbortController().signal) =>
      runPodReadAhead({
        ...REDO_TO_TARGET,
        workerArchive: archive,
        archiveDir: archive,
        stageDir: stage,
        procDir: proc,
        run,
        replayLsn: () => undefined,
        signal,
      });
    const abort = new AbortController();
    const running = through(restarting, abort.signal);
    for (let i = 0; i < 500 && staged(stage).length < 3; i++) await sleep(10);
    abort.abort();
    const stats = await running;
    assert.equal(stats?.reason, 'stopped', JSON.stringify(stats));
    assert.equal(stats?.staged, 3);
    assert.equal(existsSync(stage), false);

    // No sh in the container (exit code 127 each time): three tries, then the reason.
    const noShell: ContainerCommand = () => Promise.resolve({ code: 127, stdout: '', stderr: 'exec: "sh": not found' });
    const failed = await through(noShell);
    assert.deepEqual(failed && [failed.reason, failed.detail], ['failed', 'exec: "sh": not found']);

    // No pods/exec on the pod (the driver's 403): given up at once, the reason said.
    const forbidden: ContainerCommand = () =>
      Promise.reject(
        Object.assign(new Error('missing permission: create pods/exec'), { name: 'PermanentDriverError' }),
      );
    const refused = await through(forbidden);
    assert.deepEqual(refused && [refused.reason, refused.detail], ['refused', 'missing permission: create pods/exec']);
  });

  it('keeps whole segments of its range that an earlier loop staged (the pod a restart replaced) and removes the rest', async () => {
    mkdirSync(stage);
    copyFileSync(join(archive, name(2)), join(stage, name(2))); // whole, in the range: taken as staged
    writeFileSync(join(stage, name(3)), 'not whole'); // cut short: removed, staged again
    copyFileSync(join(archive, name(9)), join(stage, name(9))); // whole, outside the range: removed
    writeFileSync(join(stage, `.dead1.${name(4)}.partial`), 'x');
    const kept = statSync(join(stage, name(2))).ino;
    const running = local(
      podReadAheadCommand({
        archiveDir: archive,
        stageDir: stage,
        procDir: proc,
        runId: 'next1',
        first: name(2),
        last: name(4),
        depth: 3,
        staleSeconds: 3,
      }),
      { timeoutMs: 30_000 },
    );
    const wanted = [name(2), name(3), name(4)];
    for (let i = 0; i < 300 && staged(stage).sort().join() !== wanted.join(); i++) await sleep(10);
    assert.deepEqual(staged(stage).sort(), wanted);
    assert.equal(statSync(join(stage, name(2))).ino, kept, 'the whole one was kept, not copied again');
    assert.equal(statSync(join(stage, name(3))).size, MB, 'the short one was staged again');
    assert.ok(!readdirSync(stage).some((n) => n.includes('dead1')), "the dead loop's temporary file is gone");
    const result = parsePodReadAheadResult((await running).stdout);
    assert.deepEqual(result && [result.reason, result.staged], ['stale', 3]);
  });

  it("reads where replay stands from the startup process's title: segments it passed are removed, none copied after", async () => {
    const title = (seg: number) => {
      mkdirSync(join(proc, '4242'), { recursive: true });
      writeFileSync(join(proc, '4242', 'cmdline'), `postgres: startup recovering ${name(seg)}\0\0`);
    };
    title(1);
    const running = local(
      podReadAheadCommand({
        archiveDir: archive,
        stageDir: stage,
        procDir: proc,
        runId: 'title1',
        first: name(2),
        last: name(9),
        depth: 2,
        staleSeconds: 3,
      }),
      { timeoutMs: 30_000 },
    );
    for (let i = 0; i < 300 && staged(stage).length < 2; i++) await sleep(10);
    assert.deepEqual(staged(stage).sort(), [name(2), name(3)]);
    title(7); // replay went on without them (fetched by its own command)
    const wanted = [name(7), name(8)];
    for (let i = 0; i < 300 && staged(stage).sort().join() !== wanted.join(); i++) await sleep(10);
    assert.deepEqual(staged(stage).sort(), wanted, '2 and 3 removed, 4 to 6 never copied');
    const result = parsePodReadAheadResult((await running).stdout);
    assert.deepEqual(result && [result.staged, result.discarded, result.reason], [4, 2, 'stale']);
  });

  it('ends by itself when the heartbeat stops (a dead worker), removing what it staged', async () => {
    // Started the way the worker starts it, then left alone: nobody rewrites the heartbeat.
    const began = Date.now();
    const command = podReadAheadCommand({
      archiveDir: archive,
      stageDir: stage,
      procDir: proc,
      runId: 'dead1',
      first: name(1),
      last: name(9),
      depth: 2,
      staleSeconds: 3,
    });
    const running = local(command, { timeoutMs: 30_000 });
    for (let i = 0; i < 200 && staged(stage).length < 2; i++) await sleep(10);
    assert.deepEqual(staged(stage).sort(), [name(1), name(2)], 'depth 2');
    const result = parsePodReadAheadResult((await running).stdout);
    const took = Date.now() - began;
    assert.equal(result?.reason, 'stale', JSON.stringify(result));
    assert.ok(took >= 1_900 && took < 10_000, `ended after ${took} ms (stale after 3 s, read in whole seconds)`);
    assert.equal(existsSync(stage), false, 'its staged segments are gone');
  });

  it('a newer run takes the directory over: the older loop ends and leaves it to the newer one', async () => {
    const older = local(
      podReadAheadCommand({
        archiveDir: archive,
        stageDir: stage,
        procDir: proc,
        runId: 'older1',
        first: name(1),
        last: name(9),
        depth: 2,
        staleSeconds: 20,
      }),
      { timeoutMs: 30_000 },
    );
    for (let i = 0; i < 200 && staged(stage).length < 2; i++) await sleep(10);
    const newer = local(
      podReadAheadCommand({
        archiveDir: archive,
        stageDir: stage,
        procDir: proc,
        runId: 'newer1',
        first: name(5),
        last: name(6),
        depth: 4,
        staleSeconds: 3,
      }),
      { timeoutMs: 30_000 },
    );
    const first = parsePodReadAheadResult((await older).stdout);
    assert.equal(first?.reason, 'taken-over', JSON.stringify(first));
    // The older's staged segments, outside the newer's range, go (one it was copying when taken
    // over may still land: a whole segment, removed when the newer run ends).
    const settled = () => staged(stage).includes(name(6)) && !staged(stage).includes(name(1));
    for (let i = 0; i < 300 && !settled(); i++) await sleep(10);
    assert.ok(settled(), staged(stage).join());
    assert.ok(!staged(stage).includes(name(2)), staged(stage).join());
    const second = parsePodReadAheadResult((await newer).stdout);
    assert.equal(second?.reason, 'stale');
    assert.equal(existsSync(stage), false);
  });

  it("gives the staged files pg_wal's owner when run as root, and refuses to stage as another user", async function () {
    if (process.getuid?.() !== 0) this.skip();
    const postgres = await runCommand('id', ['-u', 'postgres']);
    if (postgres.code !== 0) this.skip();
    const uid = Number(postgres.stdout.trim());
    const gid = Number((await runCommand('id', ['-g', 'postgres'])).stdout.trim());
    chownSync(join(pgdata, 'pg_wal'), uid, gid);
    const running = local(
      podReadAheadCommand({
        archiveDir: archive,
        stageDir: stage,
        procDir: proc,
        runId: 'root1',
        first: name(1),
        last: name(2),
        depth: 2,
        staleSeconds: 3,
      }),
      { timeoutMs: 30_000 },
    );
    for (let i = 0; i < 200 && staged(stage).length < 2; i++) await sleep(10);
    for (const file of [stage, join(stage, name(1)), join(stage, name(2))]) {
      const s = statSync(file);
      assert.deepEqual([s.uid, s.gid], [uid, gid], `${file} is pg_wal's owner's`);
    }
    assert.equal(parsePodReadAheadResult((await running).stdout)?.reason, 'stale');

    // As a user who owns neither pg_wal nor is root: nothing staged, the reason said.
    chmodSync(root, 0o755);
    const other = await runCommand(
      'sh',
      podReadAheadCommand({
        archiveDir: archive,
        stageDir: stage,
        procDir: proc,
        runId: 'nobody1',
        first: name(1),
        last: name(2),
        depth: 2,
      }).slice(1),
      { asUser: 'nobody', cwd: '/tmp' },
    );
    const refused = parsePodReadAheadResult(other.stdout);
    assert.equal(refused?.reason, 'not-owner', other.stdout + other.stderr);
    assert.match(refused?.detail ?? '', new RegExp(`pg_wal=${uid}:${gid}`));
    assert.equal(existsSync(stage), false);
  });

  it('names the segment of a replay position as PostgreSQL does', () => {
    assert.equal(segmentFileOf(1, '0/5000060', 16n * BigInt(MB)), '000000010000000000000005');
    assert.equal(segmentFileOf(3, '1/FF000000', 16n * BigInt(MB)), '0000000300000001000000FF');
    assert.equal(segmentFileOf(1, '0/7000010', BigInt(MB)), name(0x70));
    assert.equal(segmentFileOf(1, undefined, BigInt(MB)), '-');
    assert.throws(() =>
      podReadAheadCommand({
        archiveDir: '/a b',
        stageDir: stage,
        procDir: proc,
        runId: 'x1',
        first: name(1),
        last: name(2),
        depth: 1,
      }),
    );
    assert.throws(() =>
      podReadAheadCommand({
        archiveDir: archive,
        stageDir: stage,
        procDir: proc,
        runId: 'x1',
        first: name(1),
        last: `00000002${name(2).slice(8)}`,
        depth: 1,
      }),
    );
  });
});
