// What needs WAL from a cluster's archive (archiveSteps.ts): its backup records (each needs WAL
// from its start along every timeline it can reach), each catalog replica's restart point, and
// the backups of other clusters restoring from the same archive. A replica that cannot be asked
// keeps everything from the oldest kept backup on.
import type { Catalog, ClusterEntry } from '../config/schema';
import type { ClusterRegistry } from './clusterRegistry';
import type { ClusterServices } from '../drivers/clusterServices';
import type { ActivityProgress } from './heartbeat';
import { parseDuration } from '../common/durations';
import { compareLsn } from '../common/lsn';
import type { BackupRecord } from '../contract/backups';
import type { PruneRules, WalAnchor } from '../drivers/postgres/archive/archiveRetention';
import { askRestartPoint, readRestartPoint, type RestartPoint } from '../drivers/postgres/replica/restartPoint';

export interface WalNeeds {
  anchors: WalAnchor[];
  rules: PruneRules;
  notes: string[];
}

const describeRecord = (r: BackupRecord) => `${r.kind === 'pre-restore' ? 'safety snapshot' : 'backup'} ${r.id}`;

const recordAnchor = (r: BackupRecord): WalAnchor => ({
  what: describeRecord(r),
  timeline: r.timeline,
  startLsn: r.startLsn,
  stopLsn: r.stopLsn,
});

async function restartPointOf(registry: ClusterRegistry, name: string, entry: ClusterEntry): Promise<RestartPoint> {
  try {
    return await askRestartPoint(await registry.services(name).endpoint());
  } catch (err) {
    // A stopped replica still says where it would begin: its control file.
    if (entry.target.kind !== 'local') throw err;
    return readRestartPoint(entry.target.binDir, entry.target.pgdata, entry.target.osUser);
  }
}

/** Everything that needs WAL from this archive, and the rules of the catalog. */
export async function whatNeedsWal(
  registry: ClusterRegistry,
  catalog: () => Catalog,
  services: ClusterServices,
  archiveDir: string,
  progress?: ActivityProgress,
): Promise<WalNeeds> {
  const { name: cluster, entry } = services;
  const records = (await services.storage().listRecords()).filter((r) => r.cluster === cluster);
  // With no backup kept there is nothing to restore: nothing is removed, whatever replicas say.
  if (records.length === 0)
    return { anchors: [], rules: {}, notes: [`${cluster} has no backup listed: nothing is removed`] };
  const anchors = records.map(recordAnchor);
  const unanswered = await addOtherAnchors(registry, catalog, cluster, archiveDir, anchors, progress);
  const notes: string[] = [];
  const rules = pruneRules(entry, records, unanswered, notes);
  return { anchors, rules, notes };
}

/**
 * Adds to `anchors` the restart points of the replicas of this cluster, and of any other cluster
 * restoring from the same archive, and their own backups; returns those that could not be asked.
 */
async function addOtherAnchors(
  registry: ClusterRegistry,
  catalog: () => Catalog,
  cluster: string,
  archiveDir: string,
  anchors: WalAnchor[],
  progress?: ActivityProgress,
): Promise<string[]> {
  const unanswered: string[] = [];
  // Replicas of this cluster, and any other cluster restoring from the same archive.
  for (const [name, other] of Object.entries(catalog().clusters)) {
    if (name === cluster || (other.replicaOf !== cluster && other.walArchive !== archiveDir)) continue;
    progress?.report(`asking ${name} where its replay would restart`);
    try {
      const point = await restartPointOf(registry, name, other);
      const replayed = point.replayLsn ? `, replayed to ${point.replayLsn}` : '';
      anchors.push({
        what: `replica ${name} (restart point ${point.redoLsn} on timeline ${point.timeline}${replayed})`,
        timeline: point.timeline,
        startLsn: point.redoLsn,
        stopLsn: point.redoLsn,
      });
    } catch (err) {
      unanswered.push(`${name} (${(err instanceof Error ? err.message : String(err)).slice(0, 200)})`);
    }
    if (other.storage) {
      // Its own backups restore from this archive too.
      try {
        const theirs = (await registry.services(name).storage().listRecords()).filter((r) => r.cluster === name);
        anchors.push(...theirs.map((r) => ({ ...recordAnchor(r), what: `${describeRecord(r)} of ${name}` })));
      } catch (err) {
        unanswered.push(`${name}'s backups (${(err instanceof Error ? err.message : String(err)).slice(0, 200)})`);
      }
    }
  }
  return unanswered;
}

/** The catalog's keepExtra, and everything from the oldest kept backup on when some could not be asked. */
function pruneRules(entry: ClusterEntry, records: BackupRecord[], unanswered: string[], notes: string[]): PruneRules {
  const rules: PruneRules = {};
  const keepExtra = entry.walArchiveRetention?.keepExtra;
  if (keepExtra !== undefined) {
    const ms = parseDuration('keepExtra', keepExtra, { min: 0, max: 3650 * 86_400_000 });
    if (typeof ms === 'number') rules.keepArchivedSince = new Date(Date.now() - ms);
  }
  const ownStarts = records.map((r) => r.startLsn).sort(compareLsn);
  if (unanswered.length > 0 && ownStarts.length > 0) {
    rules.keepFrom = {
      lsn: ownStarts[0]!,
      why: `the oldest kept backup, as ${unanswered.join(', ')} could not be asked`,
    };
    notes.push(
      `could not ask ${unanswered.join('; ')}: everything from the oldest kept backup's start (${ownStarts[0]}) on is kept, on every timeline`,
    );
  }
  return rules;
}
