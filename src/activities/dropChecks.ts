// The PITR check's part about DROP DATABASE and DROP TABLESPACE (drivers/postgres/replica/dropGuard.ts):
// their drop records are replayed without the delay, so a stop point between a drop record and
// its commit is refused once replay has passed the drop record, and moved before it otherwise.
import { preconditionFailed } from './failures';
import type { ClusterServices } from '../drivers/clusterServices';
import { judgeDropsAtStop, replayedDropsWarning } from '../drivers/postgres/replica/dropGuard';
import { describeRecoveryTarget, type RecoveryTarget } from '../common/recoveryTarget';
import type { PgEndpoint } from '../drivers/postgres/session';
import type { CheckedTarget } from '../contract/operations/pitrSteps';

export async function checkDropsAtTarget(
  services: ClusterServices,
  endpoints: { replica: PgEndpoint; primary?: PgEndpoint },
  checked: CheckedTarget,
  request: { target: RecoveryTarget; inclusive: boolean },
): Promise<{ checked: CheckedTarget; warning?: string }> {
  const cluster = services.name;
  const archiveDir = services.archive.walArchive;
  // An inclusive target applies its own commit: a drop it commits is wanted, not a trap.
  if (!archiveDir || !checked.targetLsn || request.inclusive) return { checked };
  const opts = { binDir: services.archive.pgBinDir };
  const names = { endpoints: [endpoints.replica, ...(endpoints.primary ? [endpoints.primary] : [])] };
  const replayLsn = checked.replayLsnAtCheck ?? '0/0';
  const verdict = await judgeDropsAtStop(archiveDir, checked.targetLsn, replayLsn, names, opts);
  if (!verdict.ok)
    throw preconditionFailed(
      cluster,
      'check-target',
      `cannot stop at ${describeRecoveryTarget(request.target, request.inclusive)}: ${verdict.reason}. The replica is left paused and its settings unchanged.`,
    );
  if (verdict.stopBeforeLsn) {
    return {
      checked: {
        ...checked,
        targetLsn: verdict.stopBeforeLsn,
        effectiveTarget: { lsn: verdict.stopBeforeLsn },
        effectiveInclusive: false,
        beforeLockingTransaction: false,
        requestedTargetLsn: checked.targetLsn,
        note: verdict.note,
      },
    };
  }
  // The target passes every drop's commit; still say so if the replica had replayed a drop early.
  return { checked, ...(await replayedDropsWarning(archiveDir, replayLsn, names, opts)) };
}

/** The check's note with a warning appended. */
export function withWarning(checked: CheckedTarget, warning: string | undefined): CheckedTarget {
  if (!warning) return checked;
  return { ...checked, note: checked.note ? `${checked.note}; ${warning}` : warning };
}
