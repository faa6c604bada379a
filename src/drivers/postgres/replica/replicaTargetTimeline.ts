// The timeline a delayed replica's PITR target lies on (README "History"). After its primary was
// restored in place or a replica promoted, the archive holds several branches, and a replica that
// has not replayed past the fork can reach more than one of them. It follows the timeline its
// recovery_target_timeline resolves to (normally 'latest', the primary's): a target on that path
// needs nothing more. A target only on another branch (the history a restore rolled back) is
// reached only with that timeline written beside the target, and takes the replica off its
// primary's history for good: allowed only for a promote, whose new primary then carries it.
import {
  chooseRecoveryTimeline,
  TargetNotOnHistory,
  type BackupPosition,
  type TimelineChoice,
} from '../restore/targetTimeline';
import { readTimelines, timelinesFrom } from '../archive/timelines';
import type { RestoreTarget } from '../../../contract/recovery';
import type { WalDumpOptions } from '../archive/walInspect';

export interface ReplicaPosition {
  /** The timeline the replica replays, and how far. */
  timeline: number;
  lsn: string;
  /** Its recovery_target_timeline in force: 'latest', 'current' or a number. */
  following: string;
}

export interface ReplicaTargetTimeline {
  /** The timeline the target lies on. */
  timeline: number;
  /** The timeline the replica follows as it is configured. */
  followed: number;
  /** Set when the target is off that path: written as recovery_target_timeline beside the target. */
  write?: number;
  stopLsn?: string;
  stopTime?: string;
  note?: string;
}

/**
 * Where `target` lies seen from the replica's position, or undefined when the archive offers the
 * replica one timeline only (then nothing is to choose, and the check stays as it was). Throws
 * TargetNotOnHistory when the target lies on several branches and not on the replica's own path,
 * or when a segment on the way is missing.
 */
export async function replicaTargetTimeline(
  archiveDir: string,
  replica: ReplicaPosition,
  target: RestoreTarget,
  opts: WalDumpOptions & { inclusive?: boolean; name: string },
): Promise<ReplicaTargetTimeline | undefined> {
  const timelines = readTimelines(archiveDir);
  const position: BackupPosition = {
    id: opts.name,
    timeline: replica.timeline,
    startLsn: replica.lsn,
    stopLsn: replica.lsn,
    stoppedAt: '',
  };
  const reachable = timelinesFrom(timelines, position);
  if (reachable.length <= 1) return undefined;
  const followed = followedTimeline(replica, reachable);
  const search = { binDir: opts.binDir, signal: opts.signal, inclusive: opts.inclusive, origin: opts.name };
  const [anywhere, along] = await Promise.all([
    settle(chooseRecoveryTimeline(archiveDir, position, target, search)),
    settle(chooseRecoveryTimeline(archiveDir, position, target, { ...search, requested: followed })),
  ]);
  if (anywhere instanceof TargetNotOnHistory && anywhere.kind === 'missing') throw anywhere;
  const onPath = (choice: TimelineChoice) =>
    !(along instanceof TargetNotOnHistory) && along.stopLsn !== undefined && along.stopLsn === choice.stopLsn;
  if (!(anywhere instanceof TargetNotOnHistory)) {
    const base = { timeline: anywhere.timeline, followed, stopLsn: anywhere.stopLsn, stopTime: anywhere.stopTime };
    if (onPath(anywhere) || anywhere.timeline === followed) return base;
    return {
      ...base,
      write: anywhere.timeline,
      note: `the target lies on timeline ${anywhere.timeline}${anywhere.stopLsn ? ` at ${anywhere.stopLsn}` : ''}, a branch this replica does not follow (it follows timeline ${followed}): recovery_target_timeline = ${anywhere.timeline} is written beside the target`,
    };
  }
  if (!(along instanceof TargetNotOnHistory)) {
    return {
      timeline: along.timeline,
      followed,
      stopLsn: along.stopLsn,
      stopTime: along.stopTime,
      ...(anywhere.kind === 'several'
        ? {
            note: `the target also lies on another branch of the history (${anywhere.message.split('. ')[0]}); this replica follows timeline ${followed}, and stops there`,
          }
        : {}),
    };
  }
  if (anywhere.kind === 'several') throw anywhere;
  // On no timeline yet (a time no archived commit reaches, say): the reachability check decides.
  return undefined;
}

/** The timeline `recovery_target_timeline` makes the replica follow, among those it can reach. */
function followedTimeline(replica: ReplicaPosition, reachable: number[]): number {
  if (replica.following === 'current') return replica.timeline;
  const number = Number(replica.following);
  if (Number.isInteger(number) && reachable.includes(number)) return number;
  return Math.max(...reachable);
}

function settle<T>(work: Promise<T>): Promise<T | TargetNotOnHistory> {
  return work.catch((err: unknown) => {
    if (err instanceof TargetNotOnHistory) return err;
    throw err;
  });
}
