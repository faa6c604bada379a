// The PITR's target check: whether the replica can stop there (its replay, the primary, the
// archive), on which timeline, before which drop, and before a transaction's exclusive lock.
import type { ClusterRegistry } from './clusterRegistry';
import { asStep, preconditionFailed } from './failures';
import { primaryEndpoint, type ReplicaRef } from './replicaRef';
import { checkDropsAtTarget, withWarning } from './dropChecks';
import { checkTimelineAtTarget, type PitrThen } from './pitrTimelineCheck';
import { refuseDivergedReplica } from './replicaHistoryChecks';
import { replayStatus } from '../drivers/postgres/replica/replayControl';
import { checkTargetReachable } from '../drivers/postgres/replica/targetReachability';
import { findTimeTargetStop } from '../drivers/postgres/archive/walInspect';
import { serverPosition } from '../drivers/postgres/replica/replicaHistory';
import { findExclusiveLockStart } from '../drivers/postgres/lockingTransaction';
import type { PgEndpoint } from '../drivers/postgres/session';
import { compareLsn } from '../common/lsn';
import { describeRecoveryTarget, type RecoveryTarget } from '../common/recoveryTarget';
import type { ArchiveSearchStats, CheckedTarget } from '../contract/operations/pitrSteps';

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

/** The check that refuses a target before anything is changed. */
export function createPitrCheckSteps(registry: ClusterRegistry) {
  return {
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
          primary: await primaryEndpoint(registry, services),
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
        const primary = await primaryEndpoint(registry, services);
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
  };
}
