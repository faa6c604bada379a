// A DROP DATABASE within the delay window, end to end: real Temporal, a real primary archiving
// every second and a standby restoring from the archive with a 1 h delay. The drop record is
// replayed at once (only commits wait), so the database is gone on the replica while the drop's
// commit waits: the locator must say so, and a PITR to just before the drop must refuse instead
// of returning "delayed replica again" with the database still gone.
import assert from 'node:assert/strict';
import { testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { failureOf } from './harness/failures';
import { pitrFixture, type PitrFixture } from './harness/pitrFixture';
import { replayStatus } from '../src/drivers/postgres/replica/replayControl';
import { withSession, type PgEndpoint } from '../src/drivers/postgres/session';
import { compareLsn } from '../src/common/lsn';
import type { Incident } from '../src/contract/operations/pitrSteps';

describe('a DROP DATABASE within the delay window (real Temporal, primary, WAL archive and a 1 h delayed replica)', function () {
  this.timeout(300_000);
  let fx: PitrFixture;
  /** The DROP DATABASE's transaction, from the primary (track_commit_timestamp). */
  let dropCommit: { xid: string; time: string };
  let from: string;
  const appdb = (endpoint: PgEndpoint): PgEndpoint => ({ ...endpoint, database: 'appdb' });

  before(async () => {
    fx = await pitrFixture('droppitr', '0');
    // Replay stops at the first commit younger than the delay, and every record behind it waits:
    // the drop is replayed at once only if no commit lies before it. No autovacuum (an analyze of
    // t commits), and the replica has replayed everything before the delay is set.
    await withSession(fx.set.primaryEndpoint, async (c) => {
      await c.query('ALTER SYSTEM SET autovacuum = off');
      await c.query('SELECT pg_reload_conf()');
      await c.query('CREATE DATABASE appdb');
    });
    await withSession(appdb(fx.set.primaryEndpoint), async (c) => {
      await c.query('CREATE TABLE t (id int PRIMARY KEY)');
      await c.query('INSERT INTO t SELECT generate_series(1, 500)');
    });
    const written = await fx.query<{ lsn: string }>(fx.set.primaryEndpoint, 'SELECT pg_current_wal_lsn()::text AS lsn');
    await fx.waitForArchive();
    await fx.waitForReplicaToSee(`SELECT pg_last_wal_replay_lsn() >= '${written.lsn}'::pg_lsn AS ok`);
    await withSession(fx.set.replicaEndpoint, async (c) => {
      await c.query("ALTER SYSTEM SET recovery_min_apply_delay = '1h'");
      await c.query('SELECT pg_reload_conf()');
    });
    from = new Date(Date.now() - 1000).toISOString();
    dropCommit = await withSession(fx.set.primaryEndpoint, async (c) => {
      await c.query('DROP DATABASE appdb');
      const row = (
        await c.query<{ xid: string; time: string }>(
          `SELECT xid::text AS xid, to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS time FROM pg_last_committed_xact()`,
        )
      ).rows[0]!;
      return row;
    });
    await fx.waitForArchive();
    // Held back by nothing: the drop record is replayed at once, and the database is marked invalid.
    await fx.waitForReplicaToSee("SELECT datconnlimit = -2 AS ok FROM pg_database WHERE datname = 'appdb'");
  });
  after(async () => fx?.set.stop());

  it('locateIncidentWorkflow reports the DROP DATABASE by name with its drop record LSN, and warns that the replica has replayed it', async () => {
    const { client } = await testEnv();
    const incidents = await withWorker(fx.taskQueue, fx.catalogPath, () =>
      client.workflow.execute('locateIncidentWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `locate-drop-${Date.now()}`,
        args: [{ cluster: 'orders-delayed', from, to: new Date(Date.now() + 1000).toISOString() }],
      }),
    );
    const found = (incidents as Incident[]).find((i) => i.dropped?.some((d) => d.name === 'appdb'));
    assert.ok(found, JSON.stringify(incidents));
    assert.equal(found.xid, dropCommit.xid);
    const [dropped] = found.dropped!;
    assert.equal(dropped!.kind, 'database');
    assert.ok(compareLsn(dropped!.dropLsn, found.commitLsn) < 0, 'the drop record itself, before the commit');
    assert.match(found.warning ?? '', /already replayed the drop record of database "appdb"/);
  });

  it('refuses a PITR to a time just before the DROP DATABASE, leaving the replica paused and untouched, instead of returning to delay with the database gone', async () => {
    const { client } = await testEnv();
    const failure = await withWorker(fx.taskQueue, fx.catalogPath, () =>
      failureOf(
        client.workflow.execute('delayedReplicaPitrWorkflow', {
          taskQueue: fx.taskQueue,
          workflowId: `pitr-drop-${Date.now()}`,
          args: [{ cluster: 'orders-delayed', target: { time: dropCommit.time }, then: 'pause', maxPause: '1s' }],
        }),
      ),
    );
    assert.equal(failure.type, 'PreconditionFailed', failure.message);
    assert.match(failure.message, /cannot bring that database back/);
    assert.match(failure.message, /restore a backup taken before it .*recovery_target_lsn = '[0-9A-F]+\/[0-9A-F]+'/);
    const status = await replayStatus(fx.set.replicaEndpoint);
    assert.notEqual(status.pauseState, 'not paused', 'left paused');
    assert.equal(status.settings.recovery_target_time.value, '', 'no target written');
    assert.equal(status.settings.recovery_min_apply_delay.value, '3600000', 'the delay as it was');
  });

  it('refuses an incident target naming the DROP DATABASE the same way', async () => {
    const { client } = await testEnv();
    const failure = await withWorker(fx.taskQueue, fx.catalogPath, () =>
      failureOf(
        client.workflow.execute('delayedReplicaPitrWorkflow', {
          taskQueue: fx.taskQueue,
          workflowId: `pitr-drop-incident-${Date.now()}`,
          args: [
            {
              cluster: 'orders-delayed',
              target: { incident: { from, to: new Date(Date.now() + 1000).toISOString() } },
              then: 'pause',
              maxPause: '1s',
            },
          ],
        }),
      ),
    );
    assert.equal(failure.type, 'PreconditionFailed', failure.message);
    assert.match(failure.message, /database "appdb".*cannot bring that database back/);
  });
});
