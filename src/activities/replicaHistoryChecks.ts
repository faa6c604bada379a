// The checks that keep a replica and its primary on one history (issue 19): a PITR on a replica
// that has replayed past the fork of its primary's restore is refused, rows are never inserted
// into a primary whose history does not hold the replica's position, and a promotion says which
// replicas of the old primary are left following nobody.
import { log } from '@temporalio/activity';
import type { ClusterRegistry } from './clusterRegistry';
import type { FollowerState } from '../contract/operations/plannedStart';
import { preconditionFailed } from './failures';
import {
  archiveHistory,
  onPrimaryHistory,
  primaryHistory,
  rebuildAdvice,
  serverPosition,
  type HistoryVerdict,
  type PrimaryHistory,
  type ServerPosition,
} from '../drivers/postgres/replica/replicaHistory';
import { withSession } from '../drivers/postgres/session';
import { isStreaming } from '../drivers/postgres/replica/walReceiver';
import type { ReplicaLeftBehind } from '../contract/operations/pitrSteps';

export interface HistoryCheck {
  primary: string;
  primaryTimeline: number;
  replicaTimeline: number;
  replicaLsn: string;
  verdict: HistoryVerdict;
  /** Where the primary's history was read from: the primary itself, or the archive when it is down. */
  primaryHistoryFrom: PrimaryHistory['historyFrom'] | 'archive (primary unreachable)';
}

/** The primary's history: from the primary, else (down, unreachable) from the replica's WAL archive. */
async function historyOfPrimary(
  registry: ClusterRegistry,
  primary: string,
  archiveDir: string | undefined,
): Promise<Omit<PrimaryHistory, 'lsn'> & { from: HistoryCheck['primaryHistoryFrom'] }> {
  try {
    const found = await primaryHistory(await registry.services(primary).endpoint(), archiveDir);
    return { ...found, from: found.historyFrom };
  } catch (err) {
    if (!archiveDir) throw err;
    return { ...archiveHistory(archiveDir), from: 'archive (primary unreachable)' };
  }
}

/** Compares `cluster`'s position (a replica, or a server promoted from one) with its primary's history. */
export async function compareWithPrimary(
  registry: ClusterRegistry,
  cluster: string,
  position?: ServerPosition,
): Promise<HistoryCheck | undefined> {
  const services = registry.services(cluster);
  const entry = services.entry;
  const primary = entry.replicaOf;
  if (!primary) return undefined;
  const replica = position ?? (await serverPosition(await services.endpoint()));
  const history = await historyOfPrimary(registry, primary, entry.walArchive);
  return {
    primary,
    primaryTimeline: history.timeline,
    replicaTimeline: replica.timeline,
    replicaLsn: replica.lsn,
    verdict: onPrimaryHistory(history, replica),
    primaryHistoryFrom: history.from,
  };
}

/**
 * The restore that moved the primary off the replica's timeline, in words: its pre-restore safety
 * snapshot (label "before restoring <backup>") on that timeline, else the history file's reason.
 */
export async function nameTheFork(
  registry: ClusterRegistry,
  primary: string,
  check: HistoryCheck,
): Promise<string | undefined> {
  const verdict = check.verdict;
  if (verdict.onHistory) return undefined;
  let records: { id: string; kind: string; timeline: number; label: string; stoppedAt: string; cluster: string }[] = [];
  try {
    const services = registry.services(primary);
    if (services.entry.storage) records = await services.storage().listRecords();
  } catch {
    records = []; // the storage cannot be listed: the history file's reason must do
  }
  const safety = records.find(
    (r) => r.cluster === primary && r.kind === 'pre-restore' && r.timeline === check.replicaTimeline,
  );
  const reason = verdict.forkReason ? ` (its history file says: "${verdict.forkReason}")` : '';
  if (safety) {
    const restored = /^before restoring (\S+)/.exec(safety.label)?.[1];
    return `the in-place restore of ${primary}${restored ? ` to backup ${restored}` : ''} (rollbackRestoreWorkflow; safety snapshot ${safety.id}, taken ${safety.stoppedAt}, holds the state before it), which started timeline ${verdict.forkedTo ?? check.primaryTimeline}${reason}`;
  }
  if (verdict.forkedTo !== undefined)
    return `the restore or promotion that started ${primary}'s timeline ${verdict.forkedTo}${reason}`;
  return undefined;
}

/** A PITR on a replica that left its primary's history is refused before anything is changed. */
export async function refuseDivergedReplica(
  registry: ClusterRegistry,
  cluster: string,
  step: string,
  /** Where the replica stands, when the caller reads it anyway (read here otherwise). */
  position?: Promise<ServerPosition>,
): Promise<void> {
  let check: HistoryCheck | undefined;
  try {
    check = await compareWithPrimary(registry, cluster, position && (await position));
  } catch (err) {
    // A comparison that cannot be made (no history file anywhere, a server that does not answer)
    // does not hold an urgent PITR back: the target check that follows asks the replica anyway.
    log.warn('cannot compare the replica with its primary', { cluster, error: (err as Error).message });
    return;
  }
  if (!check || check.verdict.onHistory) return;
  const cause = await nameTheFork(registry, check.primary, check);
  throw preconditionFailed(
    cluster,
    step,
    `this replica's history has diverged from its primary ${check.primary}'s: ${check.verdict.why}${cause ? `. The fork is ${cause}` : ''}. A PITR here would replay a history the primary no longer has, and rows taken from it would not belong in ${check.primary}. PostgreSQL cannot take a standby back to before what it has replayed, so this replica will never follow ${check.primary} again (its log may say "new timeline ${check.primaryTimeline} forked off current database system timeline ${check.replicaTimeline} before current recovery point"). Nothing was changed; the replica is left paused. ${rebuildAdvice(cluster, check.primary)}. To recover rows from before the restore, restore the safety snapshot onto a spare server instead.`,
  );
}

/** Rows are inserted into the primary only from a position its history holds. */
export async function refuseInsertAcrossHistories(
  registry: ClusterRegistry,
  cluster: string,
  step: string,
): Promise<void> {
  const check = await compareWithPrimary(registry, cluster);
  if (!check || check.verdict.onHistory) return;
  const cause = await nameTheFork(registry, check.primary, check);
  throw preconditionFailed(
    cluster,
    step,
    `the rows were read on timeline ${check.replicaTimeline} at ${check.replicaLsn}, which is not on the history of ${check.primary} (timeline ${check.primaryTimeline}): ${check.verdict.why}${cause ? `. The fork is ${cause}` : ''}. Inserting them would mix two histories; nothing was inserted. Compare the exported files with ${check.primary} by hand, or, if ${cluster} is now the primary (promoted), fix the catalog (its replicaOf still names ${check.primary}).`,
  );
}

/**
 * After `promoted` (a replica of `formerPrimary`) is promoted, the other replicas of the former
 * primary still follow it: none of them follows the promoted server, and the catalog still names
 * the former primary as `promoted`'s primary.
 */
export function replicasLeftBehind(
  registry: ClusterRegistry,
  promoted: string,
  timeline: number,
): { formerPrimary?: string; catalogReplicaOf?: string; replicasFollowingNobody: ReplicaLeftBehind[]; note?: string } {
  const formerPrimary = registry.entry(promoted).replicaOf;
  if (!formerPrimary) return { replicasFollowingNobody: [] };
  const others = registry.replicasOf(formerPrimary).filter((name) => name !== promoted);
  return {
    formerPrimary,
    catalogReplicaOf: formerPrimary,
    replicasFollowingNobody: others.map((name) => ({
      cluster: name,
      replicaOf: formerPrimary,
      note: `still follows ${formerPrimary}, whose history ${promoted} left when it was promoted to timeline ${timeline}: it follows nobody on the promoted history. Rebuild it from ${promoted} (pg_basebackup, keeping its configuration) and set its replicaOf to ${promoted} if ${promoted} is the primary from now on`,
    })),
    note: `the catalog still names ${formerPrimary} as the primary of ${promoted}: a later PITR with insertMissing from ${promoted} is refused (its timeline ${timeline} is not on ${formerPrimary}'s history); remove or change its replicaOf if ${promoted} stays the primary`,
  };
}

/**
 * The catalog's replicas of a primary that was just started: each should still be on its
 * history, and stream or restore again (a standby retries its source on its own while the
 * primary is down; nothing has to be done to it). Best effort: a replica that does not answer is
 * reported, never fails the start.
 */
export async function followersOf(registry: ClusterRegistry, primary: string): Promise<FollowerState[]> {
  const names = registry.replicasOf(primary);
  if (names.length === 0) return [];
  const history = await primaryHistory(await registry.services(primary).endpoint()).catch(() => undefined);
  return Promise.all(
    names.map(async (cluster): Promise<FollowerState> => {
      try {
        const endpoint = await registry.services(cluster).endpoint();
        const position = await serverPosition(endpoint);
        if (!position.inRecovery)
          return { cluster, reachable: true, timeline: position.timeline, note: 'not a replica any more (promoted)' };
        const streaming = await withSession(endpoint, isStreaming);
        const verdict = history ? onPrimaryHistory(history, position) : undefined;
        return {
          cluster,
          reachable: true,
          timeline: position.timeline,
          replayLsn: position.lsn,
          source: streaming ? 'streaming' : 'archive',
          onPrimaryHistory: verdict?.onHistory,
          note:
            verdict && !verdict.onHistory
              ? `diverged: ${verdict.why}`
              : `replays ${primary}'s WAL again from ${streaming ? 'its stream' : 'the archive'}`,
        };
      } catch (err) {
        return { cluster, reachable: false, note: `does not answer: ${(err as Error).message}` };
      }
    }),
  );
}
