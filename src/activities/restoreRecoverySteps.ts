// The restore's recovery: watched until it ends or pauses at the target, then the restored
// server checked (the backup's system, its timeline) and its recovery settings removed.
import type { ClusterRegistry } from './clusterRegistry';
import { asStep, preconditionFailed } from './failures';
import { withHeartbeats } from './heartbeat';
import { findBackup } from './backupLookup';
import { pauseForTests } from '../drivers/testPause';
import { compareLsn, lsnBytesBetween } from '../common/lsn';
import { readReplayStatus } from '../drivers/postgres/replica/replayControl';
import { withSession } from '../drivers/postgres/session';
import { startupFailure } from '../drivers/postgres/restore/startupFailure';
import { checkRestoredServer } from '../drivers/postgres/restore/restoredServer';
import { delay } from '../drivers/waiting';
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
