// A scratch instance's life: cloned and prepared, started, watched until its recovery stops,
// reached, and removed. None of these touches the cluster's own volumes, so none takes the lock.
import { Context } from '@temporalio/activity';
import type { ClusterRegistry } from './clusterRegistry';
import { asStep, preconditionFailed } from './failures';
import { withHeartbeats } from './heartbeat';
import { watchRecoveryOf, lastRecoveryLine } from './recoveryWatch';
import { findBackup } from './backupLookup';
import { scratchRecoveryFiles } from '../drivers/postgres/scratch/scratchSettings';
import type { ClusterServices } from '../drivers/clusterServices';
import type { ScratchConnection, ScratchOwner, ScratchRecord, ScratchRecovery } from '../contract/scratch';
import type { RecoveryWatched } from '../contract/operations/restoreSteps';

export interface ScratchRef {
  cluster: string;
  scratchId: string;
}

/** The scratch instance's record, or a refusal naming it (removed meanwhile by a janitor, say). */
export async function scratchRecord(
  services: ClusterServices,
  scratchId: string,
  step: string,
): Promise<ScratchRecord> {
  const record = await services.scratch().find(scratchId);
  if (!record)
    throw preconditionFailed(
      services.name,
      step,
      `scratch instance ${scratchId} is gone (removed by pgops scratch gc?)`,
    );
  return record;
}

export function createScratchSteps(registry: ClusterRegistry) {
  return {
    /** Clones the backup and prepares the copy: its record first, so a crash leaves something to remove. */
    async createScratch(input: {
      cluster: string;
      scratchId: string;
      backup: string;
      recovery: ScratchRecovery;
      owner: ScratchOwner;
      expiresAt: string;
    }): Promise<ScratchRecord> {
      const { cluster } = input;
      return asStep(cluster, 'clone', () =>
        withHeartbeats(async (progress) => {
          const services = registry.services(cluster);
          const backup = await findBackup(services, input.backup);
          const recovery = scratchRecoveryFiles(input.recovery, backup, services.archive.walArchive);
          progress.report(`cloning backup ${backup.id} into scratch instance ${input.scratchId}`);
          return services
            .scratch()
            .create(
              { id: input.scratchId, backup, owner: input.owner, expiresAt: input.expiresAt, recovery },
              { onProgress: (d) => progress.report(d), signal: progress.signal },
            );
        }),
      );
    },

    /** Starts the scratch server; returns once it accepts connections (consistent, if it recovers). */
    async startScratch({ cluster, scratchId }: ScratchRef): Promise<{ startedMs: number }> {
      return asStep(cluster, 'start-scratch', () =>
        withHeartbeats(async (progress) => {
          const services = registry.services(cluster);
          const record = await scratchRecord(services, scratchId, 'start-scratch');
          const started = Date.now();
          await services.scratch().start(record, { onProgress: (d) => progress.report(d), signal: progress.signal });
          return { startedMs: Date.now() - started };
        }),
      );
    },

    /** Watches the scratch server's recovery until it is promoted or paused at its target. */
    async watchScratchRecovery(
      input: ScratchRef & { targetLsn?: string },
    ): Promise<RecoveryWatched & { note?: string }> {
      const { cluster, scratchId } = input;
      return asStep(cluster, 'scratch-recovery', () =>
        withHeartbeats(async (progress) => {
          const services = registry.services(cluster);
          const space = services.scratch();
          const record = await scratchRecord(services, scratchId, 'scratch-recovery');
          const watched = await watchRecoveryOf(
            {
              cluster,
              step: 'scratch-recovery',
              logName: `the server log of scratch instance ${scratchId}`,
              endpoint: await space.endpoint(record, await services.endpoint()),
              running: () => space.running(record),
              serverLog: () => space.serverLog(record),
              targetLsn: input.targetLsn,
            },
            progress,
          );
          return { ...watched, note: lastRecoveryLine(await space.serverLog(record)) };
        }),
      );
    },

    /** How a DBA reaches the scratch server (no password: the clone keeps the cluster's roles). */
    async scratchConnection({ cluster, scratchId }: ScratchRef): Promise<ScratchConnection> {
      return asStep(cluster, 'connection', async () => {
        const services = registry.services(cluster);
        const record = await scratchRecord(services, scratchId, 'connection');
        const space = services.scratch();
        const endpoint = await space.endpoint(record, await services.endpoint());
        // Kubernetes: host and port are the worker's own port-forward; a DBA elsewhere runs the command first.
        const forward = space.portForward(record);
        const [host, port] = forward ? ['127.0.0.1', forward.localPort] : [endpoint.host, endpoint.port];
        return {
          host: endpoint.host,
          port: endpoint.port,
          user: endpoint.user,
          database: endpoint.database,
          ...(forward && { pod: forward.pod, namespace: forward.namespace, portForward: forward.command }),
          psql: `psql -h ${host} -p ${port} -U ${endpoint.user} -d ${endpoint.database}`,
        };
      });
    },

    /** Stops the scratch server and removes its clone and record. Idempotent: one already gone is fine. */
    async removeScratch({ cluster, scratchId }: ScratchRef): Promise<{ removed: boolean }> {
      return asStep(cluster, 'remove-scratch', () =>
        withHeartbeats(async (progress) => {
          const space = registry.services(cluster).scratch();
          const existed = (await space.find(scratchId)) !== undefined;
          await space.remove(scratchId, { onProgress: (d) => progress.report(d), signal: progress.signal });
          return { removed: existed };
        }),
      );
    },

    /** Every scratch instance of one cluster, or of every cluster of the catalog that can have them. */
    async listScratch(input: { cluster?: string }): Promise<ScratchRecord[]> {
      const names = input.cluster ? [input.cluster] : Object.keys(registry.catalogNow().clusters);
      const all: ScratchRecord[] = [];
      for (const name of names) {
        const space = scratchSpaceOrNone(registry, name, input.cluster !== undefined);
        if (space) all.push(...(await space.list()));
      }
      return all;
    },

    /**
     * Removes the scratch instances whose owner no longer runs or whose time is up: what a crashed
     * or terminated workflow left behind. With `all`, every one. Each removal on its own: one that
     * fails is reported and the others go on.
     */
    async collectScratch(input: { cluster?: string; all?: boolean; exceptOwner?: string }) {
      const names = input.cluster ? [input.cluster] : Object.keys(registry.catalogNow().clusters);
      const removed: { id: string; cluster: string; why: string }[] = [];
      const kept: { id: string; cluster: string; owner: string; expiresAt: string }[] = [];
      const failed: { id: string; cluster: string; error: string }[] = [];
      for (const name of names) {
        const space = scratchSpaceOrNone(registry, name, input.cluster !== undefined);
        if (!space) continue;
        for (const record of await space.list()) {
          if (record.owner.workflowId === input.exceptOwner) continue;
          const why = await whyRemove(record, input.all === true);
          if (!why) {
            kept.push({ id: record.id, cluster: name, owner: record.owner.workflowId, expiresAt: record.expiresAt });
            continue;
          }
          try {
            await space.remove(record.id);
            removed.push({ id: record.id, cluster: name, why });
          } catch (err) {
            failed.push({ id: record.id, cluster: name, error: (err as Error).message });
          }
        }
      }
      return { removed, kept, failed };
    },
  };
}

/** The cluster's scratch space; undefined for a cluster that cannot have one, unless it was named. */
function scratchSpaceOrNone(registry: ClusterRegistry, cluster: string, named: boolean) {
  try {
    return registry.services(cluster).scratch();
  } catch (err) {
    if (named) throw err;
    return undefined;
  }
}

async function whyRemove(record: ScratchRecord, all: boolean): Promise<string | undefined> {
  if (all) return 'asked to remove every scratch instance';
  if (Date.parse(record.expiresAt) < Date.now()) return `its time was up at ${record.expiresAt}`;
  const { workflowId, runId } = record.owner;
  try {
    const described = await Context.current().client.workflow.getHandle(workflowId, runId).describe();
    if (described.status.name !== 'RUNNING')
      return `its workflow ${workflowId} is ${described.status.name.toLowerCase()}`;
    return undefined;
  } catch (err) {
    if ((err as Error).name === 'WorkflowNotFoundError') return `its workflow ${workflowId} is not known to Temporal`;
    throw err;
  }
}
