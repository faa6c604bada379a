// The PITR's rows: export the lost rows from the paused replica, insert the missing ones into
// the primary (only from a position on the primary's history).
import { CancelledFailure } from '@temporalio/activity';
import type { ClusterRegistry } from './clusterRegistry';
import { asStep, preconditionFailed } from './failures';
import { withHeartbeats } from './heartbeat';
import { primaryEndpoint, type ReplicaRef } from './replicaRef';
import { refuseInsertAcrossHistories } from './replicaHistoryChecks';
import { exportTables, MissingTableError } from '../drivers/postgres/rowExport';
import { exportDirFor, insertExports } from './exportPlaces';
import type { InsertResult, TableExport } from '../contract/operations/pitrSteps';

/** Export, then insert what the primary lacks. */
export function createPitrRowSteps(registry: ClusterRegistry) {
  return {
    async exportLostRows({ cluster, tables }: ReplicaRef & { tables: string[] }): Promise<TableExport[]> {
      return asStep(cluster, 'export', () =>
        withHeartbeats(async (progress) => {
          const services = registry.services(cluster);
          const dir = exportDirFor(services);
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
        const primary = await primaryEndpoint(registry, registry.services(cluster));
        if (!primary)
          throw preconditionFailed(
            cluster,
            'insert-into-primary',
            'the catalog gives no replicaOf for this replica, so the primary to insert into is unknown',
          );
        await refuseInsertAcrossHistories(registry, cluster, 'insert-into-primary');
        return insertExports(cluster, 'insert-into-primary', primary, exports);
      });
    },
  };
}
