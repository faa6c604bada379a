// Delayed-replica PITR steps (procedures.md §4), one driver call each, every one safe to repeat.
// Refusals are non-retryable and say what state the replica was left in.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { ClusterRegistry } from './clusterRegistry';
import { asStep, preconditionFailed } from './failures';
import { withHeartbeats, type ActivityProgress } from './heartbeat';
import type { LockedStepInput } from './lockGuard';
import {
  NotAReplicaError,
  pauseReplay,
  replayStatus,
  type SettingWithSource,
} from '../drivers/postgres/replica/replayControl';
import { withParkedSession } from '../drivers/postgres/parkedSession';
import {
  applyRecoveryTarget,
  clearRecoveryTarget,
  restoreOwnRestoreCommand,
  settingsAwaitingRestart,
  type RecoveryTarget,
} from '../drivers/postgres/replica/recoveryTarget';
import { checkTargetReachable } from '../drivers/postgres/replica/targetReachability';
import { findTimeTargetStop, relationMap } from '../drivers/postgres/archive/walInspect';
import { locateIncidents, relationMapHasTable, type Incident } from '../drivers/postgres/archive/incidentLocator';
import { annotateDroppedIncidents } from '../drivers/postgres/replica/dropGuard';
import { checkDropsAtTarget, withWarning } from './dropChecks';
import { checkTimelineAtTarget, type PitrThen } from './pitrTimelineCheck';
import { serverPosition } from '../drivers/postgres/replica/replicaHistory';
import { findExclusiveLockStart } from '../drivers/postgres/lockingTransaction';
import { compareLsn } from '../common/lsn';
import { waitForSql, withSession, type PgEndpoint } from '../drivers/postgres/session';
import {
  exportTables,
  insertMissingRows,
  MissingTableError,
  NoPrimaryKeyError,
  type InsertResult,
  type TableExport,
} from '../drivers/postgres/rowExport';
import { describeRecoveryTarget } from '../common/recoveryTarget';
import { lockStateQuery, lockWorkflowId } from '../contract/definitions';
import { waitForReplayTarget, type ReplayTargetReached } from './replayMonitor';
import { lockRuns } from './lockSteps';
import type { ArchiveSearchStats } from '../drivers/postgres/archive/walInspect';
import { confirmDelayedReplay, type DelayedReplayConfirmed } from './delayConfirmation';
import { readAheadPlan, startReadAhead } from './replayReadAhead';
import { replayStart } from '../drivers/postgres/replica/restartPoint';
import { promoteStandby } from '../drivers/postgres/replica/promote';
import { reloadConfiguration } from '../drivers/postgres/settings';
import type { ClusterServices } from '../drivers/clusterServices';
import type { CheckedTarget } from './checkedTarget';
import { clearReadAhead } from '../drivers/postgres/archive/walReadAhead';
import {
  refuseDivergedReplica,
  refuseInsertAcrossHistories,
  replicasLeftBehind,
  type ReplicaLeftBehind,
} from './replicaHistoryChecks';

export interface PromotionResult {
  promoted: boolean;
  alreadyPromoted: boolean;
  timeline: number;
  /** The primary the promoted replica followed (its catalog replicaOf, unchanged by the promotion). */
  formerPrimary?: string;
  catalogReplicaOf?: string;
  /** The former primary's other replicas in the catalog: none of them follows the promoted server. */
  replicasFollowingNobody?: ReplicaLeftBehind[];
  note?: string;
}

/** A replica by its cluster name; `lockGrantedAt` as for every step (lockGuard.ts). */
export type ReplicaRef = LockedStepInput;

/** The id of another running delayedReplicaPitrWorkflow holding this cluster's lock, if any. */
async function runningPitrOwner(cluster: string): Promise<string | undefined> {
  const ctx = Context.current();
  const me = ctx.info.workflowExecution?.workflowId;
  try {
    // An ended lock (idle, or none yet) names nobody; asking first spares a query that a worker
    // would answer by replaying the ended lock's whole history.
    if (!(await lockRuns(cluster))) return undefined;
    const state = await ctx.client.workflow
      .getHandle(lockWorkflowId(cluster, ctx.info.taskQueue))
      .query(lockStateQuery);
    const holder = state.holder;
    if (!holder || holder.operation !== 'delayedReplicaPitrWorkflow' || holder.workflowId === me) return undefined;
    // A holder that was terminated without releasing controls nothing any more.
    const running =
      (await ctx.client.workflow.getHandle(holder.workflowId, holder.runId).describe()).status.name === 'RUNNING';
    return running ? holder.workflowId : undefined;
  } catch {
    return undefined; // no lock workflow yet, or it cannot answer: pause as usual
  }
}

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

/** Moves a stop-before-commit to the start of a transaction that holds an ACCESS EXCLUSIVE lock. */
async function preferStopBeforeLock(
  endpoint: PgEndpoint,
  archiveDir: string,
  target: RecoveryTarget,
  checked: CheckedTarget,
  binDir: string,
  canRestartImmediately: boolean,
): Promise<CheckedTarget> {
  let xid: number | undefined;
  let commitLsn = checked.targetLsn;
  if ('xid' in target) xid = Number(target.xid);
  else if ('time' in target && checked.targetLsn) {
    // The record the check found the time target stops before: read again from its LSN alone.
    const stop = await findTimeTargetStop(archiveDir, target.time, false, { binDir, afterLsn: checked.targetLsn });
    xid = stop?.xid;
    commitLsn = stop?.lsn;
  }
  if (xid === undefined) return checked;
  const locking = await findExclusiveLockStart(archiveDir, xid, { binDir, endLsn: commitLsn });
  if (!locking) return checked;
  if (!canRestartImmediately) {
    return {
      ...checked,
      note: `transaction ${xid} holds an ACCESS EXCLUSIVE lock on ${locking.lockedRelations.join(', ')}: at the target those tables stay locked on the replica and cannot be read or exported (a pod restart cannot re-replay from before the lock); promote to read them`,
    };
  }
  const minRecovery = (await replayStatus(endpoint)).minRecoveryEndLsn;
  if (compareLsn(locking.firstLsn, minRecovery) < 0) {
    return {
      ...checked,
      note: `transaction ${xid} holds an ACCESS EXCLUSIVE lock on ${locking.lockedRelations.join(', ')} and the replica has flushed past its start (${minRecovery}): at the target those tables stay locked on the replica and cannot be read or exported; promote to read them`,
    };
  }
  return {
    targetLsn: locking.firstLsn,
    targetTime: checked.targetTime,
    effectiveTarget: { lsn: locking.firstLsn },
    effectiveInclusive: false,
    beforeLockingTransaction: true,
    requestedTargetLsn: checked.targetLsn,
    note: `transaction ${xid} holds an ACCESS EXCLUSIVE lock (TRUNCATE/DROP/ALTER) on ${locking.lockedRelations.join(', ')}: stopping before its first record at ${locking.firstLsn} instead of before its commit, so those tables stay readable on the paused replica`,
  };
}

export function createPitrSteps(registry: ClusterRegistry) {
  /** How to reach the replica's primary (its catalog replicaOf), if it names one. */
  const primaryEndpoint = async (replica: ClusterServices) => {
    const primary = replica.entry.replicaOf;
    return primary ? registry.services(primary).endpoint() : undefined;
  };

  type RestartResult = {
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
    const phases = await startAndWaitForSql(() => driver.restartServer({ onProgress, signal: abort, immediate }));
    return { restarted: true, ms: Date.now() - started, phasesMs: { pending: pendingMs, ...phases } };
  };

  return {
    /** Step 1: stop the damage. Must be the first thing a PITR does, within a second. */
    async pauseReplicaReplay({ cluster }: ReplicaRef): Promise<{
      pauseState: string;
      replayLsn: string;
      replayTimestamp: string | null;
      pausedAt: string;
    }> {
      return asStep(cluster, 'pause', async () => {
        const endpoint = await registry.services(cluster).endpoint();
        try {
          // The usual case, in one session and no call to the server: no recovery target in force,
          // so no PITR drives this replica's replay, and it is paused at once.
          const fast = await pauseReplay(endpoint, { unlessTargetInForce: true });
          if (!('targetInForce' in fast)) return { ...fast, pausedAt: fast.pausedAt.toISOString() };
          const owner = await runningPitrOwner(cluster);
          if (owner) {
            // Another PITR paused this replica at its own start and now drives replay to its target;
            // pausing again would stop that replay short. This workflow will be refused the lock.
            return {
              pauseState: `left to ${owner}, which controls replay`,
              replayLsn: '',
              replayTimestamp: null,
              pausedAt: new Date().toISOString(),
            };
          }
          // A target left by a PITR that no longer runs: nobody's purpose, pause as usual.
          const result = await pauseReplay(endpoint);
          return { ...result, pausedAt: result.pausedAt.toISOString() };
        } catch (err) {
          if (err instanceof NotAReplicaError)
            throw preconditionFailed(
              cluster,
              'pause',
              `this server is not a replica (pg_is_in_recovery() is false): PITR runs on a delayed replica. Nothing was changed. ${err.message}`,
            );
          throw err;
        }
      });
    },

    async inspectReplica({ cluster }: ReplicaRef): Promise<{
      pauseState: string;
      replayLsn: string | null;
      replayTimestamp: string | null;
      delay: string;
      delaySource: string;
      archive: string | null;
      primary: string | null;
    }> {
      return asStep(cluster, 'inspect', async () => {
        const services = registry.services(cluster);
        const status = await replayStatus(await services.endpoint());
        const entry = services.entry;
        const delay = status.settings.recovery_min_apply_delay;
        return {
          pauseState: status.pauseState,
          replayLsn: status.replayLsn,
          replayTimestamp: status.replayTimestamp,
          delay: `${delay.value}${delay.unit ?? ''}`,
          delaySource: delay.sourcefile ?? delay.source,
          archive: entry.walArchive ?? null,
          primary: entry.replicaOf ?? null,
        };
      });
    },

    /** Lists the transactions in a time window that deleted, truncated or dropped (from the WAL archive). */
    async locateIncident({
      cluster,
      from,
      to,
      table,
    }: ReplicaRef & { from?: string; to?: string; table?: string }): Promise<Incident[]> {
      return asStep(cluster, 'locate-incident', () =>
        withHeartbeats(async (progress) => {
          const services = registry.services(cluster);
          const entry = services.entry;
          if (!entry.walArchive)
            throw preconditionFailed(
              cluster,
              'locate-incident',
              'the catalog gives no walArchive for this cluster: the incident locator reads archived WAL with pg_waldump',
            );
          const endpoint = await services.endpoint();
          const relfilenodes = await relationMap(endpoint);
          if (table !== undefined && !relationMapHasTable(relfilenodes, table)) {
            const status = await replayStatus(endpoint);
            throw preconditionFailed(
              cluster,
              'locate-incident',
              `the delayed replica has no table ${table} at its replay position (${status.replayLsn}, last replayed commit at ${status.replayTimestamp ?? 'unknown'}): either it has already replayed the drop of that table, so this replica cannot bring it back, or the table was created after that position (the replica has not replayed its creation yet), or the name is wrong (give it as schema.table if it is not in public). The replica is left ${status.pauseState === 'not paused' ? 'replaying' : 'paused'}; search the window without a table to list every incident in it.`,
            );
          }
          progress.report(`reading the WAL archive ${entry.walArchive} with pg_waldump`);
          const incidents = await locateIncidents(entry.walArchive, {
            from,
            to,
            table,
            relfilenodes,
            binDir: services.archive.pgBinDir,
            signal: progress.signal,
          });
          if (!incidents.some((i) => i.dropped)) return incidents;
          // Names of dropped databases and tablespaces, and a warning where the replica replayed a drop early.
          const primary = await primaryEndpoint(services);
          return annotateDroppedIncidents(incidents, (await replayStatus(endpoint)).replayLsn, {
            endpoints: [endpoint, ...(primary ? [primary] : [])],
          });
        }),
      );
    },

    async checkPitrTarget({
      cluster,
      target,
      inclusive,
      then,
    }: ReplicaRef & { target: RecoveryTarget; inclusive: boolean; then?: PitrThen }): Promise<CheckedTarget> {
      return asStep(cluster, 'check-target', async () => {
        const services = registry.services(cluster);
        const entry = services.entry;
        const endpoint = await services.endpoint();
        const began = Date.now();
        const reads: Record<string, number> = {};
        const archiveSearch: ArchiveSearchStats = { probes: 0, segmentsRead: 0 };
        // A replica past the fork of its primary's restore is refused first, whatever the target
        // (read beside the target check: both only read). Its position serves the timeline check too.
        const position = serverPosition(endpoint);
        position.catch(() => undefined); // awaited below; a failure is handled where it is
        const divergence = refuseDivergedReplica(registry, cluster, 'check-target', position).then(
          () => undefined,
          (err: unknown) => err,
        );
        const verdict = await checkTargetReachable(endpoint, target, {
          archiveDir: entry.walArchive,
          primary: await primaryEndpoint(services),
          inclusive,
          readsMs: reads,
          archiveSearch,
        }).catch(async (err: unknown) => {
          throw (await divergence) ?? err;
        });
        const diverged = await divergence;
        if (diverged) throw diverged;
        if (!verdict.ok) {
          throw preconditionFailed(
            cluster,
            'check-target',
            `cannot stop at ${describeRecoveryTarget(target, inclusive)}: ${verdict.reason}. The replica is left paused and its settings unchanged; choose another target, or resume the delay with pg_wal_replay_resume() only if no target is wanted.`,
          );
        }
        const reachable = Date.now() - began;
        const judged: CheckedTarget = {
          targetLsn: verdict.targetLsn,
          targetTime: verdict.targetTime,
          note: verdict.note,
          effectiveTarget: target,
          effectiveInclusive: inclusive,
          beforeLockingTransaction: false,
          phasesMs: { reachable, lockSearch: 0, reads },
          archiveSearch,
          replayLsnAtCheck: verdict.replayLsn ?? null,
        };
        // With several branches in the archive: the one the target lies on, and where it stops there.
        const checked = await checkTimelineAtTarget(services, endpoint, judged, {
          target,
          inclusive,
          then,
          position,
        });
        const primary = await primaryEndpoint(services);
        const drops = await checkDropsAtTarget(services, { replica: endpoint, primary }, checked, {
          target,
          inclusive,
        });
        if (drops.checked !== checked) return drops.checked; // moved before a drop record
        if (inclusive || !entry.walArchive || !verdict.targetLsn) return withWarning(checked, drops.warning);
        // Only a local target can restart without a shutdown restartpoint (pg_ctl -m immediate); a
        // pod deletion shuts PostgreSQL down cleanly, which would move the minimum recovery point
        // past an earlier stop point and leave the pod unable to start.
        const preferred = await preferStopBeforeLock(
          endpoint,
          entry.walArchive,
          target,
          checked,
          services.archive.pgBinDir,
          entry.target.kind === 'local',
        );
        return withWarning(
          { ...preferred, phasesMs: { reachable, lockSearch: Date.now() - began - reachable, reads } },
          drops.warning,
        );
      });
    },

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
            readAheadPlan(services.entry),
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
      const plan = readAheadPlan(services.entry);
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

    async exportLostRows({ cluster, tables }: ReplicaRef & { tables: string[] }): Promise<TableExport[]> {
      return asStep(cluster, 'export', () =>
        withHeartbeats(async (progress) => {
          const services = registry.services(cluster);
          const entry = services.entry;
          const { workflowId, runId } = Context.current().info.workflowExecution ?? {
            workflowId: 'standalone',
            runId: 'x',
          };
          const dir = join(
            entry.exportDir ?? join(tmpdir(), 'pgops-exports'),
            cluster,
            `${workflowId}-${runId}`.replace(/[^A-Za-z0-9_.-]/g, '_'),
          );
          progress.report(`exporting ${tables.join(', ')} to ${dir}`);
          // Read-only: a cancelled run need not export at all.
          if (progress.signal.aborted) throw new CancelledFailure('cancelled before the export began');
          try {
            return await exportTables(await services.endpoint(), tables, dir, {
              binDir: services.archive.pgBinDir,
            });
          } catch (err) {
            if (err instanceof MissingTableError) throw preconditionFailed(cluster, 'export', err.message);
            throw err;
          }
        }),
      );
    },

    async insertMissingRowsIntoPrimary({
      cluster,
      exports,
    }: ReplicaRef & { exports: TableExport[] }): Promise<InsertResult[]> {
      return asStep(cluster, 'insert-into-primary', async () => {
        const primary = await primaryEndpoint(registry.services(cluster));
        if (!primary)
          throw preconditionFailed(
            cluster,
            'insert-into-primary',
            'the catalog gives no replicaOf for this replica, so the primary to insert into is unknown',
          );
        await refuseInsertAcrossHistories(registry, cluster, 'insert-into-primary');
        const results: InsertResult[] = [];
        for (const exported of exports) {
          try {
            results.push(await insertMissingRows(primary, exported));
          } catch (err) {
            if (err instanceof NoPrimaryKeyError) throw preconditionFailed(cluster, 'insert-into-primary', err.message);
            throw err;
          }
        }
        return results;
      });
    },

    /**
     * Promotion: first stop the replica writing into the shared archive (archive_command '' keeps
     * WAL locally instead), then pg_promote(). Idempotent: a promoted server is reported as such.
     */
    async promoteReplica({ cluster }: ReplicaRef): Promise<PromotionResult> {
      return asStep(cluster, 'promote', async () => {
        const promotion = await withSession(await registry.services(cluster).endpoint(), promoteStandby);
        // The old primary's other replicas and the catalog no longer fit: say which (issue 19).
        return { ...promotion, ...replicasLeftBehind(registry, cluster, promotion.timeline) };
      });
    },

    async clearPitrTarget({
      cluster,
      originalDelay,
    }: ReplicaRef & { originalDelay?: SettingWithSource }): Promise<{ recoveryMinApplyDelay: string }> {
      return asStep(cluster, 'clear-target', async () => {
        // Segments a read-ahead staged before its worker died (a later run clears them anyway).
        const services = registry.services(cluster);
        const plan = readAheadPlan(services.entry);
        if (plan) await clearReadAhead(plan.stageDir);
        return clearRecoveryTarget(await services.endpoint(), originalDelay);
      });
    },

    async confirmDelayedReplay(input: ReplicaRef & { timeoutMs: number }): Promise<DelayedReplayConfirmed> {
      return asStep(input.cluster, 'confirm-delay', () =>
        withHeartbeats((progress) => confirmDelayedReplay(registry.services(input.cluster), input, progress)),
      );
    },
  };
}
