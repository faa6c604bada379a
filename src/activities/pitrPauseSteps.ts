// The PITR's first steps: pause the replica's replay at once, say where it stands, and find the
// incident in the WAL archive.
import { Context } from '@temporalio/activity';
import type { ClusterRegistry } from './clusterRegistry';
import { asStep, preconditionFailed } from './failures';
import { withHeartbeats } from './heartbeat';
import { primaryEndpoint, type ReplicaRef } from './replicaRef';
import { lockRuns } from './lockSteps';
import { NotAReplicaError, pauseReplay, replayStatus } from '../drivers/postgres/replica/replayControl';
import { relationMap } from '../drivers/postgres/archive/walInspect';
import { locateIncidents, relationMapHasTable } from '../drivers/postgres/archive/incidentLocator';
import { annotateDroppedIncidents } from '../drivers/postgres/replica/dropGuard';
import { lockStateQuery, lockWorkflowId } from '../contract/definitions';
import type { Incident } from '../contract/operations/pitrSteps';

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

/** Pause, inspect, locate the incident: nothing here changes more than the pause. */
export function createPitrPauseSteps(registry: ClusterRegistry) {
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
          const primary = await primaryEndpoint(registry, services);
          return annotateDroppedIncidents(incidents, (await replayStatus(endpoint)).replayLsn, {
            endpoints: [endpoint, ...(primary ? [primary] : [])],
          });
        }),
      );
    },
  };
}
