// Step 7 check: after the target is removed and the delay restored, the replica is replaying
// again (not paused), with the original delay in force, and its lag is back near the delay.
import { replayStatus } from '../drivers/postgres/replica/replayControl';
import { compareLsn } from '../common/lsn';
import { delay } from '../drivers/waiting';
import type { ClusterServices } from '../drivers/clusterServices';
import type { ActivityProgress } from './heartbeat';
import type { DelayedReplayConfirmed } from '../contract/operations/pitrSteps';

export async function confirmDelayedReplay(
  services: ClusterServices,
  input: { cluster: string; timeoutMs: number },
  progress: ActivityProgress,
): Promise<DelayedReplayConfirmed> {
  const endpoint = await services.endpoint();
  const deadline = Date.now() + input.timeoutMs;
  let firstLsn: string | null | undefined;
  for (;;) {
    const status = await replayStatus(endpoint).catch(() => undefined);
    if (status) {
      firstLsn ??= status.replayLsn;
      const delayMs = Number(status.settings.recovery_min_apply_delay.value);
      const lagSeconds = status.replayTimestamp
        ? (Date.parse(status.serverNow) - Date.parse(status.replayTimestamp)) / 1000
        : null;
      const replayAdvanced = !!(status.replayLsn && firstLsn && compareLsn(status.replayLsn, firstLsn) > 0);
      const lagNearDelay = lagSeconds !== null && lagSeconds <= (delayMs / 1000) * 1.5 + 30;
      const result = {
        pauseState: status.pauseState,
        delay: `${delayMs}ms`,
        replayLsn: status.replayLsn,
        lagSeconds: lagSeconds === null ? null : Math.round(lagSeconds),
        replayAdvanced,
      };
      progress.report(
        `replica ${status.pauseState}, delay ${delayMs} ms, lag ${result.lagSeconds ?? '?'} s, replay ${replayAdvanced ? 'advancing' : 'waiting for WAL'}`,
        { replayLsn: status.replayLsn ?? '', lagSeconds: result.lagSeconds ?? -1 },
      );
      if (status.inRecovery && status.pauseState === 'not paused' && (replayAdvanced || lagNearDelay)) return result;
      if (Date.now() > deadline) {
        throw new Error(
          `the replica is ${status.pauseState} with lag ${result.lagSeconds ?? '?'} s and replay ${replayAdvanced ? 'advancing' : 'not advancing'} after ${Math.round(input.timeoutMs / 1000)} s: check its log`,
        );
      }
    }
    await delay(1000, progress.signal);
  }
}
