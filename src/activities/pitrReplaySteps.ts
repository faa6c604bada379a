// The PITR's replay: write the target, restart the replica if the settings need it, and watch
// replay up to the target (with the WAL read-ahead where the worker can stage segments).
import { ApplicationFailure } from '@temporalio/activity';
import type { ClusterRegistry } from './clusterRegistry';
import { asStep } from './failures';
import { withHeartbeats, type ActivityProgress } from './heartbeat';
import type { ReplicaRef } from './replicaRef';
import { waitForReplayTarget } from './replayMonitor';
import { readAheadPlan, startReadAhead } from './replayReadAhead';
import type { ClusterServices } from '../drivers/clusterServices';
import { replayStatus, type SettingWithSource } from '../drivers/postgres/replica/replayControl';
import {
  applyRecoveryTarget,
  restoreOwnRestoreCommand,
  settingsAwaitingRestart,
  type RecoveryTarget,
} from '../drivers/postgres/replica/recoveryTarget';
import { replayStart } from '../drivers/postgres/replica/restartPoint';
import { withParkedSession } from '../drivers/postgres/parkedSession';
import { reloadConfiguration } from '../drivers/postgres/settings';
import { waitForSql, withSession } from '../drivers/postgres/session';
import { compareLsn } from '../common/lsn';
import type { ReplayTargetReached } from '../contract/operations/pitrSteps';

/** PostgreSQL refuses a stop point before its minimum recovery point at start-up: say so plainly. */
async function startOrExplain(cluster: string, start: () => Promise<unknown>): Promise<void> {
  try {
    await start();
  } catch (err) {
    if (/before consistent recovery point/.test((err as Error).message)) {
      throw ApplicationFailure.nonRetryable(
        `cluster "${cluster}", step restart: PostgreSQL refused the recovery target at start-up: "requested recovery stop point is before consistent recovery point" (the replica had flushed past it). The replica is down with the target set.`,
        'StopPointPassed',
      );
    }
    throw err;
  }
}

export type RestartResult = {
  restarted: boolean;
  ms: number;
  /** Where the time went: the check for settings awaiting a restart, the restart, the first query after it. */
  phasesMs?: { pending: number; restart: number; firstQuery: number };
};
/**
 * Restarts the replica only if recovery settings wait for a restart (settingsAwaitingRestart):
 * a retry after the restart already happened does not restart recovery again. `abort` ends
 * the waits; without it the restart runs to its end whatever happens to the activity.
 */
const restartIfPending = async (
  services: ClusterServices,
  { cluster, immediate, mustNotPass }: ReplicaRef & { immediate?: boolean; mustNotPass?: string },
  progress: ActivityProgress,
  abort: AbortSignal | undefined,
  /** false when the caller's next step queries the replica anyway (the replay watch retries until it answers). */
  waitForQueries = true,
): Promise<RestartResult> => {
  const started = Date.now();
  const endpoint = await services.endpoint();
  const driver = services.target();
  const onProgress = (d: string) => progress.report(d);
  /** Starts, then waits for a query; returns how long each took. */
  const startAndWaitForSql = async (start: () => Promise<unknown>) => {
    const began = Date.now();
    await startOrExplain(cluster, start);
    const startedAt = Date.now();
    if (waitForQueries) await waitForSql(endpoint, { timeoutMs: 3_600_000, onProgress, signal: abort });
    return { restart: startedAt - began, firstQuery: Date.now() - startedAt };
  };
  if (!(await driver.describe()).running) {
    // A worker died between the stop and the start of an earlier attempt: the settings are
    // already on disk, so starting the server is the restart.
    progress.report('the replica is down (an earlier attempt stopped it): starting it');
    await startAndWaitForSql(() => driver.start(1, { onProgress, signal: abort }));
    return { restarted: true, ms: Date.now() - started };
  }
  // On the parked session (plain statements, safe to run twice): no login before the restart.
  const pending = await withParkedSession(endpoint, async (client) => {
    const awaiting = await settingsAwaitingRestart(client);
    // Nothing for a restart to apply: a reload applies the rest (the delay), and no
    // shutdown follows that would wait for a startup process the reload made pause.
    if (awaiting.length === 0) await reloadConfiguration(client);
    return awaiting;
  });
  if (pending.length === 0) return { restarted: false, ms: Date.now() - started };
  if (mustNotPass) {
    // The stop point lies before what was replayed: it is reachable only while the minimum
    // recovery point has not moved past it (a restartpoint may have flushed since the check).
    const min = (await replayStatus(endpoint)).minRecoveryEndLsn;
    if (compareLsn(min, mustNotPass) > 0) {
      throw ApplicationFailure.nonRetryable(
        `cluster "${cluster}", step restart: the replica's minimum recovery point ${min} has moved past the stop point ${mustNotPass}; the replica is still up and paused`,
        'StopPointPassed',
      );
    }
  }
  progress.report(
    `restarting the replica so that ${pending.join(', ')} take effect; it replays from the last restartpoint before accepting connections`,
  );
  const pendingMs = Date.now() - started;
  const phases = await startAndWaitForSql(() =>
    driver.restartServer({ onProgress, signal: abort, immediate, untilStarted: !waitForQueries }),
  );
  return { restarted: true, ms: Date.now() - started, phasesMs: { pending: pendingMs, ...phases } };
};

/** Apply the target, restart, watch replay to it. */
export function createPitrReplaySteps(registry: ClusterRegistry) {
  return {
    /** Step 3: target + delay 0 + action pause, written together (postgresql.auto.conf). */
    async applyPitrTarget({
      cluster,
      target,
      inclusive,
      timeline,
    }: ReplicaRef & { target: RecoveryTarget; inclusive: boolean; timeline?: number }): Promise<{
      originalDelay: SettingWithSource;
    }> {
      return asStep(cluster, 'apply-target', async () => {
        const services = registry.services(cluster);
        return {
          originalDelay: await applyRecoveryTarget(
            await services.endpoint(),
            target,
            inclusive,
            await readAheadPlan(services),
            timeline,
          ),
        };
      });
    },

    /** Step 4 alone (runs begun before 'restart-and-watch-together'; the return to delay). */
    async restartReplicaIfPending(
      input: ReplicaRef & { immediate?: boolean; mustNotPass?: string },
    ): Promise<RestartResult> {
      return asStep(input.cluster, 'restart', () =>
        withHeartbeats((progress) =>
          restartIfPending(registry.services(input.cluster), input, progress, progress.signal),
        ),
      );
    },

    /**
     * Steps 4 and 5 in one activity (one workflow task and one activity dispatch less): restart
     * if settings wait for it, then watch replay to the target. A restart is never abandoned half
     * way: a cancel that arrives during it takes effect once it is done, at the watch's first wait.
     * A retry restarts nothing that was restarted already and resumes watching.
     */
    async restartAndWaitForReplayTarget(
      input: ReplicaRef & {
        immediate?: boolean;
        mustNotPass?: string;
        targetLsn?: string;
        targetTime?: string;
        stallTimeoutMs: number;
      },
    ): Promise<{ restart: RestartResult; reached: ReplayTargetReached }> {
      // The read-ahead stages segments from the replica's REDO on while it restarts and replays.
      const services = registry.services(input.cluster);
      const plan = await readAheadPlan(services);
      const endpoint = plan ? await services.endpoint() : undefined;
      const start = plan && endpoint ? await replayStart(endpoint).catch(() => undefined) : undefined;
      let position: string | undefined;
      const readAhead = plan && start ? startReadAhead(plan, start, input.targetLsn, () => position) : undefined;
      try {
        const restart = await asStep(input.cluster, 'restart', () =>
          withHeartbeats((progress) => restartIfPending(services, input, progress, undefined, false)),
        );
        const reached = await asStep(input.cluster, 'replay', () =>
          withHeartbeats((progress) =>
            waitForReplayTarget(services, input, progress, (lsn) => {
              position = lsn;
            }),
          ),
        );
        const stats = await readAhead?.stop();
        // At the target the replica needs no more WAL: its own restore_command again (a reload).
        if (endpoint) await withSession(endpoint, (client) => restoreOwnRestoreCommand(client, true));
        return { restart, reached: stats ? { ...reached, readAhead: stats } : reached };
      } finally {
        await readAhead?.stop();
      }
    },

    async waitForReplayTarget(
      input: ReplicaRef & { targetLsn?: string; targetTime?: string; stallTimeoutMs: number },
    ): Promise<ReplayTargetReached> {
      return asStep(input.cluster, 'replay', () =>
        withHeartbeats((progress) => waitForReplayTarget(registry.services(input.cluster), input, progress)),
      );
    },
  };
}
