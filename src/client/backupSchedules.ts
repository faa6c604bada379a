// Scheduled backups: a Temporal Schedule per cluster that starts snapshotBackupWorkflow. Overlap
// SKIP (a backup still running makes the next one wait for the next slot, never two at once),
// a catch-up window of one hour (after a server outage, one late backup, not a burst), pause on
// failure (a failing backup stops the schedule and says why, instead of failing every night),
// and a memo a person reads in the UI. What a backup does when it fires on a stopped or busy
// cluster is the workflow's own rule (README: an offline snapshot left stopped, or ClusterBusy).
// The same policies serve the scheduled restore drills (drillSchedules.ts): ClusterSchedules below.
import { ScheduleOverlapPolicy, type Client, type ScheduleDescription } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { DEFAULT_TASK_QUEUE } from '../contract/definitions';
import { clusterNameProblem } from '../common/names';
import { formatDuration, parseDuration } from '../common/durations';
import { WORKFLOW_TYPES, type OperationName, type SnapshotBackupInput } from '../contract/operations';

/** What a pg-ops schedule starts: backups (`pgops-backup/<cluster>`) or restore drills (`pgops-verify/<cluster>`). */
export type ScheduleKind = 'backup' | 'verify';

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
  /** Each run starts up to this much later, at random (default: see defaultJitterMs; "0" for none). */
  jitter?: string;
  note?: string;
}

export interface ScheduleSummary {
  scheduleId: string;
  kind: ScheduleKind;
  cluster: string;
  cron: string[];
  paused: boolean;
  /** Each run starts up to this much after its time, at random ("0s": none). */
  jitter: string;
  /** Why it is paused, when it is: a failed run's pause says which run and how it ended. */
  note?: string;
  recentActions: Array<{ workflowId: string; at: string }>;
  nextActionTimes: string[];
}

export type BackupScheduleSummary = ScheduleSummary;

/** One schedule's action and words, as a kind of schedule makes it. */
export interface ScheduledAction {
  cluster: string;
  cron: string;
  /** The operation each run is: its workflow type, and its part of the runs' workflow id. */
  operation: Extract<OperationName, 'backup' | 'verifyBackup'>;
  input: unknown;
  /** The UI's one line for each run it starts. */
  summary: string;
  /** The memo's description: what it does, in words. */
  description: string;
  catchupWindow?: string;
  jitter?: string;
  note?: string;
}

const MAX_DEFAULT_JITTER_MS = 5 * 60_000;

/**
 * The default jitter: a tenth of the shortest gap between the schedule's next fire times, in whole
 * seconds, at most 5 minutes. Schedules of many clusters with the same cron then spread their runs
 * (an every-minute backup over 6 s, a daily one over 5 minutes) instead of all starting in one second.
 */
export function defaultJitterMs(nextActionTimes: readonly Date[]): number {
  const gaps = nextActionTimes
    .slice(1)
    .map((t, i) => t.getTime() - nextActionTimes[i]!.getTime())
    .filter((gap) => gap > 0);
  if (gaps.length === 0) return 0;
  return Math.min(Math.floor(Math.min(...gaps) / 10 / 1000) * 1000, MAX_DEFAULT_JITTER_MS);
}

/** A jitter option in milliseconds: "0" or a duration up to a day. */
export function jitterMs(value: string): number {
  if (value.trim() === '0') return 0;
  const ms = parseDuration('jitter', value, { min: 0, max: 86_400_000 });
  if (typeof ms === 'string') throw new Error(ms);
  return ms;
}

/**
 * The schedules of one kind, one per cluster (`<prefix><cluster>`): created with overlap SKIP, a
 * catch-up window (1 hour by default) and pause on failure; listed, described, paused, resumed,
 * triggered (SKIP too) and deleted by cluster name.
 */
export abstract class ClusterSchedules {
  abstract readonly kind: ScheduleKind;
  protected abstract readonly prefix: string;

  constructor(
    protected readonly client: Client,
    protected readonly taskQueue: string = DEFAULT_TASK_QUEUE,
  ) {}

  protected idOf(cluster: string): string {
    return `${this.prefix}${cluster}`;
  }

  protected async createSchedule(action: ScheduledAction): Promise<string> {
    const { cluster, cron } = action;
    const problem = clusterNameProblem(cluster);
    if (problem) throw new Error(problem);
    const scheduleId = this.idOf(cluster);
    const jitter = action.jitter === undefined ? undefined : jitterMs(action.jitter);
    await this.client.schedule.create({
      scheduleId,
      spec: { cronExpressions: [cron], ...(jitter && { jitter }) },
      action: {
        type: 'startWorkflow',
        workflowType: WORKFLOW_TYPES[action.operation],
        // Temporal appends each run's time to this id.
        workflowId: `pgops/${cluster}/${action.operation}/scheduled`,
        taskQueue: this.taskQueue,
        args: [action.input],
        staticSummary: action.summary,
      },
      policies: {
        overlap: ScheduleOverlapPolicy.SKIP,
        catchupWindow: (action.catchupWindow ?? '1 hour') as Duration,
        pauseOnFailure: true,
      },
      memo: { cron, kind: this.kind, description: action.description },
      state: { note: action.note ?? `created by pg-ops for cluster ${cluster}` },
    });
    if (jitter === undefined) await this.spreadOut(scheduleId);
    return scheduleId;
  }

  /** Gives a new schedule the default jitter, from the fire times the server computed for its cron. */
  private async spreadOut(scheduleId: string): Promise<void> {
    const handle = this.client.schedule.getHandle(scheduleId);
    const jitter = defaultJitterMs((await handle.describe()).info.nextActionTimes);
    if (jitter > 0) await handle.update((previous) => ({ ...previous, spec: { ...previous.spec, jitter } }));
  }

  /** This kind's schedules, one per cluster. */
  async list(): Promise<ScheduleSummary[]> {
    const out: ScheduleSummary[] = [];
    for await (const s of this.client.schedule.list()) {
      if (!s.scheduleId.startsWith(this.prefix)) continue;
      out.push(await this.describe(s.scheduleId.slice(this.prefix.length)));
    }
    return out;
  }

  async describe(cluster: string): Promise<ScheduleSummary> {
    const d: ScheduleDescription = await this.client.schedule.getHandle(this.idOf(cluster)).describe();
    return {
      scheduleId: d.scheduleId,
      kind: this.kind,
      cluster,
      cron: typeof d.memo?.cron === 'string' ? [d.memo.cron] : [],
      paused: d.state.paused,
      jitter: d.spec.jitter ? formatDuration(d.spec.jitter) : '0s',
      note: d.state.note,
      recentActions: d.info.recentActions.map((a) => ({
        workflowId: 'workflow' in a.action ? a.action.workflow.workflowId : '',
        at: a.takenAt.toISOString(),
      })),
      nextActionTimes: d.info.nextActionTimes.map((t) => t.toISOString()),
    };
  }

  pause(cluster: string, note = 'paused with pg-ops'): Promise<void> {
    return this.client.schedule.getHandle(this.idOf(cluster)).pause(note);
  }

  unpause(cluster: string, note = 'unpaused with pg-ops'): Promise<void> {
    return this.client.schedule.getHandle(this.idOf(cluster)).unpause(note);
  }

  /** A run now. SKIP, not the SDK's default ALLOW_ALL: never two runs of one schedule at once. */
  trigger(cluster: string): Promise<void> {
    return this.client.schedule.getHandle(this.idOf(cluster)).trigger(ScheduleOverlapPolicy.SKIP);
  }

  delete(cluster: string): Promise<void> {
    return this.client.schedule.getHandle(this.idOf(cluster)).delete();
  }
}

export class BackupSchedules extends ClusterSchedules {
  readonly kind = 'backup' as const;
  protected readonly prefix = 'pgops-backup/';

  static scheduleId(cluster: string): string {
    return `pgops-backup/${cluster}`;
  }

  async create(opts: BackupScheduleOptions): Promise<string> {
    // A backup that fires during a maintenance hold or a restore waits for it (up to 4 h) instead
    // of failing, which would pause the schedule.
    const input: SnapshotBackupInput = {
      cluster: opts.cluster,
      mode: opts.mode,
      keep: opts.keep,
      waitForLock: opts.waitForLock ?? '4h',
    };
    return this.createSchedule({
      cluster: opts.cluster,
      cron: opts.cron,
      operation: 'backup',
      input,
      summary: `scheduled backup of cluster ${opts.cluster}`,
      description: `pg-ops: ${opts.mode ?? 'online'} snapshot backup of cluster "${opts.cluster}" at "${opts.cron}" (UTC)${opts.keep ? `, keeping ${JSON.stringify(opts.keep)}` : ''}. Skips a slot while a backup still runs; pauses itself after a failure (see its notes).`,
      catchupWindow: opts.catchupWindow,
      jitter: opts.jitter,
      note: opts.note,
    });
  }
}
