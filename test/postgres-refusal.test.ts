// A step that PostgreSQL refuses for good (here a data exception) fails the workflow on its first
// attempt, with the server's message at the top, instead of being retried for minutes.
import assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { backupFixture, type BackupFixture } from './harness/backupFixture';
import { attemptsByActivity } from './harness/crashRuns';
import { localTargetOf } from '../src/dev/localPostgres';
import { resultLosingSegment } from './harness/lostSegment';
import { lockStateQuery, lockWorkflowId } from '../src/contract/definitions';
import { PostgresError, toPgOpsError } from '../src/client/errors';

describe('a step PostgreSQL refuses for good fails at once, with the server message at the top', () => {
  let fx: BackupFixture;
  before(async () => {
    fx = await backupFixture('pgrefusal', { storage: 'copy', rows: 100 });
    // A database in LATIN1, reached by a second catalog entry on the same server: a valid label
    // with a character LATIN1 lacks passes the workflow's checks and is refused by PostgreSQL.
    await fx.sql("CREATE DATABASE latin1db ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
    fx.writeCatalog({
      latin: {
        target: localTargetOf(fx.cluster),
        storage: fx.storage,
        walArchive: fx.archiveDir,
        postgres: { database: 'latin1db' },
      },
    });
  });
  after(async () => fx?.teardown());

  it('fails an online backup whose label the database encoding cannot hold (22P05) on its first attempt', async () => {
    const { client } = await testEnv();
    const workflowId = `pg-refusal-${Date.now()}`;
    // The lock workflow answers queries only while a worker runs: everything is checked inside.
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const err = await client.workflow
        .execute('snapshotBackupWorkflow', {
          taskQueue: fx.taskQueue,
          workflowId,
          args: [{ cluster: 'latin', label: 'Größe 5 €' }],
        })
        .then(
          () => assert.fail('the backup was taken'),
          (e: unknown) => e,
        );
      assert.ok(err instanceof WorkflowFailedError, String(err));
      const top = err.cause;
      assert.ok(top instanceof ApplicationFailure, `top cause: ${top?.constructor.name}`);
      assert.equal(top.type, 'PostgresError');
      assert.equal(top.nonRetryable, true);
      assert.match(
        top.message,
        /^cluster "latin", step online-backup: PostgreSQL refused: character with byte sequence 0xe2 0x82 0xac in encoding "UTF8" has no equivalent in encoding "LATIN1" \(SQLSTATE 22P05, data exception\)\. Retrying cannot fix this/,
      );
      assert.ok(top.cause instanceof ActivityFailure, 'the activity failure stays attached');
      assert.ok(toPgOpsError(err, workflowId) instanceof PostgresError, 'the typed client says PostgresError');

      // Not retried: one attempt of the step, no backup session left, the server up, the lock free.
      const handle = client.workflow.getHandle(workflowId);
      assert.equal((await attemptsByActivity(handle)).get('takeOnlineBackup'), 1);
      const sessions = await fx.sql<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'temporal-postgres-ops' AND pid <> pg_backend_pid()",
      );
      assert.equal(Number(sessions[0]!.n), 0, 'no backup session is left open');
      const lock = await client.workflow
        .getHandle(lockWorkflowId('latin', fx.taskQueue))
        .query(lockStateQuery)
        .catch(() => undefined);
      assert.equal(lock?.holder ?? null, null);
    });
  });

  it("fails a restore whose recovery ends before its target with the server's FATAL, on the first attempt", async function () {
    this.timeout(240_000);
    const { client } = await testEnv();
    const workflowId = `pg-refusal-restore-${Date.now()}`;
    await withWorker(fx.taskQueue, fx.catalogPath, async () => {
      const taken = await client.workflow.execute('snapshotBackupWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId: `${workflowId}-backup`,
        args: [{ cluster: fx.name }],
      });
      const restore = (id: string, extra: Record<string, unknown>) =>
        client.workflow
          .execute('rollbackRestoreWorkflow', {
            taskQueue: fx.taskQueue,
            workflowId: id,
            args: [{ cluster: fx.name, backup: taken.backup.id, confirm: fx.name, ...extra }],
          })
          .then(
            () => assert.fail('the restore succeeded'),
            (e: unknown) => e,
          );
      // A restore point name nobody created (a typo) is refused before anything is touched: the
      // archive's history has no such restore point.
      const typo = await restore(`${workflowId}-typo`, { recoveryTarget: { name: 'before_typo' } });
      assert.ok(typo instanceof WorkflowFailedError && typo.cause instanceof ApplicationFailure, String(typo));
      assert.equal(typo.cause.type, 'PreconditionFailed');
      assert.match(typo.cause.message, /restore point "before_typo" lies on no timeline reachable from backup/);
      assert.equal(
        (await attemptsByActivity(client.workflow.getHandle(`${workflowId}-typo`))).get('startCluster'),
        undefined,
      );

      // A target the archive held at the check, whose segment is gone when recovery needs it:
      // PostgreSQL replays up to there, then the startup process ends with FATAL. Starting
      // again would replay it all again, for nothing.
      await fx.archiveNow(); // the target's segment is not the backup's
      const { lsn } = await fx.commit(['UPDATE orders SET amount = amount + 1 WHERE id = 1']);
      await fx.archiveNow();
      const handle = await client.workflow.start('rollbackRestoreWorkflow', {
        taskQueue: fx.taskQueue,
        workflowId,
        args: [{ cluster: fx.name, backup: taken.backup.id, confirm: fx.name, recoveryTarget: { lsn } }],
      });
      const err = await resultLosingSegment(handle, fx.archiveDir, 1, lsn).then(
        () => assert.fail('the restore succeeded'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof WorkflowFailedError, String(err));
      const top = err.cause;
      assert.ok(top instanceof ApplicationFailure, `top cause: ${top?.constructor.name}`);
      assert.equal(top.type, 'RestoreFailed');
      assert.match(
        top.message,
        /failed at step (start|recovery): cluster "shop", step (start|recovery): PostgreSQL stopped while starting: recovery ended before configured recovery target was reached \(FATAL in the startup process; server log: .*\)\. Retrying cannot fix this: .*choose an earlier target.*Nothing was changed: the safety snapshot .* was put back/,
      );
      const attempts = await attemptsByActivity(client.workflow.getHandle(workflowId));
      assert.equal(attempts.get('startCluster'), 1, 'the start is not retried');
      assert.ok((attempts.get('watchRecovery') ?? 1) === 1, 'nor is the watch over recovery');
    });
  });
});
