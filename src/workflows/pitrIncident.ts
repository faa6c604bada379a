// A PITR target given as an incident window: the one transaction in it that deleted, truncated or
// dropped becomes the target; none, or several, leave the replica paused and say which to name.
import { ApplicationFailure } from '@temporalio/workflow';
import type { RecoveryTarget } from '../common/recoveryTarget';
import type { IncidentQuery } from '../contract/operations/delayedReplicaPitr';
import { longStep } from './activityProxies';
import type { ProgressReporter } from './progress';

export async function resolveIncident(
  cluster: string,
  query: IncidentQuery,
  progress: ProgressReporter,
  /** What stays as it is when no single transaction is found (the PITR: its replica, paused). */
  leftAs = 'The replica is left paused',
): Promise<RecoveryTarget> {
  progress.step(
    'locate',
    `searching the WAL archive for deletes, truncates and drops between ${query.from} and ${query.to}${query.table ? ` on ${query.table}` : ''}`,
  );
  const incidents = await longStep.locateIncident({ cluster, ...query });
  if (incidents.length === 1) {
    const only = incidents[0]!;
    progress.note({ incidentXid: only.xid, incidentCommitTime: only.commitTime });
    return { xid: only.xid };
  }
  const listing = incidents
    .slice(0, 10)
    .map(
      (i) =>
        `xid ${i.xid} committed ${i.commitTime} at ${i.commitLsn}: ${[
          ...i.relations.map(
            (r) =>
              `${r.name ?? r.relfilenode}${r.dropped ? ' dropped' : r.truncated ? ' truncated' : ` ${r.deletes} row(s) deleted`}`,
          ),
          ...(i.dropped ?? []).map(
            (d) => `${d.kind} ${d.name ?? `with OID ${d.oid}`} dropped (drop record at ${d.dropLsn})`,
          ),
        ].join(', ')}`,
    )
    .join('; ');
  throw ApplicationFailure.nonRetryable(
    incidents.length === 0
      ? `no transaction deleted, truncated or dropped${query.table ? ` in ${query.table}` : ''} between ${query.from} and ${query.to}. ${leftAs}; widen the window or give the target directly.`
      : `${incidents.length} transactions match: ${listing}. ${leftAs}; run again with target { "xid": … } naming the bad one.`,
    'PreconditionFailed',
  );
}
