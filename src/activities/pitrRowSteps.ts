// The PITR's rows: export the lost rows from the paused replica, insert the missing ones into
// the primary (only from a position on the primary's history).
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CancelledFailure, Context } from '@temporalio/activity';
import type { ClusterRegistry } from './clusterRegistry';
import { asStep, preconditionFailed } from './failures';
import { withHeartbeats } from './heartbeat';
import { primaryEndpoint, type ReplicaRef } from './replicaRef';
import { refuseInsertAcrossHistories } from './replicaHistoryChecks';
import { exportTables, insertMissingRows, MissingTableError, NoPrimaryKeyError } from '../drivers/postgres/rowExport';
import type { InsertResult, TableExport } from '../contract/operations/pitrSteps';

/** Export, then insert what the primary lacks. */
export function createPitrRowSteps(registry: ClusterRegistry) {
  return {
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
        const primary = await primaryEndpoint(registry, registry.services(cluster));
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
  };
}
