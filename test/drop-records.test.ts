// DROP DATABASE and DROP TABLESPACE on a delayed replica, against real PostgreSQL 15 (no Temporal:
// the PITR check runs as an activity in a mock activity environment). recovery_min_apply_delay
// holds back commits only: a drop record is replayed at once, ahead of its commit. The its run in
// order and share one primary, archive and replica, whose delay the test switches (0 or 1 h).
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { ApplicationFailure } from '@temporalio/common';
import { stringify } from 'yaml';
import { compareLsn } from '../src/common/lsn';
import { createDelayedReplicaSet, type ReplicaSet } from '../src/dev/delayedReplicaSet';
import { localTargetOf, pgCtl } from '../src/dev/localPostgres';
import { pollUntil } from '../src/drivers/waiting';
import { waitForSql, withSession, type PgEndpoint } from '../src/drivers/postgres/session';
import { pauseReplay, replayStatus } from '../src/drivers/postgres/replica/replayControl';
import { applyRecoveryTarget, clearRecoveryTarget } from '../src/drivers/postgres/replica/recoveryTarget';
import { archiveEndLsn } from '../src/drivers/postgres/archive/walInspect';
import { locateIncidents } from '../src/drivers/postgres/archive/incidentLocator';
import { annotateDroppedIncidents, replayedDropsWarning } from '../src/drivers/postgres/replica/dropGuard';
import { parseDropRecord } from '../src/drivers/postgres/archive/dropRecords';
import { ClusterRegistry } from '../src/activities/clusterRegistry';
import { createPitrSteps } from '../src/activities/pitrSteps';
import { loadCatalog } from '../src/config/catalog';
import type { RecoveryTarget } from '../src/common/recoveryTarget';
import { claimTestDir, keepTestDir } from './harness/staleRuns';
import type { CheckedTarget, Incident } from '../src/contract/operations/pitrSteps';

const ISO_NOW = `to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

async function one<T>(endpoint: PgEndpoint, sql: string, params: unknown[] = []): Promise<T> {
  return withSession(endpoint, async (c) => (await c.query(sql, params)).rows[0] as T);
}

describe('DROP DATABASE and DROP TABLESPACE within the delay window (real primary, archive and delayed replica)', function () {
  this.timeout(300_000);
  let dir: string;
  let set: ReplicaSet;
  let steps: ReturnType<typeof createPitrSteps>;
  let appdbOid: number;
  let appdbDrop: Incident;
  const appdb = (endpoint: PgEndpoint): PgEndpoint => ({ ...endpoint, database: 'appdb' });

  const now = async () => (await one<{ t: string }>(set.primaryEndpoint, `SELECT ${ISO_NOW} AS t`)).t;
  const setReplicaDelay = async (delay: string) => {
    await withSession(set.replicaEndpoint, async (c) => {
      await c.query(`ALTER SYSTEM SET recovery_min_apply_delay = '${delay}'`);
      await c.query('SELECT pg_reload_conf()');
    });
  };
  const waitForArchive = async () => {
    const lsn = (await one<{ l: string }>(set.primaryEndpoint, 'SELECT pg_switch_wal()::text AS l')).l;
    await pollUntil(
      async () => {
        const end = archiveEndLsn(set.archiveDir);
        return end && compareLsn(end, lsn) >= 0 ? { done: undefined } : { waiting: `archive ends at ${end}` };
      },
      { intervalMs: 200, timeoutMs: 60_000, what: `the archive to reach ${lsn}` },
    );
  };
  const waitForReplica = async (what: string, sql: string, endpoint = set.replicaEndpoint) => {
    await pollUntil(
      async () => {
        const row = await one<{ ok: boolean }>(endpoint, sql).catch(() => undefined);
        return row?.ok ? { done: undefined } : { waiting: 'not yet' };
      },
      { intervalMs: 300, timeoutMs: 120_000, what },
    );
  };
  const restartReplica = async () => {
    await pgCtl(set.replica, ['restart', '-m', 'fast', '-w', '-t', '600', '-l', set.replica.logFile]);
    await waitForSql(set.replicaEndpoint, { timeoutMs: 300_000 });
  };
  const checkTarget = (target: RecoveryTarget): Promise<CheckedTarget> =>
    new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') }).run(steps.checkPitrTarget, {
      cluster: 'orders-delayed',
      target,
      inclusive: false,
    });
  const refusal = async (target: RecoveryTarget): Promise<string> => {
    const err = await checkTarget(target).then(
      (checked) => assert.fail(`the check accepted ${JSON.stringify(target)}: ${JSON.stringify(checked)}`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ApplicationFailure, String(err));
    assert.equal(err.type, 'PreconditionFailed');
    if (process.env.SHOW_MESSAGES) console.log('REFUSAL', err.message);
    return err.message;
  };
  const locate = async (from: string) => {
    const status = await replayStatus(set.replicaEndpoint);
    return annotateDroppedIncidents(
      await locateIncidents(set.archiveDir, { from, to: await now() }),
      status.replayLsn,
      { endpoints: [set.replicaEndpoint, set.primaryEndpoint] },
    );
  };
  const recoveryTargetsInFiles = async () =>
    (
      await withSession(set.replicaEndpoint, (c) =>
        c.query<{ name: string }>(
          "SELECT name FROM pg_file_settings WHERE name LIKE 'recovery_target%' AND sourcefile LIKE '%postgresql.auto.conf'",
        ),
      )
    ).rows.map((r) => r.name);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pgops-drops-'));
    claimTestDir(dir);
    chmodSync(dir, 0o755);
    set = await createDelayedReplicaSet({ dir, delay: '0' });
    const catalogPath = join(dir, 'pgops.yaml');
    writeFileSync(
      catalogPath,
      stringify({
        clusters: {
          orders: { target: localTargetOf(set.primary) },
          'orders-delayed': { target: localTargetOf(set.replica), replicaOf: 'orders', walArchive: set.archiveDir },
        },
      }),
    );
    steps = createPitrSteps(new ClusterRegistry(() => loadCatalog(catalogPath)));
    // In-place tablespaces (under pg_tblspc/ of each server, since primary and replica share this
    // host): recovery refuses a directory there at its consistency check unless this is on.
    await withSession(set.replicaEndpoint, async (c) => {
      await c.query('ALTER SYSTEM SET allow_in_place_tablespaces = on');
      await c.query('SELECT pg_reload_conf()');
    });
    await withSession(set.primaryEndpoint, async (c) => {
      await c.query('SET allow_in_place_tablespaces = on');
      await c.query("CREATE TABLESPACE ts_a LOCATION ''");
      await c.query("CREATE TABLESPACE ts_b LOCATION ''");
      await c.query('CREATE TABLE t_a (id int) TABLESPACE ts_a');
      await c.query('INSERT INTO t_a SELECT generate_series(1, 100)');
      await c.query('CREATE TABLE t_b (id int) TABLESPACE ts_b');
      await c.query('DROP TABLE t_b'); // ts_b is empty again, as DROP TABLESPACE needs
      await c.query('CREATE TABLE goods (id int)');
      await c.query('CREATE DATABASE appdb');
    });
    await withSession(appdb(set.primaryEndpoint), async (c) => {
      await c.query('CREATE TABLE t (id int PRIMARY KEY)');
      await c.query('INSERT INTO t SELECT generate_series(1, 1000)');
    });
    appdbOid = Number(
      (await one<{ oid: string }>(set.primaryEndpoint, "SELECT oid FROM pg_database WHERE datname = 'appdb'")).oid,
    );
    await waitForArchive();
    await waitForReplica(
      'the replica to replay the set-up',
      'SELECT count(*) = 1000 AS ok FROM t',
      appdb(set.replicaEndpoint),
    );
  });

  after(async () => {
    await set?.stop();
    if (dir && process.env.PGOPS_KEEP_TEST_DIRS) keepTestDir(dir);
    else if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('stops before a DROP DATABASE the replica has not replayed yet (an earlier commit still waits), and the database is readable there', async () => {
    await setReplicaDelay('1h');
    const from = await now();
    await one(set.primaryEndpoint, 'INSERT INTO goods VALUES (1)'); // held back by the delay: the drop waits behind it
    await one(set.primaryEndpoint, 'DROP DATABASE appdb');
    await waitForArchive();
    const incidents = await locate(from);
    const found = incidents.find((i) => i.dropped?.some((d) => d.kind === 'database'));
    assert.ok(found, `the locator reports the DROP DATABASE: ${JSON.stringify(incidents)}`);
    appdbDrop = found;
    const drop = found.dropped![0]!;
    assert.equal(drop.oid, appdbOid);
    assert.equal(drop.name, 'appdb', 'named from the replica, which still has the row');
    assert.ok(compareLsn(drop.dropLsn, found.commitLsn) < 0, 'the drop record itself, before the commit');
    assert.equal(found.warning, undefined, 'not replayed yet');

    await pauseReplay(set.replicaEndpoint);
    const replayLsn = (await replayStatus(set.replicaEndpoint)).replayLsn!;
    assert.ok(compareLsn(replayLsn, drop.dropLsn) < 0, 'the replica waits at the earlier commit');
    const checked = await checkTarget({ xid: found.xid });
    assert.ok('lsn' in checked.effectiveTarget, `moved to an LSN target: ${JSON.stringify(checked)}`);
    const stop = checked.effectiveTarget.lsn;
    assert.ok(
      compareLsn(stop, drop.dropLsn) <= 0 && compareLsn(stop, replayLsn) >= 0,
      `${stop} between replay and the drop`,
    );
    assert.match(checked.note ?? '', /database "appdb".*replays a drop record at once/);
    if (process.env.SHOW_MESSAGES) console.log('NOTE', checked.note);

    const originalDelay = await applyRecoveryTarget(set.replicaEndpoint, checked.effectiveTarget, false);
    await restartReplica();
    await pollUntil(
      async () => {
        const s = await replayStatus(set.replicaEndpoint);
        return s.pauseState === 'paused' ? { done: undefined } : { waiting: `${s.pauseState} at ${s.replayLsn}` };
      },
      { intervalMs: 250, timeoutMs: 120_000, what: 'replay to pause before the drop' },
    );
    assert.deepEqual(await one(appdb(set.replicaEndpoint), 'SELECT count(*)::int AS n FROM t'), { n: 1000 });
    assert.deepEqual(await one(set.replicaEndpoint, 'SELECT count(*)::int AS n FROM goods'), { n: 1 });

    await clearRecoveryTarget(set.replicaEndpoint, originalDelay);
    await restartReplica();
  });

  it('refuses a PITR to just before a DROP DATABASE whose drop record the replica has replayed, naming the backup route, and warns', async () => {
    // Back to its 1 h delay, the replica replays the drop record at once and waits at its commit.
    await waitForReplica(
      'the replica to replay the drop record',
      `SELECT datconnlimit = -2 AS ok FROM pg_database WHERE oid = ${appdbOid}`,
    );
    await assert.rejects(
      one(appdb(set.replicaEndpoint), 'SELECT 1'),
      /invalid database "appdb"/,
      'gone on the replica while the commit waits',
    );
    const drop = appdbDrop.dropped![0]!;

    for (const target of [{ xid: appdbDrop.xid }, { time: appdbDrop.commitTime }]) {
      const message = await refusal(target);
      assert.match(message, /already replayed the drop of database "appdb"/);
      assert.match(message, /cannot bring that database back/);
      assert.match(message, new RegExp(`Database/DROP record at ${drop.dropLsn}`));
      assert.match(message, /restore a backup taken before it .* recovery_target_lsn = '[0-9A-F]+\/[0-9A-F]+'/);
      assert.match(message, /left paused and its settings unchanged/);
    }
    assert.deepEqual(await recoveryTargetsInFiles(), [], 'nothing was written');

    const [located] = (await locate(appdbDrop.commitTime)).filter((i) => i.xid === appdbDrop.xid);
    assert.match(located?.warning ?? '', /already replayed the drop record of database "appdb"/);
    if (process.env.SHOW_MESSAGES) console.log('LOCATED', JSON.stringify(located, null, 1));
    const status = await replayStatus(set.replicaEndpoint);
    const { warning } = await replayedDropsWarning(set.archiveDir, status.replayLsn!, {
      endpoints: [set.replicaEndpoint],
    });
    assert.match(warning ?? '', /database "appdb"/);
  });

  it('DROP TABLESPACE: replayed at once, it removes only an empty directory; a table dropped from it before stays behind its held commit', async () => {
    await setReplicaDelay('0');
    await waitForReplica(
      'the replica to apply the drop',
      `SELECT count(*) = 0 AS ok FROM pg_database WHERE oid = ${appdbOid}`,
    );
    await setReplicaDelay('1h');
    const from = await now();
    const oids = await one<{ a: string; b: string }>(
      set.primaryEndpoint,
      "SELECT (SELECT oid FROM pg_tablespace WHERE spcname = 'ts_a')::text AS a, (SELECT oid FROM pg_tablespace WHERE spcname = 'ts_b')::text AS b",
    );
    const tA = await one<{ f: string }>(set.replicaEndpoint, "SELECT pg_relation_filepath('t_a') AS f");
    await one(set.primaryEndpoint, 'DROP TABLESPACE ts_b');
    await one(set.primaryEndpoint, 'DROP TABLE t_a');
    await one(set.primaryEndpoint, 'DROP TABLESPACE ts_a');
    await waitForArchive();
    const tsB = join(set.replica.pgdata, 'pg_tblspc', oids.b);
    await pollUntil(async () => (existsSync(tsB) ? { waiting: 'still there' } : { done: undefined }), {
      intervalMs: 200,
      timeoutMs: 60_000,
      what: "ts_b's directory to go on the replica",
    });
    assert.deepEqual(
      await one(set.replicaEndpoint, "SELECT count(*)::int AS n FROM pg_tablespace WHERE spcname = 'ts_b'"),
      { n: 1 },
      'the catalog still names ts_b: its commit waits',
    );
    assert.ok(
      existsSync(join(set.replica.pgdata, tA.f)),
      "t_a's file is intact: ts_a's drop waits behind DROP TABLE's commit",
    );
    assert.ok(readdirSync(join(set.replica.pgdata, 'pg_tblspc', oids.a)).length > 0);

    const incidents = await locate(from);
    const byKind = (name: string) => incidents.find((i) => i.dropped?.some((d) => d.name === name));
    const dropB = byKind('ts_b');
    const dropA = byKind('ts_a');
    const dropTable = incidents.find((i) => i.relations.some((r) => r.dropped));
    assert.ok(dropB && dropA && dropTable, JSON.stringify(incidents));
    assert.equal(dropB.dropped![0]!.kind, 'tablespace');
    assert.equal(dropB.dropped![0]!.oid, Number(oids.b));
    assert.match(dropB.warning ?? '', /already replayed the drop record of tablespace "ts_b"/);
    assert.equal(dropA.warning, undefined);

    assert.match(await refusal({ xid: dropB.xid }), /tablespace "ts_b".*No rows were lost with it/);
    const beforeDropTable = await checkTarget({ xid: dropTable.xid });
    assert.ok(!/ts_a/.test(beforeDropTable.note ?? ''), 'the DROP TABLE is before any drop record');
    assert.match(
      beforeDropTable.note ?? '',
      /warning: the delayed replica has already replayed the drop of tablespace "ts_b"/,
      'a target past a replayed drop goes ahead, with a warning for progress',
    );
    const beforeDropA = await checkTarget({ xid: dropA.xid });
    assert.ok('lsn' in beforeDropA.effectiveTarget, JSON.stringify(beforeDropA));
    assert.ok(compareLsn(beforeDropA.effectiveTarget.lsn, dropA.dropped![0]!.dropLsn) <= 0);
  });
});

describe('parseDropRecord (pg_waldump 15 descriptions)', () => {
  it('reads a database drop with each tablespace directory, a tablespace drop, and nothing else', () => {
    assert.deepEqual(
      parseDropRecord({ rmgr: 'Database', xid: 728, lsn: '0/5000148', desc: 'DROP dir 1663/16385 16384/16385' }),
      { kind: 'database', oid: 16385, tablespaceOids: [1663, 16384], lsn: '0/5000148', xid: 728 },
    );
    assert.deepEqual(parseDropRecord({ rmgr: 'Tablespace', xid: 736, lsn: '0/6000210', desc: 'DROP 16385' }), {
      kind: 'tablespace',
      oid: 16385,
      lsn: '0/6000210',
      xid: 736,
    });
    assert.equal(
      parseDropRecord({ rmgr: 'Database', xid: 0, lsn: '0/1', desc: 'CREATE_FILE_COPY copy dir 1663/1 to 1663/16385' }),
      undefined,
    );
    assert.equal(parseDropRecord({ rmgr: 'Heap', xid: 728, lsn: '0/1', desc: 'DELETE off 4 flags 0x00' }), undefined);
  });
});
