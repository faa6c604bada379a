// The restore's changes to the volumes: every volume rolled back to its snapshot, the recovery
// files written into the stopped data directory, and what the rollback kept let go at the end.
import { log } from '@temporalio/activity';
import type { ClusterRegistry } from './clusterRegistry';
import { asStep, preconditionFailed } from './failures';
import { withHeartbeats } from './heartbeat';
import { findBackup } from './backupLookup';
import type { ClusterServices } from '../drivers/clusterServices';
import { LocalClusterDriver } from '../drivers/cluster/local';
import { editAutoConf, recoveryFiles } from '../drivers/postgres/restore/recoveryConfig';
import type { RecoveryTimeline, RestoreTarget } from '../contract/recovery';
import type { RecoveryFilesWritten, VolumesRolledBack } from '../contract/operations/restoreSteps';
import type { VolumeRestoreMethod } from '../drivers/storage/types';

/** Rollback, recovery files, release: what the restore changes on the volumes. */
export function createRestoreVolumeSteps(registry: ClusterRegistry) {
  return {
    async rollbackVolumes({
      cluster,
      backup,
      restoreId,
      method,
    }: {
      cluster: string;
      backup: string;
      restoreId: string;
      method?: VolumeRestoreMethod;
    }): Promise<VolumesRolledBack> {
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
            .rollback(record, { restoreId, method, onProgress: (d) => progress.report(d), signal: progress.signal });
          log.info('rolled back', { cluster, backup, step: 'rollback-end', ms: result.ms, method: result.method });
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
    }): Promise<RecoveryFilesWritten> {
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

    /**
     * After a clone-swap restore, in the background: each clone flattened (rbd flatten, its percentage
     * reported), then the images set aside that hold nothing any more removed. Resumable after a crash.
     */
    async flattenVolumes(input: { cluster: string; images: string[] }): Promise<{ said: string[] }> {
      const { cluster } = input;
      return asStep(cluster, 'flatten', () =>
        withHeartbeats(async (progress) => {
          const storage = registry.services(cluster).storage();
          if (!storage.flatten) return { said: [`storage kind ${storage.kind} has nothing to flatten`] };
          const said = await storage.flatten(input.images, {
            onProgress: (d) => progress.report(d),
            onPercent: (image, percent) => progress.report(`rbd flatten ${image}: ${percent}%`, { image, percent }),
            signal: progress.signal,
          });
          log.info('flattened', { cluster, step: 'flatten-end', images: input.images });
          return { said };
        }),
      );
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
export async function serverRunning(services: ClusterServices): Promise<boolean> {
  const driver = services.target();
  if (driver instanceof LocalClusterDriver) return driver.livePostmasterPid() !== undefined;
  return (await driver.describe()).running;
}
