// The restore's first step: every refusal that can be known before anything is touched, and
// the timeline the target lies on.
import { existsSync } from 'node:fs';
import { log } from '@temporalio/activity';
import type { ClusterRegistry } from './clusterRegistry';
import { asStep, preconditionFailed } from './failures';
import { withHeartbeats } from './heartbeat';
import { findBackup } from './backupLookup';
import { serverRunning } from './restoreVolumeSteps';
import type { ClusterServices } from '../drivers/clusterServices';
import { readControlData } from '../drivers/postgres/controlData';
import { systemIdentifierOf } from '../drivers/postgres/restore/restoredServer';
import {
  chooseRecoveryTimeline,
  TargetNotOnHistory,
  type TimelineChoice,
} from '../drivers/postgres/restore/targetTimeline';
import { withSession } from '../drivers/postgres/session';
import { compareLsn } from '../common/lsn';
import { isoTimeMicros, type RecoveryTarget } from '../common/recoveryTarget';
import type { VolumeRestoreMethod } from '../contract/operations/restoreSteps';
import type { RecoveryTimeline, RestoreTarget } from '../contract/recovery';
import type { BackupRecord } from '../contract/backups';

export interface RestorePlan {
  backup: BackupRecord;
  /** The target PostgreSQL is given: 'immediate' for an online backup without a target. */
  target?: RestoreTarget;
  replaysArchive: boolean;
  /** The timeline the target lies on, written as recovery_target_timeline (README "History"). */
  timeline?: number;
  /** How the timeline was chosen, or why it could not be checked. */
  timelineNote?: string;
  /** Where recovery will stop, as the archive shows it. */
  stopLsn?: string;
}

/** The check before anything is touched. */
export function createRestoreCheckSteps(registry: ClusterRegistry) {
  return {
    /** Every refusal that can be known before touching anything. */
    async checkRestore(input: {
      cluster: string;
      backup: string;
      recoveryTarget?: RestoreTarget;
      inclusive?: boolean;
      /** The operator's recoveryTargetTimeline, if any: the target is looked for along it only. */
      timeline?: RecoveryTimeline;
      /** The restore method asked for: refused here when the storage cannot use it. */
      restoreMethod?: VolumeRestoreMethod;
    }): Promise<RestorePlan> {
      const { cluster } = input;
      return asStep(cluster, 'check-restore', () =>
        withHeartbeats(async (progress) => {
          const services = registry.services(cluster);
          const entry = services.entry;
          const backup = await findBackup(services, input.backup);
          const refuse = (why: string) => preconditionFailed(cluster, 'check-restore', `${why}. Nothing was changed.`);
          if (backup.cluster !== cluster)
            throw refuse(`backup ${backup.id} is a backup of cluster "${backup.cluster}", not of "${cluster}"`);
          const methodProblem = services.storage().restoreMethodProblem?.(input.restoreMethod ?? 'auto');
          if (methodProblem) throw refuse(methodProblem);
          const current = await currentSystemIdentifier(services, progress);
          if (current && current !== backup.systemIdentifier)
            throw refuse(
              `backup ${backup.id} was taken of database system ${backup.systemIdentifier}, but cluster "${cluster}" is system ${current} (re-initialised, or another database)`,
            );
          if (entry.target.kind === 'kubernetes') {
            const driver = services.target();
            const state = await driver.describe();
            const replicas = state.running
              ? state.replicas
              : ((await driver.recordedReplicas()) ?? entry.target.replicas);
            if (replicas > 1)
              throw refuse(
                `StatefulSet ${entry.target.namespace}/${entry.target.statefulSet} runs ${replicas} replicas: a rollback restores the first pod's volumes only and would leave the other replicas on data from another history. Scale it to 1 first (and rebuild the replicas after the restore)`,
              );
          }
          const recoveryTarget = input.recoveryTarget ?? (backup.mode === 'online' ? 'immediate' : undefined);
          if (recoveryTarget !== undefined && !entry.walArchive)
            throw refuse(
              backup.mode === 'online' && input.recoveryTarget === undefined
                ? `backup ${backup.id} is an online backup: it needs the WAL archive to reach consistency, and the catalog names none for this cluster (walArchive)`
                : 'a recovery target replays archived WAL, and the catalog names no WAL archive for this cluster (walArchive)',
            );
          if (typeof recoveryTarget === 'object') checkTargetAfterBackup(recoveryTarget, backup, refuse);
          const plan: RestorePlan = { backup, target: recoveryTarget, replaysArchive: recoveryTarget !== undefined };
          if (recoveryTarget === undefined || !entry.walArchive) return plan;
          if (!existsSync(entry.walArchive))
            return {
              ...plan,
              timelineNote: `the WAL archive ${entry.walArchive} is not readable by this worker: the timeline was not checked, recovery follows ${input.timeline ?? (recoveryTarget === 'immediate' ? 'current' : 'latest')}`,
            };
          progress.report(`finding the timeline of the target in the WAL archive ${entry.walArchive}`);
          let choice: TimelineChoice;
          try {
            choice = await chooseRecoveryTimeline(entry.walArchive, backup, recoveryTarget, {
              inclusive: input.inclusive,
              requested: input.timeline,
              binDir: entry.target.kind === 'local' ? entry.target.binDir : undefined,
              signal: progress.signal,
            });
          } catch (err) {
            if (err instanceof TargetNotOnHistory) throw refuse(err.message);
            throw err;
          }
          return {
            ...plan,
            timeline: choice.timeline,
            stopLsn: choice.stopLsn,
            timelineNote: `the target lies on timeline ${choice.timeline}${choice.stopLsn ? ` (recovery stops at ${choice.stopLsn})` : ''}; timelines reachable from backup ${backup.id}: ${choice.reachable.join(', ')}`,
          };
        }),
      );
    },
  };
}

/** The database system identifier of the cluster as it is now, if it can be read. */
async function currentSystemIdentifier(
  services: ClusterServices,
  progress: { report(detail: string): void; signal: AbortSignal },
): Promise<string | undefined> {
  const cluster = services.name;
  const target = services.entry.target;
  if (target.kind === 'local')
    return (await readControlData(target.binDir, target.pgdata, target.osUser).catch(() => undefined))
      ?.systemIdentifier;
  if (await serverRunning(services)) return withSession(await services.endpoint(), systemIdentifierOf);
  // A data directory that cannot be read (its claim gone, say) is what a restore may be for: not a refusal.
  return services
    .withStoppedDataDirectory(async (dir) => (await dir.controlData()).systemIdentifier, {
      onProgress: (d) => progress.report(d),
      signal: progress.signal,
    })
    .catch((err: unknown) => {
      log.warn('could not read the system identifier of the stopped cluster', { cluster, error: String(err) });
      return undefined;
    });
}

function checkTargetAfterBackup(target: RecoveryTarget, backup: BackupRecord, refuse: (why: string) => Error): void {
  if ('lsn' in target && compareLsn(target.lsn, backup.stopLsn) < 0)
    throw refuse(
      `the target LSN ${target.lsn} is before the end of backup ${backup.id} (${backup.stopLsn}): recovery cannot stop before the backup is consistent; choose an older backup`,
    );
  if ('time' in target) {
    const micros = isoTimeMicros(target.time);
    const end = isoTimeMicros(backup.stoppedAt) ?? BigInt(Date.parse(backup.stoppedAt)) * 1000n;
    if (micros !== undefined && micros < end)
      throw refuse(
        `the target time ${target.time} is before backup ${backup.id} ended (${backup.stoppedAt}): choose an older backup`,
      );
  }
}
