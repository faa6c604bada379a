// Rollback restore steps (procedures.md §3, and the recovery the seed left out): refuse early,
// roll every volume back, write backup_label and the recovery settings, watch recovery, verify
// and clean up. Every step is safe to repeat after a worker crash.
import { existsSync } from 'node:fs';
import { log } from '@temporalio/activity';
import type { ClusterRegistry } from './clusterRegistry';
import { asStep, preconditionFailed } from './failures';
import { withHeartbeats } from './heartbeat';
import { pauseForTests } from '../drivers/testPause';
import { compareLsn, lsnBytesBetween } from '../common/lsn';
import { isoTimeMicros, type RecoveryTarget } from '../common/recoveryTarget';
import { readControlData } from '../drivers/postgres/controlData';
import { editAutoConf, recoveryFiles } from '../drivers/postgres/restore/recoveryConfig';
import { type RecoveryTimeline, type RestoreTarget } from '../contract/recovery';
import { readReplayStatus } from '../drivers/postgres/replica/replayControl';
import {
  chooseRecoveryTimeline,
  TargetNotOnHistory,
  type TimelineChoice,
} from '../drivers/postgres/restore/targetTimeline';
import { withSession } from '../drivers/postgres/session';
import { startupFailure } from '../drivers/postgres/restore/startupFailure';
import type { BackupRecord } from '../contract/backups';
import { delay } from '../drivers/waiting';
import { LocalClusterDriver } from '../drivers/cluster/local';
import type { ClusterServices } from '../drivers/clusterServices';
import { checkRestoredServer, systemIdentifierOf } from '../drivers/postgres/restore/restoredServer';

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

export function createRestoreSteps(registry: ClusterRegistry) {
  async function findBackup(services: ClusterServices, id: string): Promise<BackupRecord> {
    const cluster = services.name;
    const storage = services.storage();
    const records = await storage.listRecords();
    const record =
      id === 'latest'
        ? records.find((r) => r.cluster === cluster && r.kind === 'backup')
        : records.find((r) => r.id === id);
    if (!record) {
      const deleting = id === 'latest' ? undefined : (await storage.listBeingDeleted()).find((r) => r.id === id);
      if (deleting)
        throw preconditionFailed(
          cluster,
          'check-restore',
          `backup "${id}" is being deleted (begun ${deleting.deletion.since} by ${deleting.deletion.by}, interrupted): its snapshots may be partly gone, so it cannot be restored. The next prune or deleteBackupWorkflow of this cluster finishes the deletion; listBackupsWorkflow lists the backups that can be restored. Nothing was changed.`,
        );
      const mine = records.filter((r) => r.cluster === cluster).slice(0, 10);
      throw preconditionFailed(
        cluster,
        'check-restore',
        `${id === 'latest' ? 'there is no backup of this cluster' : `there is no backup "${id}"`}; ${mine.length ? `backups: ${mine.map((r) => `${r.id} (${r.kind}, ${r.mode}, ${r.stoppedAt})`).join(', ')}` : 'none are recorded'}. Nothing was changed.`,
      );
    }
    return record;
  }

  return {
    /** Every refusal that can be known before touching anything. */
    async checkRestore(input: {
      cluster: string;
      backup: string;
      recoveryTarget?: RestoreTarget;
      inclusive?: boolean;
      /** The operator's recoveryTargetTimeline, if any: the target is looked for along it only. */
      timeline?: RecoveryTimeline;
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

    async rollbackVolumes({
      cluster,
      backup,
      restoreId,
    }: {
      cluster: string;
      backup: string;
      restoreId: string;
    }): Promise<{ ms: number; methods: string[] }> {
      return asStep(cluster, 'rollback', () =>
        withHeartbeats(async (progress) => {
          const services = registry.services(cluster);
          const record = await findBackup(services, backup);
          if (
            (
              await services
                .target()
                .describe()
                .catch(() => ({ running: false }))
            ).running
          )
            throw preconditionFailed(cluster, 'rollback', 'the server is running: a rollback needs it stopped');
          log.info('rolling back', { cluster, backup, step: 'rollback-begin' });
          const result = await services
            .storage()
            .rollback(record, { restoreId, onProgress: (d) => progress.report(d), signal: progress.signal });
          log.info('rolled back', { cluster, backup, step: 'rollback-end', ms: result.ms });
          return result;
        }),
      );
    },

    /** backup_label, tablespace_map, recovery.signal and the settings; stale files removed. */
    async writeRecoveryFiles(input: {
      cluster: string;
      backup: string;
      target?: RestoreTarget;
      inclusive: boolean;
      action: 'promote' | 'pause';
      timeline?: RecoveryTimeline;
    }): Promise<{ written: string[]; removed: string[]; settings: Record<string, string>; walFilesRemoved: number }> {
      const { cluster } = input;
      return asStep(cluster, 'recovery-files', () =>
        withHeartbeats(async (progress) => {
          const services = registry.services(cluster);
          const record = await findBackup(services, input.backup);
          if (await serverRunning(services))
            throw preconditionFailed(
              cluster,
              'recovery-files',
              'the server is running: recovery files are written while it is stopped',
            );
          let walFilesRemoved = 0;
          const files = recoveryFiles({
            labelfile: record.mode === 'online' ? record.labelfile : undefined,
            spcmapfile: record.mode === 'online' ? record.spcmapfile : undefined,
            walArchive: services.archive.walArchive,
            target: input.target,
            inclusive: input.inclusive,
            action: input.action,
            timeline: input.timeline,
          });
          await services.withStoppedDataDirectory(
            async ({ files: dir }) => {
              if (input.target !== undefined) walFilesRemoved = await dir.clearWal();
              for (const name of files.remove) await dir.remove(name);
              for (const [name, content] of Object.entries(files.write)) await dir.write(name, content);
              await dir.write(
                'postgresql.auto.conf',
                editAutoConf((await dir.read('postgresql.auto.conf')) ?? '', files.settings),
              );
            },
            { onProgress: (d) => progress.report(d), signal: progress.signal },
          );
          return {
            written: Object.keys(files.write),
            removed: files.remove,
            settings: files.settings,
            walFilesRemoved,
          };
        }),
      );
    },

    /** Watches archive recovery until it ends (promoted) or pauses at the target. */
    async watchRecovery(input: {
      cluster: string;
      targetLsn?: string;
    }): Promise<{ state: 'promoted' | 'paused'; replayLsn: string | null; ms: number }> {
      const { cluster } = input;
      return asStep(cluster, 'recovery', () =>
        withHeartbeats(async (progress) => {
          const services = registry.services(cluster);
          const endpoint = await services.endpoint();
          const started = Date.now();
          let last: { lsn: string; at: number } | undefined;
          for (;;) {
            let status;
            try {
              status = await withSession(endpoint, readReplayStatus);
            } catch (err) {
              if (!(await services.target().describe()).running) {
                const lines = await services.serverLog();
                // Recovery itself ended with FATAL (say, before its target): the server's words at the top.
                const refused = startupFailure(lines, `the server log of cluster "${cluster}"`);
                if (refused) throw refused;
                throw preconditionFailed(
                  cluster,
                  'recovery',
                  `the server stopped during recovery: ${(err as Error).message}\n${lines.slice(-8).join('\n')}`,
                );
              }
              progress.report(`server not answering yet: ${(err as Error).message}`);
              await delay(250, progress.signal);
              continue;
            }
            const ms = Date.now() - started;
            if (!status.inRecovery) return { state: 'promoted' as const, replayLsn: status.replayLsn, ms };
            if (status.pauseState === 'paused') return { state: 'paused' as const, replayLsn: status.replayLsn, ms };
            const lsn = status.replayLsn ?? '0/0';
            const numbers: Record<string, number | string> = {
              replayLsn: lsn,
              replayTimestamp: status.replayTimestamp ?? 'none yet',
            };
            if (last && compareLsn(lsn, last.lsn) > 0) {
              const rate = Number(lsnBytesBetween(last.lsn, lsn)) / Math.max(0.001, (Date.now() - last.at) / 1000);
              numbers.rateMBps = Number((rate / 1e6).toFixed(2));
              if (input.targetLsn && compareLsn(input.targetLsn, lsn) > 0) {
                const left = Number(lsnBytesBetween(lsn, input.targetLsn));
                numbers.bytesLeft = left;
                numbers.etaSeconds = Math.round(left / Math.max(1, rate));
              }
            }
            if (!last || compareLsn(lsn, last.lsn) !== 0) last = { lsn, at: Date.now() };
            progress.report(`replaying archived WAL: at ${lsn}`, numbers);
            await delay(250, progress.signal);
          }
        }),
      );
    },

    /** Verifies the restored server and removes the recovery settings once recovery has ended. */
    async finishRestore(input: { cluster: string; backup: string }): Promise<{
      timeline: number;
      endLsn: string;
      systemIdentifier: string;
      inRecovery: boolean;
      settingsRemoved: string[];
      lastRecoveryLog?: string;
    }> {
      const { cluster } = input;
      return asStep(cluster, 'verify', async () => {
        const services = registry.services(cluster);
        const record = await findBackup(services, input.backup);
        await pauseForTests('verify', undefined);
        const checked = await withSession(await services.endpoint(), checkRestoredServer);
        if (checked.systemIdentifier !== record.systemIdentifier)
          throw preconditionFailed(
            cluster,
            'verify',
            `the restored server is system ${checked.systemIdentifier}, not the backup's ${record.systemIdentifier}`,
          );
        return { ...checked, lastRecoveryLog: lastRecoveryLine(await services.serverLog()) };
      });
    },

    /** After a successful restore: what the rollback kept in case it failed is let go (CSI: old volumes). */
    async releaseReplacedVolumes(input: { cluster: string; restoreId: string }): Promise<{ released: string[] }> {
      const { cluster } = input;
      return asStep(cluster, 'release', async () => {
        const storage = registry.services(cluster).storage();
        return { released: storage.releaseReplaced ? await storage.releaseReplaced(input.restoreId) : [] };
      });
    },
  };
}

/** Whether a PostgreSQL server runs (local: a live postmaster; Kubernetes: a pod). */
async function serverRunning(services: ClusterServices): Promise<boolean> {
  const driver = services.target();
  if (driver instanceof LocalClusterDriver) return driver.livePostmasterPid() !== undefined;
  return (await driver.describe()).running;
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

/** The server log's last word on recovery: where it stopped and why (from the latest recovery on). */
function lastRecoveryLine(lines: string[]): string | undefined {
  const begin = lines.findLastIndex((l) =>
    /starting (archive|point-in-time) recovery|starting backup recovery/.test(l),
  );
  const recent = lines.slice(Math.max(0, begin));
  return (
    recent.findLast((l) => /recovery stopping|pausing at the end of recovery|recovery has paused/.test(l)) ??
    recent.findLast((l) => /archive recovery complete|consistent recovery state/.test(l))
  );
}
