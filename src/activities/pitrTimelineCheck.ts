// The PITR check's part about timelines (drivers/postgres/replica/replicaTargetTimeline.ts): with several
// branches in the archive, the target is looked for on the replica's own path first; one that
// lies only on another branch is written with its timeline for a promote and refused otherwise,
// since the replica could never return to its delay on its primary's history.
import { preconditionFailed } from './failures';
import type { ClusterServices } from '../drivers/clusterServices';
import { replicaTargetTimeline } from '../drivers/postgres/replica/replicaTargetTimeline';
import { TargetNotOnHistory } from '../drivers/postgres/restore/targetTimeline';
import type { ServerPosition } from '../drivers/postgres/replica/replicaHistory';
import { recoveryTargetTimeline } from '../drivers/postgres/replica/replicaTimeline';
import { describeRecoveryTarget, type RecoveryTarget } from '../common/recoveryTarget';
import type { PgEndpoint } from '../drivers/postgres/session';
import type { CheckedTarget } from '../contract/operations/pitrSteps';

export type PitrThen = 'pause' | 'export' | 'promote';

export async function checkTimelineAtTarget(
  services: ClusterServices,
  replica: PgEndpoint,
  checked: CheckedTarget,
  request: { target: RecoveryTarget; inclusive: boolean; then?: PitrThen; position: Promise<ServerPosition> },
): Promise<CheckedTarget> {
  const cluster = services.name;
  const archiveDir = services.archive.walArchive;
  if (!archiveDir) return checked;
  const what = describeRecoveryTarget(request.target, request.inclusive);
  const refuse = (why: string) =>
    preconditionFailed(
      cluster,
      'check-target',
      `cannot stop at ${what}: ${why}. The replica is left paused and its settings unchanged.`,
    );
  const [position, following] = await Promise.all([request.position, recoveryTargetTimeline(replica)]);
  let found;
  try {
    found = await replicaTargetTimeline(
      archiveDir,
      { timeline: position.timeline, lsn: position.lsn, following },
      request.target,
      { inclusive: request.inclusive, binDir: services.archive.pgBinDir, name: `replica "${cluster}"` },
    );
  } catch (err) {
    if (err instanceof TargetNotOnHistory) throw refuse(err.message);
    throw err;
  }
  if (!found) return checked;
  const located = {
    ...checked,
    ...(found.stopLsn ? { targetLsn: found.stopLsn } : {}),
    ...(found.stopTime ? { targetTime: found.stopTime } : {}),
    note: [checked.note, found.note].filter(Boolean).join('; ') || undefined,
  };
  if (found.write === undefined) return located;
  if (request.then !== 'promote')
    throw refuse(
      `it lies on timeline ${found.write}${found.stopLsn ? ` at ${found.stopLsn}` : ''}, a branch of the history that this replica's primary left (a restore or a promote forked timeline ${found.followed} off it), while the replica follows timeline ${found.followed}. Replaying there would take the replica off its primary's history for good: it could not return to its delay. To take the rows from that branch, run with then "promote" (the replica becomes a primary on it), or recover from a backup along timeline ${found.write} elsewhere`,
    );
  return { ...located, timeline: found.write };
}
