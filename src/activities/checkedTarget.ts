// What the PITR check decided about a target (checkPitrTarget), and what its parts (the drop
// check, the timeline check, the lock search) refine in turn.
import type { RecoveryTarget } from '../common/recoveryTarget';
import type { ArchiveSearchStats } from '../drivers/postgres/archive/walInspect';

export interface CheckedTarget {
  targetLsn?: string;
  targetTime?: string;
  note?: string;
  /** The target to write: the one asked for, or the start of a transaction holding an exclusive lock. */
  effectiveTarget: RecoveryTarget;
  effectiveInclusive: boolean;
  /** True when the target was moved to the start of a transaction holding an exclusive lock. */
  beforeLockingTransaction: boolean;
  /** Where the target asked for would stop (the commit record), kept for a fallback. */
  requestedTargetLsn?: string;
  /** Where the check's time went: reachability (replica, primary, archive) and the lock search. */
  phasesMs?: { reachable: number; lockSearch: number; reads?: Record<string, number> };
  /** The archive search's work: reads for bisection marks, and segments read for the record. */
  archiveSearch?: ArchiveSearchStats;
  /** Where the replica's replay stood when the target was judged. */
  replayLsnAtCheck?: string | null;
  /** A branch the replica does not follow, written as recovery_target_timeline (only for a promote). */
  timeline?: number;
}
