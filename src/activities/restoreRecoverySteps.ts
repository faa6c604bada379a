// The restore's recovery: watched until it ends or pauses at the target, then the restored
// server checked (the backup's system, its timeline) and its recovery settings removed.
import type { ClusterRegistry } from './clusterRegistry';
import { asStep, preconditionFailed } from './failures';
import { withHeartbeats } from './heartbeat';
import { findBackup } from './backupLookup';
import { pauseForTests } from '../drivers/testPause';
import { withSession } from '../drivers/postgres/session';
import { checkRestoredServer } from '../drivers/postgres/restore/restoredServer';
import { lastRecoveryLine, watchRecoveryOf } from './recoveryWatch';
import type { RecoveryWatched, RestoreVerified } from '../contract/operations/restoreSteps';

/** Watch the recovery, then verify the restored server. */
export function createRestoreRecoverySteps(registry: ClusterRegistry) {
  return {
    /** Watches archive recovery until it ends (promoted) or pauses at the target. */
    async watchRecovery(input: { cluster: string; targetLsn?: string }): Promise<RecoveryWatched> {
      const { cluster } = input;
      return asStep(cluster, 'recovery', () =>
        withHeartbeats(async (progress) => {
          const services = registry.services(cluster);
          return watchRecoveryOf(
            {
              cluster,
              step: 'recovery',
              logName: `the server log of cluster "${cluster}"`,
              endpoint: await services.endpoint(),
              running: async () => (await services.target().describe()).running,
              serverLog: () => services.serverLog(),
              targetLsn: input.targetLsn,
            },
            progress,
          );
        }),
      );
    },

    /** Verifies the restored server and removes the recovery settings once recovery has ended. */
    async finishRestore(input: { cluster: string; backup: string }): Promise<RestoreVerified> {
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
  };
}
