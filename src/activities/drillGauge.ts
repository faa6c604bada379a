// pgops_backup_last_verified_timestamp_seconds{cluster}: when the newest restore drill of a cluster
// passed. One series per cluster on the worker's runtime meter (no activity labels), set by each
// passing drill and, when a worker starts, from the backups' records (seedDrillGauges): a restarted
// worker exposes the age at once instead of nothing until the next drill.
import { Runtime } from '@temporalio/worker';
import type { ClusterRegistry } from './clusterRegistry';
import type { BackupRecord } from '../contract/backups';
import { logger } from '../logger';

const NAME = 'pgops_backup_last_verified_timestamp_seconds';
const SEED_TIMEOUT_MS = 60_000;

export function setLastVerified(cluster: string, at: string): void {
  Runtime.instance()
    .metricMeter.createGauge(
      NAME,
      'float',
      's',
      'When the newest backup drill of the cluster passed (age: time() minus this)',
    )
    .set(Date.parse(at) / 1000, { cluster });
}

/** When the newest passing drill among these backups passed, if any did. */
export function lastPassedDrill(records: readonly BackupRecord[]): string | undefined {
  return records
    .map((r) => r.verification)
    .filter((v) => v?.ok)
    .map((v) => v!.at)
    .sort()
    .at(-1);
}

/**
 * Sets the gauge of every catalog cluster from its backups' records; a cluster whose records cannot
 * be read within a minute is skipped with a warning (its gauge appears with its next drill).
 */
export async function seedDrillGauges(registry: ClusterRegistry): Promise<void> {
  const clusters = Object.keys(registry.catalogNow().clusters);
  await Promise.all(
    clusters.map(async (cluster) => {
      try {
        if (!registry.entry(cluster).storage) return;
        const records = await withTimeout(registry.services(cluster).storage().listRecords(), SEED_TIMEOUT_MS);
        const at = lastPassedDrill(records);
        if (at) setLastVerified(cluster, at);
      } catch (err) {
        logger.warn({ cluster, err: String(err) }, `${NAME}: the backups' records could not be read at start-up`);
      }
    }),
  );
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
