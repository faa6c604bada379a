import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { scratchDir, testEnv } from './harness/testEnv';
import { withWorker } from './harness/workers';
import { pollUntil } from '../src/drivers/waiting';
import { BackupSchedules, DrillSchedules } from '../src';

describe('scheduled restore drills (DrillSchedules): pgops-verify/<cluster> beside pgops-backup/<cluster>', () => {
  const cluster = `drills-${Math.random().toString(36).slice(2, 8)}`;
  const taskQueue = `pgops-drill-schedules-${Date.now()}`;
  let drills: DrillSchedules;
  let backups: BackupSchedules;
  before(async () => {
    const { client } = await testEnv();
    drills = new DrillSchedules(client, taskQueue);
    backups = new BackupSchedules(client, taskQueue);
  });
  after(async () => {
    await drills?.delete(cluster).catch(() => undefined);
    await backups?.delete(cluster).catch(() => undefined);
  });

  it("starts verifyBackupWorkflow on the newest backup, with the backup schedules' policies; both kinds listed apart", async () => {
    const { client } = await testEnv();
    const id = await drills.create({
      cluster,
      cron: '30 4 * * *',
      checks: { replayToEnd: true },
      maxDuration: '2h',
    });
    assert.equal(id, `pgops-verify/${cluster}`);
    assert.equal(await backups.create({ cluster, cron: '0 3 * * *' }), `pgops-backup/${cluster}`, 'no collision');
    const d = await client.schedule.getHandle(id).describe();
    assert.equal(d.action.type, 'startWorkflow');
    assert.equal(d.action.workflowType, 'verifyBackupWorkflow');
    assert.equal(d.action.workflowId, `pgops/${cluster}/verifyBackup/scheduled`);
    assert.equal(d.action.taskQueue, taskQueue);
    assert.deepEqual(d.action.args, [{ cluster, backup: 'latest', checks: { replayToEnd: true }, maxDuration: '2h' }]);
    assert.equal(d.policies.overlap, ScheduleOverlapPolicy.SKIP);
    assert.equal(d.policies.catchupWindow, 3_600_000);
    assert.equal(d.policies.pauseOnFailure, true);
    assert.equal(d.memo?.kind, 'verify');
    assert.match(String(d.memo?.description), /restore drill of the newest backup .* through the whole WAL archive/);

    assert.equal(d.spec.jitter, 300_000, 'daily: a tenth of the day, at most 5 minutes');
    const described = await drills.describe(cluster);
    assert.equal(described.jitter, '5m');
    assert.equal(described.kind, 'verify');
    assert.deepEqual(described.cron, ['30 4 * * *']);
    assert.equal(described.paused, false);
    assert.ok(described.nextActionTimes.length > 0);
    const drillIds = (await drills.list()).map((s) => `${s.kind} ${s.scheduleId}`);
    const backupIds = (await backups.list()).map((s) => `${s.kind} ${s.scheduleId}`);
    assert.ok(drillIds.includes(`verify pgops-verify/${cluster}`), drillIds.join(', '));
    assert.ok(!drillIds.includes(`backup pgops-backup/${cluster}`));
    assert.ok(backupIds.includes(`backup pgops-backup/${cluster}`), backupIds.join(', '));
    assert.ok(!backupIds.some((s) => s.includes('pgops-verify/')));

    await assert.rejects(drills.create({ cluster, cron: '0 5 * * *' }), /already/i);
    await assert.rejects(drills.create({ cluster: 'Bad_Name', cron: '0 5 * * *' }), /cluster name "Bad_Name"/);
    await assert.rejects(
      drills.create({ cluster: 'other', cron: '0 5 * * *', maxDuration: '8d' }),
      /maxDuration "8d" is longer than the maximum 7d/,
    );
  });

  it('spreads the runs of many clusters: a default jitter of a tenth of the interval (at most 5 minutes), or the one given', async () => {
    const names = ['every-minute', 'no-jitter', 'half-minute'].map((n) => `${cluster}-${n}`);
    try {
      await backups.create({ cluster: names[0]!, cron: '* * * * *' });
      await backups.create({ cluster: names[1]!, cron: '* * * * *', jitter: '0' });
      await drills.create({ cluster: names[2]!, cron: '*/5 * * * *', jitter: '30s' });
      assert.equal((await backups.describe(names[0]!)).jitter, '6s');
      assert.equal((await backups.describe(names[1]!)).jitter, '0s');
      assert.equal((await drills.describe(names[2]!)).jitter, '30s');
      await assert.rejects(
        backups.create({ cluster: `${cluster}-bad`, cron: '* * * * *', jitter: 'soon' }),
        /jitter "soon" is not a duration/,
      );
    } finally {
      for (const name of names) {
        await backups.delete(name).catch(() => undefined);
        await drills.delete(name).catch(() => undefined);
      }
    }
  });

  it('trigger starts a drill run; a failed drill pauses the schedule and its note says why', async function () {
    this.timeout(120_000);
    const { client } = await testEnv();
    await drills.pause(cluster, 'held by the test');
    assert.equal((await drills.describe(cluster)).paused, true);
    await drills.unpause(cluster);
    await drills.trigger(cluster);
    const started = await pollUntil<string>(
      async () => {
        const runs = (await drills.describe(cluster)).recentActions;
        return runs[0] ? { done: runs[0].workflowId } : { waiting: 'no run yet' };
      },
      { intervalMs: 200, timeoutMs: 30_000, what: 'the triggered drill to start' },
    );
    assert.match(started, new RegExp(`^pgops/${cluster}/verifyBackup/scheduled`));
    const run = await client.workflow.getHandle(started).describe();
    assert.equal(run.type, 'verifyBackupWorkflow');
    assert.equal(run.taskQueue, taskQueue);
    // A worker whose catalog lacks the cluster: the drill fails (UnknownCluster), as a drill that finds a problem does.
    const catalogPath = join(await scratchDir('drill-schedules'), 'pgops.yaml');
    writeFileSync(catalogPath, 'clusters: {}\n');
    const note = await withWorker(taskQueue, catalogPath, () =>
      pollUntil<string>(
        async () => {
          const d = await drills.describe(cluster);
          return d.paused ? { done: d.note ?? '' } : { waiting: 'not paused yet' };
        },
        { intervalMs: 500, timeoutMs: 60_000, what: 'the schedule to pause itself after the failed drill' },
      ),
    );
    // The schedule pauses as the run fails: its status may read RUNNING a moment longer under load.
    const status = await pollUntil<string>(
      async () => {
        const name = (await client.workflow.getHandle(started).describe()).status.name;
        return name === 'RUNNING' ? { waiting: name } : { done: name };
      },
      { intervalMs: 200, timeoutMs: 30_000, what: 'the triggered drill to end' },
    );
    assert.equal(status, 'FAILED');
    // The server's own words: which run, and the failure's message (the drill's findings, for a failed drill).
    assert.ok(note.startsWith(`paused due to workflow failure: ${started}: unknown cluster "${cluster}"`), note);
    assert.equal((await backups.describe(cluster)).paused, false, "the backup schedule is the drill's own business");
  });
});
