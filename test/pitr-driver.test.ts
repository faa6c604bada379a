// The delayed-replica PITR drivers against real PostgreSQL 15: a primary archiving every second,
// and a standby restoring from that archive 30 s behind. The its run in order and share the set:
// they follow the runbook (procedures.md §4) from the incident to back-to-normal.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'pg';
import { compareLsn, parseLsn } from '../src/common/lsn';
import { recoveryTargetProblem } from '../src/common/recoveryTarget';
import { createDelayedReplicaSet, type ReplicaSet } from '../src/dev/delayedReplicaSet';
import { pgCtl } from '../src/dev/localPostgres';
import { pollUntil } from '../src/drivers/waiting';
import { waitForSql, withSession, type PgEndpoint } from '../src/drivers/postgres/session';
import {
  NotAReplicaError,
  lsnDiff,
  pauseReplay,
  readCommitTimestamp,
  replayStatus,
  xactStatus,
  type ReplayStatus,
  type SettingWithSource,
} from '../src/drivers/postgres/replica/replayControl';
import { applyRecoveryTarget, clearRecoveryTarget } from '../src/drivers/postgres/replica/recoveryTarget';
import { checkTargetReachable } from '../src/drivers/postgres/replica/targetReachability';
import {
  archiveEndLsn,
  findCommit,
  findTimeTargetStop,
  listArchivedSegments,
  relationMap,
  scanArchive,
} from '../src/drivers/postgres/archive/walInspect';
import { commitHeldExclusiveLock } from '../src/drivers/postgres/archive/commitRecord';
import { locateIncidents } from '../src/drivers/postgres/archive/incidentLocator';
import { findExclusiveLockStart, xidStartBound } from '../src/drivers/postgres/lockingTransaction';
import { claimTestDir, keepTestDir } from './harness/staleRuns';
import type { Incident } from '../src/contract/operations/pitrSteps';

const ORDERS_CHECKSUM =
  "SELECT count(*)::int AS n, md5(coalesce(string_agg(id || ':' || customer, ',' ORDER BY id), '')) AS h FROM orders";
const ISO_NOW = `to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

async function one<T>(endpoint: PgEndpoint, sql: string, params: unknown[] = []): Promise<T> {
  return withSession(endpoint, async (c) => (await c.query(sql, params)).rows[0] as T);
}

/** Runs `statements` in one transaction and returns its xid. */
async function inTransaction(c: Client, statements: string[], end: 'COMMIT' | 'ROLLBACK' = 'COMMIT'): Promise<string> {
  await c.query('BEGIN');
  for (const sql of statements) await c.query(sql);
  const xid = String((await c.query<{ x: string }>('SELECT pg_current_xact_id()::text AS x')).rows[0]?.x);
  await c.query(end);
  return xid;
}

async function restartReplica(set: ReplicaSet): Promise<void> {
  // A restart replays from the last restartpoint before it accepts connections: long timeout.
  await pgCtl(set.replica, ['restart', '-m', 'fast', '-w', '-t', '600', '-l', set.replica.logFile]);
  await waitForSql(set.replicaEndpoint, { timeoutMs: 300_000 });
}

async function waitForArchive(set: ReplicaSet, lsn: string): Promise<void> {
  await pollUntil(
    async () => {
      const end = archiveEndLsn(set.archiveDir);
      return end && compareLsn(end, lsn) > 0 ? { done: undefined } : { waiting: `archive ends at ${end}` };
    },
    { intervalMs: 200, timeoutMs: 60_000, what: `the archive to hold WAL up to ${lsn}` },
  );
}

async function waitForReplay(set: ReplicaSet, what: string, done: (s: ReplayStatus) => boolean): Promise<ReplayStatus> {
  return pollUntil<ReplayStatus>(
    async () => {
      const status = await replayStatus(set.replicaEndpoint);
      return done(status) ? { done: status } : { waiting: `${status.pauseState} at ${status.replayLsn}` };
    },
    { intervalMs: 250, timeoutMs: 180_000, what },
  );
}

describe('delayed-replica PITR drivers (real primary, WAL archive and a 30 s delayed replica)', function () {
  this.timeout(300_000);
  let dir: string;
  let set: ReplicaSet;
  let preIncident: { n: number; h: string };
  let incidentFrom: string;
  let badXid: string;
  let truncateXid: string;
  let dropXid: string;
  let abortedXid: string;
  let lsnBeforeIncident: string;
  let lsnAfterIncident: string;
  let incidents: Incident[];
  let badCommit: { commitLsn: string; commitTime: string };
  let originalDelay: SettingWithSource;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pgops-pitr-'));
    claimTestDir(dir);
    chmodSync(dir, 0o755); // the postgres OS user must reach the clusters below it
    set = await createDelayedReplicaSet({ dir, delay: '30s' });
    await withSession(set.primaryEndpoint, async (c) => {
      await c.query('CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL)');
      await c.query("INSERT INTO orders SELECT g, 'customer-' || (g % 97) FROM generate_series(1, 1000) g");
      await c.query('CREATE TABLE audit_log (id int, note text)');
      await c.query("INSERT INTO audit_log SELECT g, 'entry ' || g FROM generate_series(1, 50) g");
      await c.query('CREATE TABLE scratch (id int)');
      await c.query('INSERT INTO scratch SELECT generate_series(1, 20)');
    });
    preIncident = await one(set.primaryEndpoint, ORDERS_CHECKSUM);
    // The replica must know the tables (it names them for locateIncidents): wait out the delay once.
    await pollUntil(
      async () => {
        const seen = await one<{ n: number }>(
          set.replicaEndpoint,
          "SELECT count(*)::int AS n FROM pg_class WHERE relname = 'scratch'",
        ).catch(() => ({ n: 0 }));
        return seen.n === 1 ? { done: undefined } : { waiting: 'tables not replayed yet' };
      },
      { intervalMs: 500, timeoutMs: 120_000, what: 'the delayed replica to replay the set-up' },
    );
    const replicaRows = await one<{ n: number; h: string }>(set.replicaEndpoint, ORDERS_CHECKSUM);
    assert.deepEqual(replicaRows, preIncident);
  });

  after(async () => {
    await set?.stop();
    if (dir && process.env.PGOPS_KEEP_TEST_DIRS) keepTestDir(dir);
    else if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('pauses replay within a second while the bad DELETE is still held back by the delay', async () => {
    ({ l: lsnBeforeIncident, t: incidentFrom } = await one<{ l: string; t: string }>(
      set.primaryEndpoint,
      `SELECT pg_current_wal_insert_lsn()::text AS l, ${ISO_NOW} AS t`,
    ));
    await withSession(set.primaryEndpoint, async (c) => {
      badXid = await inTransaction(c, ["DELETE FROM orders WHERE customer IN ('customer-3', 'customer-5')"]);
      await c.query("INSERT INTO orders SELECT g, 'late-' || g FROM generate_series(2001, 2010) g"); // good writes after it
    });
    const started = performance.now();
    const paused = await pauseReplay(set.replicaEndpoint);
    const ms = performance.now() - started;
    console.log(
      `      pauseReplay returned '${paused.pauseState}' in ${ms.toFixed(1)} ms (replay at ${paused.replayLsn})`,
    );
    assert.ok(ms < 1000, `pauseReplay took ${ms} ms`);
    assert.ok(['paused', 'pause requested'].includes(paused.pauseState));
    assert.ok(
      ['paused', 'pause requested'].includes((await pauseReplay(set.replicaEndpoint)).pauseState),
      'pausing again is harmless',
    );
    assert.deepEqual(
      await one(set.replicaEndpoint, ORDERS_CHECKSUM),
      preIncident,
      'the DELETE is not applied on the replica',
    );

    // More incidents while the replica stays paused: a TRUNCATE, a DROP TABLE and a rolled-back DELETE.
    await withSession(set.primaryEndpoint, async (c) => {
      truncateXid = await inTransaction(c, ['TRUNCATE audit_log']);
      dropXid = await inTransaction(c, ['DROP TABLE scratch']);
      abortedXid = await inTransaction(c, ['DELETE FROM orders WHERE id > 900'], 'ROLLBACK');
    });
    lsnAfterIncident = (await one<{ l: string }>(set.primaryEndpoint, 'SELECT pg_current_wal_insert_lsn()::text AS l'))
      .l;
    await waitForArchive(set, lsnAfterIncident);
  });

  it('locates the DELETE, the TRUNCATE and the DROP TABLE in the archive with xid, commit time, LSN and table', async () => {
    const relfilenodes = await relationMap(set.replicaEndpoint); // the paused replica still has scratch
    const started = performance.now();
    incidents = await locateIncidents(set.archiveDir, { from: incidentFrom, relfilenodes });
    console.log(
      `      locateIncidents over ${listArchivedSegments(set.archiveDir).length} segments: ${(performance.now() - started).toFixed(0)} ms`,
    );
    const byXid = new Map(incidents.map((i) => [i.xid, i]));
    assert.deepEqual([...byXid.keys()], [badXid, truncateXid, dropXid], JSON.stringify(incidents));

    const deleted =
      1000 -
      (await one<{ n: number }>(set.primaryEndpoint, 'SELECT count(*)::int AS n FROM orders WHERE id <= 1000')).n;
    const bad = byXid.get(badXid)!;
    assert.deepEqual(
      bad.relations.map((r) => [r.name, r.deletes, r.truncated, r.dropped]),
      [['public.orders', deleted, undefined, undefined]],
    );
    assert.equal(bad.rowsDeleted, deleted);
    const committedAt = await one<{ t: string }>(
      set.primaryEndpoint,
      `SELECT to_char(pg_xact_commit_timestamp($1::text::xid) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t`,
      [badXid],
    );
    assert.equal(bad.commitTime, committedAt.t, 'commit time to the microsecond, as track_commit_timestamp has it');
    assert.ok(compareLsn(bad.commitLsn, lsnBeforeIncident) > 0 && compareLsn(bad.commitLsn, lsnAfterIncident) < 0);

    assert.deepEqual(
      byXid.get(truncateXid)!.relations.map((r) => [r.name, r.truncated, r.dropped]),
      [['public.audit_log', true, undefined]],
    );
    assert.deepEqual(
      byXid.get(dropXid)!.relations.map((r) => [r.name, r.truncated, r.dropped]),
      [['public.scratch', undefined, true]],
    );

    const onlyOrders = await locateIncidents(set.archiveDir, { from: incidentFrom, table: 'orders', relfilenodes });
    assert.deepEqual(
      onlyOrders.map((i) => i.xid),
      [badXid],
    );
    badCommit = (await findCommit(set.archiveDir, badXid))!;
    assert.deepEqual(badCommit, { commitLsn: bad.commitLsn, commitTime: bad.commitTime });
    assert.equal(await findCommit(set.archiveDir, abortedXid), undefined, 'a rolled-back transaction has no commit');
  });

  it('accepts the bad transaction as a target and reports its commit LSN and time', async () => {
    const reach = await checkTargetReachable(
      set.replicaEndpoint,
      { xid: badXid },
      { archiveDir: set.archiveDir, primary: set.primaryEndpoint },
    );
    const status = await replayStatus(set.replicaEndpoint);
    // The verdict also says where replay stood when it was judged (paused: where it is now).
    assert.deepEqual(reach, {
      ok: true,
      targetLsn: badCommit.commitLsn,
      targetTime: badCommit.commitTime,
      replayLsn: status.replayLsn,
    });
    console.log(
      `      replica at ${status.replayLsn} (${status.pauseState}); bytes left to the target: ${await lsnDiff(set.replicaEndpoint, badCommit.commitLsn, status.replayLsn!)}`,
    );
  });

  it('refuses targets the replica has already replayed past', async () => {
    const status = await replayStatus(set.replicaEndpoint);
    for (const lsn of [status.replayLsn!, '0/1000000']) {
      const reach = await checkTargetReachable(set.replicaEndpoint, { lsn }, { archiveDir: set.archiveDir });
      assert.equal(reach.ok, false);
      assert.match(!reach.ok ? reach.reason : '', /already replayed/);
    }
    const past = await checkTargetReachable(
      set.replicaEndpoint,
      { time: status.replayTimestamp! },
      { archiveDir: set.archiveDir },
    );
    assert.match(!past.ok ? past.reason : '', /already replayed/);
    const setupXid = (
      await one<{ x: string }>(set.replicaEndpoint, "SELECT xmin::text AS x FROM pg_class WHERE relname = 'orders'")
    ).x;
    assert.equal(await xactStatus(set.replicaEndpoint, setupXid), 'committed');
    const committed = await checkTargetReachable(
      set.replicaEndpoint,
      { xid: setupXid },
      { archiveDir: set.archiveDir },
    );
    assert.match(!committed.ok ? committed.reason : '', /already committed/);
  });

  it('refuses a transaction that does not exist, a rolled-back one, and targets beyond the archive', async () => {
    const opts = { archiveDir: set.archiveDir, primary: set.primaryEndpoint };
    assert.equal(await xactStatus(set.primaryEndpoint, '4000000'), 'future');
    const future = await checkTargetReachable(set.replicaEndpoint, { xid: '4000000' }, opts);
    assert.match(!future.ok ? future.reason : '', /does not exist/);
    const aborted = await checkTargetReachable(set.replicaEndpoint, { xid: abortedXid }, opts);
    assert.match(!aborted.ok ? aborted.reason : '', /rolled back/);
    const later = new Date(Date.now() + 3_600_000).toISOString();
    const tomorrow = await checkTargetReachable(set.replicaEndpoint, { time: later }, opts);
    assert.match(!tomorrow.ok ? tomorrow.reason : '', /in the future/);
    const beyond = await checkTargetReachable(set.replicaEndpoint, { lsn: 'FF/0' }, opts);
    assert.match(!beyond.ok ? beyond.reason : '', /beyond the end of the WAL archive/);
    assert.match(recoveryTargetProblem({ time: '2024-05-01 12:00:00' }) ?? '', /no time zone.*primary's clock/);
  });

  it('refuses to pause or target the primary: it is not a replica', async () => {
    const reach = await checkTargetReachable(set.primaryEndpoint, { xid: badXid }, { archiveDir: set.archiveDir });
    assert.match(!reach.ok ? reach.reason : '', /not a replica/);
    await assert.rejects(pauseReplay(set.primaryEndpoint), NotAReplicaError);
    await assert.rejects(applyRecoveryTarget(set.primaryEndpoint, { xid: badXid }, false), NotAReplicaError);
  });

  it('replays to just before the bad DELETE after applyRecoveryTarget and a restart, and pauses there', async () => {
    originalDelay = await applyRecoveryTarget(set.replicaEndpoint, { xid: badXid }, false);
    assert.equal(originalDelay.value, '30000');
    assert.match(originalDelay.sourcefile ?? '', /postgresql\.conf$/);
    assert.deepEqual(
      await applyRecoveryTarget(set.replicaEndpoint, { xid: badXid }, false),
      originalDelay,
      'applying again changes nothing',
    );
    await restartReplica(set);
    const status = await waitForReplay(set, 'replay to pause at the target', (s) => s.pauseState === 'paused');
    assert.equal(status.settings.recovery_min_apply_delay.value, '0');
    assert.equal(status.settings.recovery_target_xid.value, badXid);
    assert.ok(
      compareLsn(status.replayLsn!, badCommit.commitLsn) <= 0 &&
        parseLsn(badCommit.commitLsn) - parseLsn(status.replayLsn!) < 8n,
    );
    assert.match(
      readFileSync(set.replica.logFile, 'utf8'),
      new RegExp(`recovery stopping before commit of transaction ${badXid}`),
    );
    assert.deepEqual(await one(set.replicaEndpoint, ORDERS_CHECKSUM), preIncident, 'exactly the pre-incident rows');
    assert.deepEqual(
      await applyRecoveryTarget(set.replicaEndpoint, { xid: badXid }, false),
      originalDelay,
      'a retried apply after the restart still returns the original delay',
    );
  });

  it('brings the delay back after clearRecoveryTarget and a restart, and replay continues', async () => {
    await clearRecoveryTarget(set.replicaEndpoint, originalDelay);
    await clearRecoveryTarget(set.replicaEndpoint, originalDelay); // idempotent
    await restartReplica(set);
    const status = await waitForReplay(
      set,
      'replay past the bad commit',
      (s) => compareLsn(s.replayLsn!, badCommit.commitLsn) > 0,
    );
    assert.equal(status.pauseState, 'not paused');
    assert.deepEqual(status.settings.recovery_min_apply_delay, originalDelay);
    assert.equal(status.settings.recovery_target_xid.value, '');
    await assert.rejects(applyRecoveryTarget(set.replicaEndpoint, { xid: '4000000' }, false), /not paused/);
  });

  it('stops just before a bad transaction given by its commit time (inclusive = false)', async () => {
    const before2 = await one<{ n: number; h: string }>(set.primaryEndpoint, ORDERS_CHECKSUM);
    let xid2 = '';
    await withSession(set.primaryEndpoint, async (c) => {
      xid2 = await inTransaction(c, ['DELETE FROM orders WHERE id BETWEEN 100 AND 199']);
      await c.query("INSERT INTO orders VALUES (3001, 'after-second-incident')");
    });
    assert.ok(['paused', 'pause requested'].includes((await pauseReplay(set.replicaEndpoint)).pauseState));
    await waitForArchive(
      set,
      (await one<{ l: string }>(set.primaryEndpoint, 'SELECT pg_current_wal_insert_lsn()::text AS l')).l,
    );
    const commit = (await findCommit(set.archiveDir, xid2))!;
    const target = { time: commit.commitTime };
    const reach = await checkTargetReachable(set.replicaEndpoint, target, {
      archiveDir: set.archiveDir,
      primary: set.primaryEndpoint,
      inclusive: false,
    });
    assert.ok(reach.ok && typeof reach.replayLsn === 'string', 'the verdict says where replay stood');
    assert.deepEqual(
      { ...reach, replayLsn: undefined },
      { ok: true, targetLsn: commit.commitLsn, targetTime: commit.commitTime, replayLsn: undefined },
    );
    const delay = await applyRecoveryTarget(set.replicaEndpoint, target, false);
    assert.deepEqual(delay, originalDelay);
    await restartReplica(set);
    const status = await waitForReplay(set, 'replay to pause at the time target', (s) => s.pauseState === 'paused');
    // Written as UTC with '+00': a 'Z' passes ALTER SYSTEM but fails the check at server start.
    assert.equal(status.settings.recovery_target_time.value, commit.commitTime.replace('T', ' ').replace('Z', '+00'));
    assert.ok(compareLsn(status.replayLsn!, commit.commitLsn) <= 0);
    assert.deepEqual(
      await one(set.replicaEndpoint, ORDERS_CHECKSUM),
      before2,
      'exactly the rows before the second DELETE',
    );
    await clearRecoveryTarget(set.replicaEndpoint, delay);
    await restartReplica(set);
    const after = await waitForReplay(
      set,
      'replay past the second bad commit',
      (s) => compareLsn(s.replayLsn!, commit.commitLsn) > 0,
    );
    assert.deepEqual(after.settings.recovery_min_apply_delay, originalDelay);
  });

  it('finds a commit in any segment of the archive, newest or oldest, and not one that never committed', async function () {
    this.timeout(180_000);
    const committed: Array<{ xid: string; segment: string }> = [];
    const aborted = await withSession(set.primaryEndpoint, async (c) => {
      // Eleven segments, each with one committed transaction and few snapshots (no checkpoints):
      // the search reads the newest segment, then bisects on whatever snapshots there are.
      for (let i = 0; i < 11; i++) {
        const xid = await inTransaction(c, [`INSERT INTO orders VALUES (${900_000 + i}, 'window ${i}')`]);
        const file = await c.query<{ f: string }>('SELECT pg_walfile_name(pg_current_wal_insert_lsn()) AS f');
        committed.push({ xid, segment: file.rows[0]!.f });
        await c.query('SELECT pg_switch_wal()');
      }
      const rolledBack = await inTransaction(c, ["INSERT INTO orders VALUES (999999, 'never')"], 'ROLLBACK');
      await c.query('SELECT pg_switch_wal()');
      return rolledBack;
    });
    await waitForArchive(
      set,
      await one<{ l: string }>(set.primaryEndpoint, 'SELECT pg_current_wal_insert_lsn()::text AS l').then((r) => r.l),
    );
    for (const { xid, segment } of [committed[0]!, committed[4]!, committed[10]!]) {
      const found = await findCommit(set.archiveDir, xid);
      assert.ok(found, `the commit of ${xid} was found`);
      const [, hi, lo] = /^([0-9A-F]+)\/([0-9A-F]+)$/.exec(found.commitLsn)!;
      const segmentNumber = ((BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`)) / (16n * 1024n * 1024n);
      assert.equal(
        BigInt(`0x${segment.slice(16)}`) + (BigInt(`0x${segment.slice(8, 16)}`) << 8n),
        segmentNumber,
        `${xid} committed in ${segment}`,
      );
    }
    assert.equal(await findCommit(set.archiveDir, aborted), undefined, 'a rolled-back transaction has no commit');
    assert.equal(await findCommit(set.archiveDir, '4000000000'), undefined, 'an xid never used has no commit');
  });

  it("finds a commit from the primary's commit time, or by bisecting on RUNNING_XACTS snapshots; a time target by bisecting on commit times; reading only the segments around the record", async function () {
    this.timeout(180_000);
    const xids: string[] = [];
    let running = '';
    let lastLsn = '';
    await withSession(set.primaryEndpoint, async (c) => {
      // Twenty segments, each with one commit and a checkpoint (whose RUNNING_XACTS snapshot the
      // bisection reads); one transaction stays open over five of them, listed as running.
      for (let i = 0; i < 20; i++) {
        if (i === 12) {
          await c.query('BEGIN');
          await c.query(`INSERT INTO orders VALUES (${910_000 + i}, 'open over five segments')`);
          running = String((await c.query<{ x: string }>('SELECT pg_current_xact_id()::text AS x')).rows[0]?.x);
        }
        if (i === 17) await c.query('COMMIT');
        await withSession(set.primaryEndpoint, async (other) => {
          xids.push(await inTransaction(other, [`INSERT INTO orders VALUES (${920_000 + i}, 'bisect ${i}')`]));
          await other.query('CHECKPOINT');
          await other.query('SELECT pg_switch_wal()');
        });
      }
      await c.query("INSERT INTO orders VALUES (930000, 'the newest segment')");
      lastLsn = (await c.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]!.l;
      await c.query('SELECT pg_switch_wal()');
    });
    await waitForArchive(set, lastLsn);
    const archived = listArchivedSegments(set.archiveDir).length;
    for (const xid of [xids[0]!, xids[7]!, xids[13]!, running]) {
      let whole: string | undefined;
      await scanArchive(set.archiveDir, { rmgrs: ['Transaction'], xid: Number(xid) }, (r) => {
        whole = r.lsn;
        return /^COMMIT/.test(r.desc);
      });
      assert.ok(whole, `${xid} committed`);
      const stats = { probes: 0, segmentsRead: 0 };
      const found = await findCommit(set.archiveDir, xid, { stats });
      assert.equal(found?.commitLsn, whole, `${xid}: the same commit as a scan of the whole archive`);
      assert.ok(
        stats.probes >= 1 && stats.probes <= Math.ceil(Math.log2(archived)) + 1,
        `${xid}: ${stats.probes} probes`,
      );
      assert.ok(stats.segmentsRead <= 5, `${xid}: ${stats.segmentsRead} segments read in full of ${archived}`);
    }
    const stats = { probes: 0, segmentsRead: 0 };
    assert.equal(await findCommit(set.archiveDir, '4000000000', { stats }), undefined, 'an xid never used');
    assert.ok(stats.segmentsRead <= 5, `an xid never used: ${stats.segmentsRead} segments read in full`);

    // With the primary's commit time (track_commit_timestamp) the search starts at the first
    // segment archived at or after it: no probe, and no segment archived before it is read.
    const times: string[] = [];
    for (const xid of [xids[0]!, xids[7]!, xids[13]!, running]) {
      const time = await withSession(set.primaryEndpoint, (c) => readCommitTimestamp(c, xid));
      assert.ok(time, `${xid}: the primary keeps its commit time`);
      times.push(time);
      const stats = { probes: 0, segmentsRead: 0 };
      const byTime = await findCommit(set.archiveDir, xid, { stats, commitTimeHint: Promise.resolve(time) });
      assert.equal(byTime?.commitTime, time, `${xid}: found from its commit time`);
      // What it must read: the first segment archived at or after the commit, on to the commit's
      // own (the archiver's lag, longer on a loaded machine), and perhaps the newest segment, read
      // while the hint was awaited.
      const segments = listArchivedSegments(set.archiveDir);
      const first = segments.findIndex((g) => Date.parse(g.archivedAt) >= Math.floor(Date.parse(time)));
      const own = segments.findIndex((g) => compareLsn(g.endLsn, byTime!.commitLsn) > 0);
      const lag = own - first + 1;
      assert.ok(first >= 0 && lag >= 1, `${xid}: segment ${first} archived after the commit, the commit in ${own}`);
      assert.ok(
        stats.probes === 0 && stats.segmentsRead <= lag + 1,
        `${xid}: ${JSON.stringify(stats)}, archiver lag ${lag} segments`,
      );
    }
    // A hint the archive's clock disagrees with (later than the commit, or after every segment):
    // the commit is still found, by reading what the hint skipped.
    for (const wrongHint of [times[2]!, '2099-01-01T00:00:00.000000Z']) {
      const stats = { probes: 0, segmentsRead: 0 };
      const found = await findCommit(set.archiveDir, xids[0]!, { stats, commitTimeHint: Promise.resolve(wrongHint) });
      assert.equal(found?.commitTime, times[0], `found despite the hint ${wrongHint}`);
    }
    // Files copied without their times (all as new as the copy): the hint points at the oldest
    // segment, and the commit, further on, is found by the bisection instead of a long read.
    const files = readdirSync(set.archiveDir).map((f) => join(set.archiveDir, f));
    const kept = files.map((f) => statSync(f).mtime);
    const copiedAt = new Date(Date.parse(times[3]!) + 60_000);
    try {
      for (const f of files) utimesSync(f, copiedAt, copiedAt);
      const stats = { probes: 0, segmentsRead: 0 };
      const found = await findCommit(set.archiveDir, xids[7]!, { stats, commitTimeHint: Promise.resolve(times[1]) });
      assert.equal(found?.commitTime, times[1], 'found with every file as new as the copy');
      assert.ok(stats.probes >= 1 && stats.segmentsRead <= 8 + 5, `${JSON.stringify(stats)} of ${archived}`);
    } finally {
      files.forEach((f, i) => utimesSync(f, kept[i]!, kept[i]!));
    }
    assert.equal(await withSession(set.primaryEndpoint, (c) => readCommitTimestamp(c, '4000000000')), undefined);

    // A time target: bisected on the first commit time of each segment, from the oldest one.
    for (const xid of [xids[2]!, xids[9]!, xids[16]!]) {
      const commit = (await findCommit(set.archiveDir, xid))!;
      for (const inclusive of [false, true]) {
        let whole: string | undefined;
        const target = Date.parse(commit.commitTime);
        await scanArchive(set.archiveDir, { rmgrs: ['Transaction'] }, (r) => {
          const at = /^(?:COMMIT|ABORT) (\S+ \S+) UTC/.exec(r.desc)?.[1];
          const ms = at === undefined ? NaN : Date.parse(`${at.replace(' ', 'T')}Z`);
          // Millisecond precision is enough here: the commits are milliseconds apart.
          if (!(inclusive ? ms > target : ms >= target)) return false;
          whole = r.lsn;
          return true;
        });
        const timeStats = { probes: 0, segmentsRead: 0 };
        const stop = await findTimeTargetStop(set.archiveDir, commit.commitTime, inclusive, { stats: timeStats });
        assert.equal(stop?.lsn, whole, `${commit.commitTime} (inclusive ${inclusive}): as a scan of the whole archive`);
        if (!inclusive) assert.equal(stop?.lsn, commit.commitLsn, 'a time target stops before the commit at that time');
        assert.ok(timeStats.probes >= 1, `${commit.commitTime}: bisected (${timeStats.probes} probes)`);
        assert.ok(timeStats.segmentsRead <= 5, `${commit.commitTime}: ${timeStats.segmentsRead} segments read`);
      }
    }
  });

  it('reads from a commit record whether its transaction held an ACCESS EXCLUSIVE lock, as the Standby LOCK records say', async () => {
    const lockedAt = async (xid: string) => {
      let locks = 0;
      await scanArchive(
        set.archiveDir,
        { rmgrs: ['Standby'], xid: Number(xid) },
        (r) => void (/^LOCK /.test(r.desc) && locks++),
      );
      return locks > 0;
    };
    // An explicit LOCK TABLE with no DDL: nothing but the lock tells it apart from a plain DELETE.
    const explicitLock = await withSession(set.primaryEndpoint, async (c) => {
      await c.query('BEGIN');
      await c.query('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE');
      await c.query('UPDATE orders SET customer = customer WHERE id = 999');
      const x = String((await c.query<{ x: string }>('SELECT pg_current_xact_id()::text AS x')).rows[0]?.x);
      await c.query('COMMIT');
      const at = (await c.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]!.l;
      await c.query('SELECT pg_switch_wal()');
      await waitForArchive(set, at);
      return x;
    });
    for (const [xid, what, expected] of [
      [badXid, 'the DELETE', false],
      [truncateXid, 'the TRUNCATE', true],
      [dropXid, 'the DROP TABLE', true],
      [explicitLock, 'LOCK TABLE … ACCESS EXCLUSIVE', true],
    ] as const) {
      const commit = await findCommit(set.archiveDir, xid);
      assert.ok(commit, `${what} committed`);
      assert.equal(await lockedAt(xid), expected, `${what}: Standby LOCK records`);
      assert.equal(
        commitHeldExclusiveLock(set.archiveDir, commit.commitLsn, Number(xid)),
        expected,
        `${what}: its commit record`,
      );
    }
    // Not the commit of that transaction at that LSN: no answer, so the caller searches.
    const commit = (await findCommit(set.archiveDir, badXid))!;
    assert.equal(commitHeldExclusiveLock(set.archiveDir, commit.commitLsn, Number(badXid) + 1), undefined);
    assert.equal(commitHeldExclusiveLock(set.archiveDir, '0/1000028', Number(badXid)), undefined);
  });

  it('finds where a locking transaction began from near its commit, past a snapshot taken while it ran, as a scan of the whole archive does', async function () {
    this.timeout(180_000);
    let beforeIt = '';
    let committedAt = '';
    const xid = await withSession(set.primaryEndpoint, async (c) => {
      await c.query('CREATE TABLE lock_bound (id int)');
      await c.query('INSERT INTO lock_bound VALUES (1)');
      // Snapshots before it (RUNNING_XACTS records at checkpoints): the bound is one of these.
      beforeIt = (await c.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]!.l;
      await c.query('CHECKPOINT');
      await c.query('CHECKPOINT');
      await c.query('BEGIN');
      await c.query('TRUNCATE lock_bound'); // ACCESS EXCLUSIVE: a Standby LOCK record
      const x = String((await c.query<{ x: string }>('SELECT pg_current_xact_id()::text AS x')).rows[0]?.x);
      // Checkpoints while it runs, over more segments than one search window: their
      // RUNNING_XACTS records list it as running, and none of them may serve as the bound.
      for (let i = 0; i < 6; i++) {
        await one(set.primaryEndpoint, 'CHECKPOINT');
        await c.query(`INSERT INTO lock_bound VALUES (${i + 2})`);
        await one(set.primaryEndpoint, 'SELECT pg_switch_wal()');
      }
      await c.query('COMMIT');
      // The commit's own position, taken before the switch: the segment after the switch holds
      // nothing yet and is not archived until something is written into it.
      committedAt = (await c.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]!.l;
      await c.query('SELECT pg_switch_wal()');
      return x;
    });
    await waitForArchive(set, committedAt);
    const commit = await findCommit(set.archiveDir, xid);
    assert.ok(commit, 'the TRUNCATE committed');
    const whole = await findExclusiveLockStart(set.archiveDir, Number(xid));
    const near = await findExclusiveLockStart(set.archiveDir, Number(xid), { endLsn: commit.commitLsn });
    assert.ok(whole, 'a scan of the whole archive finds the lock');
    assert.deepEqual(near, whole);
    const bound = await xidStartBound(set.archiveDir, Number(xid), commit.commitLsn);
    assert.ok(
      bound && compareLsn(bound, whole.firstLsn) < 0,
      `the bound ${bound} lies before the first record ${whole.firstLsn}`,
    );
    assert.ok(
      compareLsn(bound, beforeIt) >= 0,
      `the bound ${bound} is one of the snapshots just before the transaction (at or after ${beforeIt}), not the archive's start`,
    );
  });
});
