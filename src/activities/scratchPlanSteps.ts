// The first step of every scratch operation, before anything is cloned: which backup, which
// timeline, where recovery stops (moved before a DROP DATABASE whose record comes before its
// commit), and every refusal that can be known without touching anything.
import { existsSync } from 'node:fs';
import type { ClusterRegistry } from './clusterRegistry';
import { asStep, preconditionFailed } from './failures';
import { withHeartbeats, type ActivityProgress } from './heartbeat';
import { findBackup } from './backupLookup';
import { compareLsn } from '../common/lsn';
import { describeRecoveryTarget, isoTimeMicros, type RecoveryTarget } from '../common/recoveryTarget';
import {
  chooseRecoveryTimeline,
  TargetNotOnHistory,
  type TimelineChoice,
} from '../drivers/postgres/restore/targetTimeline';
import type { ClusterServices } from '../drivers/clusterServices';
import { describeDropped, judgeDropsAtStop } from '../drivers/postgres/replica/dropGuard';
import type { BackupRecord } from '../contract/backups';
import type { ScratchRecovery } from '../contract/scratch';

export interface ScratchPlanInput {
  cluster: string;
  /** A backup id or "latest"; without it, the newest backup before the target. */
  backup?: string;
  /** Where the scratch recovery stops: at consistency, the end of the archive, or before/at a target. */
  target: 'immediate' | 'end' | RecoveryTarget;
  inclusive: boolean;
  action: 'promote' | 'pause';
}

export interface ScratchPlan {
  backup: BackupRecord;
  recovery: ScratchRecovery;
  /** The LSN recovery stops at, when the archive shows it. */
  stopLsn?: string;
  /** How the backup, the timeline and the stop point were chosen. */
  notes: string[];
}

export function createScratchPlanSteps(registry: ClusterRegistry) {
  return {
    async planScratch(input: ScratchPlanInput): Promise<ScratchPlan> {
      const { cluster } = input;
      return asStep(cluster, 'plan', () =>
        withHeartbeats(async (progress) => {
          const services = registry.services(cluster);
          const refuse = (why: string) => preconditionFailed(cluster, 'plan', `${why}. Nothing was changed.`);
          const { records, chosen } = await backupsToConsider(services, input, refuse);
          const { target } = input;
          if (target === 'immediate' || target === 'end') {
            const backup = chosen[0] ?? records.find((r) => r.kind === 'backup') ?? records[0]!;
            const timeline = target === 'immediate' ? 'current' : 'latest';
            return {
              backup,
              recovery: { target, inclusive: false, action: input.action, timeline },
              notes: [`backup ${backup.id} (${backup.mode}, ended ${backup.stoppedAt})`],
            };
          }
          return planToTarget(services, { ...input, target }, records, chosen, refuse, progress);
        }),
      );
    },
  };
}

type Refuse = (why: string) => Error;

/** The cluster's backups, and those the plan may start from (the one asked for, or all), refused early without an archive. */
async function backupsToConsider(services: ClusterServices, input: ScratchPlanInput, refuse: Refuse) {
  const cluster = services.name;
  const archive = services.archive.walArchive;
  const records = (await services.storage().listRecords()).filter((r) => r.cluster === cluster);
  if (records.length === 0 && (input.backup === undefined || input.backup === 'latest'))
    throw refuse(`cluster "${cluster}" has no backups: take one first (pgops backup ${cluster})`);
  const chosen = input.backup !== undefined ? [await findBackup(services, input.backup, 'plan')] : records;
  const needsArchive = input.target !== 'immediate' || chosen.some((b) => b.mode === 'online');
  if (needsArchive && !archive)
    throw refuse(
      'the catalog names no WAL archive for this cluster (walArchive): a scratch instance of an online backup, or one at a target, replays archived WAL',
    );
  // A Kubernetes target's archive is the path in its pods: the worker may not see it (the scratch pod does).
  if (needsArchive && archive && !existsSync(archive) && services.entry.target.kind === 'local')
    throw refuse(`the WAL archive ${archive} is not readable by this worker`);
  return { records, chosen };
}

/** The newest backup (of those chosen) from which the archive reaches the target, and where recovery stops. */
async function planToTarget(
  services: ClusterServices,
  input: ScratchPlanInput & { target: RecoveryTarget },
  records: BackupRecord[],
  chosen: BackupRecord[],
  refuse: Refuse,
  progress: ActivityProgress,
): Promise<ScratchPlan> {
  const { target } = input;
  const archive = services.archive.walArchive!;
  const what = describeRecoveryTarget(target, input.inclusive);
  // Newest first; only those that end before a time or LSN target can reach it.
  const candidates = chosen.filter((b) => endsBefore(b, target));
  if (candidates.length === 0) {
    const oldest = records.at(-1);
    throw refuse(
      input.backup !== undefined
        ? `backup ${chosen[0]!.id} ends after ${what} (${chosen[0]!.stoppedAt}, ${chosen[0]!.stopLsn}): choose an older backup`
        : `no backup of cluster "${services.name}" ends before ${what}: the oldest, ${oldest?.id}, ended at ${oldest?.stoppedAt} (${oldest?.stopLsn})`,
    );
  }
  if (!existsSync(archive)) return unchecked(candidates[0]!, input, archive);
  const misses: string[] = [];
  for (const backup of candidates) {
    progress.report(`looking for ${what} in the WAL archive from backup ${backup.id}`);
    let choice: TimelineChoice;
    try {
      choice = await chooseRecoveryTimeline(archive, backup, target, {
        inclusive: input.inclusive,
        binDir: services.archive.pgBinDir,
        signal: progress.signal,
      });
    } catch (err) {
      if (!(err instanceof TargetNotOnHistory)) throw err;
      if (input.backup !== undefined || (err.kind !== 'before' && err.kind !== 'none')) throw refuse(err.message);
      misses.push(`${backup.id}: ${err.message}`);
      continue;
    }
    const plan: ScratchPlan = {
      backup,
      recovery: { target, inclusive: input.inclusive, action: input.action, timeline: choice.timeline },
      stopLsn: choice.stopLsn,
      notes: [
        `backup ${backup.id} (${backup.mode}, ended ${backup.stoppedAt}) is the newest before the target`,
        `the target lies on timeline ${choice.timeline}${choice.stopLsn ? ` (recovery stops at ${choice.stopLsn})` : ''}`,
      ],
    };
    return input.inclusive ? plan : stopBeforeDrops(services, plan, refuse, progress);
  }
  throw refuse(
    `${what} cannot be reached from any backup of cluster "${services.name}" through the WAL archive: ${misses.slice(0, 3).join('; ')}`,
  );
}

/** Where the archive cannot be read from this worker: the newest backup before the target, the newest timeline. */
function unchecked(
  backup: BackupRecord,
  input: ScratchPlanInput & { target: RecoveryTarget },
  archive: string,
): ScratchPlan {
  return {
    backup,
    recovery: { target: input.target, inclusive: input.inclusive, action: input.action, timeline: 'latest' },
    notes: [
      `backup ${backup.id} (${backup.mode}, ended ${backup.stoppedAt}) is the newest before the target`,
      `the WAL archive ${archive} is not readable by this worker: the target's timeline and the drops before it were not checked (recovery follows the latest timeline); name an older backup if the target is before this one`,
    ],
  };
}

/** A DROP DATABASE's record acts at once, before its commit: a stop point past the record moves before it. */
async function stopBeforeDrops(
  services: ClusterServices,
  plan: ScratchPlan,
  refuse: Refuse,
  progress: ActivityProgress,
): Promise<ScratchPlan> {
  if (!plan.stopLsn) return plan;
  const drops = await judgeDropsAtStop(
    services.archive.walArchive!,
    plan.stopLsn,
    plan.backup.startLsn,
    { endpoints: [await services.endpoint()] },
    { binDir: services.archive.pgBinDir, signal: progress.signal },
  );
  if (!drops.ok) throw refuse(drops.reason);
  if (!drops.stopBeforeLsn) return plan;
  return {
    ...plan,
    recovery: { ...plan.recovery, target: { lsn: drops.stopBeforeLsn }, inclusive: false },
    stopLsn: drops.stopBeforeLsn,
    notes: [
      ...plan.notes,
      `${drops.drops.map((d) => `the drop of ${describeDropped(d)}, record at ${d.lsn} in transaction ${d.xid},`).join(' and ')} lies before the stop point but commits at or after it: PostgreSQL applies a drop when it replays its record, not at its commit, so the scratch recovery stops at ${drops.stopBeforeLsn} instead, before it`,
    ],
  };
}

/** Whether the backup ends before a time or LSN target (xid and name targets are found in the archive). */
function endsBefore(backup: BackupRecord, target: RecoveryTarget): boolean {
  if ('lsn' in target) return compareLsn(backup.stopLsn, target.lsn) <= 0;
  if ('time' in target) {
    const end = isoTimeMicros(backup.stoppedAt) ?? BigInt(Date.parse(backup.stoppedAt)) * 1000n;
    const at = isoTimeMicros(target.time);
    return at === undefined || end < at;
  }
  return true;
}
