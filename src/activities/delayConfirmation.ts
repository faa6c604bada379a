// Step 7 check: after the target is removed and the delay restored, the replica is replaying
// again (not paused), with the original delay in force: its replay advances, its lag is back near
// the delay, or its startup process waits for the next WAL or for the delay. A quiet primary
// sends nothing new, and a replica that replayed everything there was at its restart has a lag
// as old as the primary's last commit: only the wait shows that it is where it should be.
import { replayStatus, startupWaitMeaning } from '../drivers/postgres/replica/replayControl';
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
  let sawStartupWait = false;
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
      const waiting = startupWaitMeaning(status.startupWait);
      sawStartupWait ||= status.startupWait !== null;
      const result: DelayedReplayConfirmed = {
        pauseState: status.pauseState,
        delay: `${delayMs}ms`,
        replayLsn: status.replayLsn,
        lagSeconds: lagSeconds === null ? null : Math.round(lagSeconds),
        replayAdvanced,
        ...(waiting === 'wal' || waiting === 'delay' ? { waitingFor: waiting } : {}),
      };
      const doing = replayAdvanced
        ? 'advancing'
        : waiting === 'wal'
          ? 'caught up, waiting for WAL'
          : waiting === 'delay'
            ? 'holding a commit for the delay'
            : 'not advancing yet';
      progress.report(
        `replica ${status.pauseState}, delay ${delayMs} ms, lag ${result.lagSeconds ?? '?'} s, replay ${doing}`,
        { replayLsn: status.replayLsn ?? '', lagSeconds: result.lagSeconds ?? -1 },
      );
      if (
        status.inRecovery &&
        status.pauseState === 'not paused' &&
        (replayAdvanced || lagNearDelay || result.waitingFor)
      )
        return result;
      if (Date.now() > deadline) {
        // A role that is neither superuser nor pg_read_all_stats never sees the startup process's wait.
        const unseen = sawStartupWait ? '' : ' (its startup process was never seen waiting: grant pg_read_all_stats)';
        throw new Error(
          `the replica is ${status.pauseState} with lag ${result.lagSeconds ?? '?'} s and replay ${doing} after ${Math.round(input.timeoutMs / 1000)} s${unseen}: check its log`,
        );
      }
    }
    await delay(1000, progress.signal);
  }
}
