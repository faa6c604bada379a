// Scheduled backups: a Temporal Schedule per cluster that starts snapshotBackupWorkflow. Overlap
// SKIP (a backup still running makes the next one wait for the next slot, never two at once),
// a catch-up window of one hour (after a server outage, one late backup, not a burst), pause on
// failure (a failing backup stops the schedule and says why, instead of failing every night),
// and a memo a person reads in the UI. What a backup does when it fires on a stopped or busy
// cluster is the workflow's own rule (README: an offline snapshot left stopped, or ClusterBusy).
import { ScheduleOverlapPolicy, type Client, type ScheduleDescription } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { DEFAULT_TASK_QUEUE } from '../contract/definitions';
import { clusterNameProblem } from '../common/names';
import { WORKFLOW_TYPES, type SnapshotBackupInput } from '../contract/operations';

export interface BackupScheduleOptions {
  cluster: string;
  /** Cron expression(s) in UTC, e.g. "0 3 * * *". */
  cron: string;
  mode?: SnapshotBackupInput['mode'];
  keep?: SnapshotBackupInput['keep'];
  /** Default "1 hour". */
  catchupWindow?: string;
  /** How long a fired backup waits for a busy cluster (default "4h"). */
  waitForLock?: string;
  note?: string;
}

export interface BackupScheduleSummary {
  scheduleId: string;
  cluster: string;
  cron: string[];
  paused: boolean;
  note?: string;
  recentActions: Array<{ workflowId: string; at: string }>;
  nextActionTimes: string[];
}

export class BackupSchedules {
  constructor(
    private readonly client: Client,
    private readonly taskQueue: string = DEFAULT_TASK_QUEUE,
  ) {}

  static scheduleId(cluster: string): string {
    return `pgops-backup/${cluster}`;
  }

  async create(opts: BackupScheduleOptions): Promise<string> {
    const problem = clusterNameProblem(opts.cluster);
    if (problem) throw new Error(problem);
    // A backup that fires during a maintenance hold or a restore waits for it (up to 4 h) instead
    // of failing, which would pause the schedule.
    const input: SnapshotBackupInput = {
      cluster: opts.cluster,
      mode: opts.mode,
      keep: opts.keep,
      waitForLock: opts.waitForLock ?? '4h',
    };
    const scheduleId = BackupSchedules.scheduleId(opts.cluster);
    await this.client.schedule.create({
      scheduleId,
      spec: { cronExpressions: [opts.cron] },
      action: {
        type: 'startWorkflow',
        workflowType: WORKFLOW_TYPES.backup,
        workflowId: `pgops/${opts.cluster}/backup/scheduled`,
        taskQueue: this.taskQueue,
        args: [input],
        staticSummary: `scheduled backup of cluster ${opts.cluster}`,
      },
      policies: {
        overlap: ScheduleOverlapPolicy.SKIP,
        catchupWindow: (opts.catchupWindow ?? '1 hour') as Duration,
        pauseOnFailure: true,
      },
      memo: {
        cron: opts.cron,
        description: `pg-ops: ${opts.mode ?? 'online'} snapshot backup of cluster "${opts.cluster}" at "${opts.cron}" (UTC)${opts.keep ? `, keeping ${JSON.stringify(opts.keep)}` : ''}. Skips a slot while a backup still runs; pauses itself after a failure (see its notes).`,
      },
      state: { note: opts.note ?? `created by pg-ops for cluster ${opts.cluster}` },
    });
    return scheduleId;
  }

  async list(): Promise<BackupScheduleSummary[]> {
    const out: BackupScheduleSummary[] = [];
    for await (const s of this.client.schedule.list()) {
      if (!s.scheduleId.startsWith('pgops-backup/')) continue;
      out.push(await this.describe(s.scheduleId.slice('pgops-backup/'.length)));
    }
    return out;
  }

  async describe(cluster: string): Promise<BackupScheduleSummary> {
    const d: ScheduleDescription = await this.client.schedule.getHandle(BackupSchedules.scheduleId(cluster)).describe();
    return {
      scheduleId: d.scheduleId,
      cluster,
      cron: typeof d.memo?.cron === 'string' ? [d.memo.cron] : [],
      paused: d.state.paused,
      note: d.state.note,
      recentActions: d.info.recentActions.map((a) => ({
        workflowId: 'workflow' in a.action ? a.action.workflow.workflowId : '',
        at: a.takenAt.toISOString(),
      })),
      nextActionTimes: d.info.nextActionTimes.map((t) => t.toISOString()),
    };
  }

  pause(cluster: string, note = 'paused with pg-ops'): Promise<void> {
    return this.client.schedule.getHandle(BackupSchedules.scheduleId(cluster)).pause(note);
  }

  unpause(cluster: string, note = 'unpaused with pg-ops'): Promise<void> {
    return this.client.schedule.getHandle(BackupSchedules.scheduleId(cluster)).unpause(note);
  }

  /** A backup now. SKIP, not the SDK's default ALLOW_ALL: never two backups of one cluster at once. */
  trigger(cluster: string): Promise<void> {
    return this.client.schedule.getHandle(BackupSchedules.scheduleId(cluster)).trigger(ScheduleOverlapPolicy.SKIP);
  }

  delete(cluster: string): Promise<void> {
    return this.client.schedule.getHandle(BackupSchedules.scheduleId(cluster)).delete();
  }
}
