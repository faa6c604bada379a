// Scheduled restore drills: a Temporal Schedule per cluster (`pgops-verify/<cluster>`, beside its
// backup schedule `pgops-backup/<cluster>`) that starts verifyBackupWorkflow on the newest backup,
// with the backup schedules' policies (ClusterSchedules): overlap SKIP, a catch-up window of one
// hour, and pause on failure, so that a failed drill stops the schedule and its note says which
// run failed, instead of failing again every night (docs/operations/scratch.md).
import { parseDuration } from '../common/durations';
import type { Operations } from '../contract/operations';
import { ClusterSchedules } from './backupSchedules';

type VerifyBackupInput = Operations['verifyBackup']['input'];

export interface DrillScheduleOptions {
  cluster: string;
  /** Cron expression(s) in UTC, e.g. "30 4 * * *". */
  cron: string;
  /** The checks (default: all of them, recovery to consistency only). */
  checks?: VerifyBackupInput['checks'];
  /** A drill gives up (and cleans up) after this long: "2h", … (default 6h, the workflow's). */
  maxDuration?: string;
  /** Default "1 hour". */
  catchupWindow?: string;
  /** Each run starts up to this much later, at random (default: a tenth of the interval, at most 5 minutes; "0": none). */
  jitter?: string;
  note?: string;
}

export class DrillSchedules extends ClusterSchedules {
  readonly kind = 'verify' as const;
  protected readonly prefix = 'pgops-verify/';

  static scheduleId(cluster: string): string {
    return `pgops-verify/${cluster}`;
  }

  async create(opts: DrillScheduleOptions): Promise<string> {
    // Refused here, not by every run: a bad duration would fail the first drill and pause the schedule.
    if (opts.maxDuration !== undefined) {
      const ms = parseDuration('maxDuration', opts.maxDuration, { min: 60_000, max: 7 * 86_400_000 });
      if (typeof ms === 'string') throw new Error(ms);
    }
    // Always the newest backup: a schedule of one fixed backup would drill the same copy every night.
    const input: VerifyBackupInput = {
      cluster: opts.cluster,
      backup: 'latest',
      ...(opts.checks && { checks: opts.checks }),
      ...(opts.maxDuration !== undefined && { maxDuration: opts.maxDuration }),
    };
    const toEnd = opts.checks?.replayToEnd === true;
    return this.createSchedule({
      cluster: opts.cluster,
      cron: opts.cron,
      operation: 'verifyBackup',
      input,
      summary: `scheduled restore drill of cluster ${opts.cluster}`,
      description: `pg-ops: restore drill of the newest backup of cluster "${opts.cluster}" at "${opts.cron}" (UTC): cloned on a scratch server, recovered ${toEnd ? 'through the whole WAL archive' : 'to consistency'}, checked, removed. Skips a slot while a drill still runs; pauses itself after a failed drill (see its notes).`,
      catchupWindow: opts.catchupWindow,
      jitter: opts.jitter,
      note: opts.note,
    });
  }
}
