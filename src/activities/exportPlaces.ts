// What the PITR's export and the scratch restores share: where a run's exports go on the worker,
// and putting the exported rows a primary lacks back into it.
import { tmpdir } from 'node:os';
import { isAbsolute, join, normalize } from 'node:path';
import { Context } from '@temporalio/activity';
import { preconditionFailed } from './failures';
import type { ClusterServices } from '../drivers/clusterServices';
import { insertMissingRows, NoPrimaryKeyError } from '../drivers/postgres/rowExport';
import type { PgEndpoint } from '../drivers/postgres/session';
import type { InsertResult, TableExport } from '../contract/operations/pitrSteps';

/**
 * Where a run's exports go: the catalog's exportDir (or the temp directory), the cluster, then the run
 * (workflow id and run id) or `subdirectory`, a relative directory the workflow input names.
 */
export function exportDirFor(services: ClusterServices, subdirectory?: string): string {
  const { workflowId, runId } = Context.current().info.workflowExecution ?? { workflowId: 'standalone', runId: 'x' };
  const root = join(services.entry.exportDir ?? join(tmpdir(), 'pgops-exports'), services.name);
  const run = `${workflowId}-${runId}`.replace(/[^A-Za-z0-9_.-]/g, '_');
  if (subdirectory === undefined) return join(root, run);
  const inside = normalize(subdirectory);
  // Workflow input never chooses a place on the worker outside the catalog's export directory.
  if (isAbsolute(inside) || inside.startsWith('..'))
    throw preconditionFailed(
      services.name,
      'export',
      `exportDir "${subdirectory}" must be a relative directory below the catalog's exportDir (${root}). Nothing was changed.`,
    );
  return join(root, inside);
}

/** Inserts each export's rows the primary lacks, one transaction per table; a table without a key is a refusal. */
export async function insertExports(
  cluster: string,
  step: string,
  primary: PgEndpoint,
  exports: TableExport[],
): Promise<InsertResult[]> {
  const results: InsertResult[] = [];
  for (const exported of exports) {
    try {
      results.push(await insertMissingRows(primary, exported));
    } catch (err) {
      if (err instanceof NoPrimaryKeyError) throw preconditionFailed(cluster, step, err.message);
      throw err;
    }
  }
  return results;
}
