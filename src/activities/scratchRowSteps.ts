// Rows and databases out of a scratch instance (COPY exports, pg_dump -Fc), and the two steps that
// write to the running primary: the missing rows, and a database under a new name. Only those two
// run under the cluster's lock.
import { mkdirSync } from 'node:fs';
import { Context } from '@temporalio/activity';
import type { ClusterRegistry } from './clusterRegistry';
import { asStep, preconditionFailed } from './failures';
import { withHeartbeats } from './heartbeat';
import { scratchRecord, type ScratchRef } from './scratchSteps';
import type { ClusterServices } from '../drivers/clusterServices';
import {
  DatabaseExistsError,
  dumpDatabase,
  listDatabases,
  restoreDatabaseAs,
} from '../drivers/postgres/scratch/databaseDump';
import { exportTables, MissingTableError } from '../drivers/postgres/rowExport';
import { exportDirFor, insertExports } from './exportPlaces';
import { systemIdentifierOf } from '../drivers/postgres/restore/restoredServer';
import { withSession } from '../drivers/postgres/session';
import type { DatabaseDump } from '../contract/operations/scratchRestores';
import type { InsertResult, TableExport } from '../contract/operations/pitrSteps';

/** The running primary of the cluster, refused when it is not one or is another database system. */
async function productionPrimary(services: ClusterServices, step: string, backup: string) {
  const endpoint = await services.endpoint();
  const record = (await services.storage().listRecords()).find((r) => r.id === backup);
  await withSession(endpoint, async (client) => {
    const inRecovery = (await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]?.r;
    if (inRecovery)
      throw preconditionFailed(services.name, step, 'the cluster is in recovery (a standby): nothing can be written');
    const system = await systemIdentifierOf(client);
    if (record && system !== record.systemIdentifier)
      throw preconditionFailed(
        services.name,
        step,
        `the cluster is database system ${system}, but backup ${backup} is of system ${record.systemIdentifier} (re-initialised since?): nothing was written`,
      );
  });
  return endpoint;
}
export function createScratchRowSteps(registry: ClusterRegistry) {
  return {
    /** The tables as they are on the scratch instance, in CSV with their definitions. */
    async exportFromScratch(input: ScratchRef & { tables: string[]; exportDir?: string }): Promise<TableExport[]> {
      const { cluster, scratchId } = input;
      return asStep(cluster, 'export', () =>
        withHeartbeats(async (progress) => {
          const services = registry.services(cluster);
          const record = await scratchRecord(services, scratchId, 'export');
          const dir = exportDirFor(services, input.exportDir);
          progress.report(`exporting ${input.tables.join(', ')} to ${dir}`);
          const server = await services.scratch().endpoint(record, await services.endpoint());
          try {
            return await exportTables(server, input.tables, dir, { binDir: services.archive.pgBinDir });
          } catch (err) {
            if (err instanceof MissingTableError)
              throw preconditionFailed(cluster, 'export', err.message.replace('on the replica', 'in the backup'));
            throw err;
          }
        }),
      );
    },

    /** pg_dump -Fc of whole databases from the scratch instance. */
    async dumpFromScratch(input: ScratchRef & { databases: string[]; exportDir?: string }): Promise<DatabaseDump[]> {
      const { cluster, scratchId } = input;
      return asStep(cluster, 'dump', () =>
        withHeartbeats(async (progress) => {
          const services = registry.services(cluster);
          const record = await scratchRecord(services, scratchId, 'dump');
          const server = await services.scratch().endpoint(record, await services.endpoint());
          const present = await listDatabases(server);
          const missing = input.databases.filter((d) => !present.includes(d));
          if (missing.length > 0)
            throw preconditionFailed(
              cluster,
              'dump',
              `database ${missing.map((d) => `"${d}"`).join(', ')} did not exist at the target; there were: ${present.join(', ')}`,
            );
          const dir = exportDirFor(services, input.exportDir);
          mkdirSync(dir, { recursive: true, mode: 0o700 });
          const dumps: DatabaseDump[] = [];
          for (const database of input.databases) {
            progress.report(`pg_dump -Fc ${database} → ${dir}`);
            dumps.push(
              await dumpDatabase({ ...server, database }, database, dir, {
                binDir: services.archive.pgBinDir,
                signal: progress.signal,
              }),
            );
          }
          return dumps;
        }),
      );
    },

    /** Inserts into the running primary the exported rows it lacks, one transaction per table. */
    async insertRecoveredRows(input: {
      cluster: string;
      backup: string;
      exports: TableExport[];
    }): Promise<InsertResult[]> {
      const { cluster } = input;
      return asStep(cluster, 'insert-into-primary', async () => {
        const services = registry.services(cluster);
        const primary = await productionPrimary(services, 'insert-into-primary', input.backup);
        return insertExports(cluster, 'insert-into-primary', primary, input.exports);
      });
    },

    /** Restores a dumped database into the running primary under a name that does not exist there. */
    async restoreDatabaseAs(input: {
      cluster: string;
      backup: string;
      dump: DatabaseDump;
      name: string;
    }): Promise<{ database: string; from: string; restored: boolean }> {
      const { cluster } = input;
      return asStep(cluster, 'restore-as', () =>
        withHeartbeats(async (progress) => {
          const services = registry.services(cluster);
          const primary = await productionPrimary(services, 'restore-as', input.backup);
          const { workflowId } = Context.current().info.workflowExecution ?? { workflowId: 'standalone' };
          progress.report(`pg_restore ${input.dump.file} → database ${input.name}`);
          try {
            const restored = await restoreDatabaseAs(primary, input.dump, input.name, {
              binDir: services.archive.pgBinDir,
              signal: progress.signal,
              marker: `${input.dump.database} from backup ${input.backup} (workflow ${workflowId})`,
            });
            return { database: input.name, from: input.dump.database, restored };
          } catch (err) {
            if (err instanceof DatabaseExistsError) throw preconditionFailed(cluster, 'restore-as', err.message);
            throw err;
          }
        }),
      );
    },
  };
}
