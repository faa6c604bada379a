// delayedReplicaPitrWorkflow and locateIncidentWorkflow: their inputs and results.
import type { RecoveryTarget } from '../../common/recoveryTarget';
import type { LockWait } from './lockWait';
import type {
  CheckedTarget,
  DelayedReplayConfirmed,
  Incident,
  InsertResult,
  PromotionResult,
  ReplayTargetReached,
  TableExport,
} from './pitrSteps';

export interface IncidentQuery {
  from: string;
  to: string;
  table?: string;
}

export interface DelayedReplicaPitrInput {
  cluster: string;
  /** Exactly one of xid, time (with a zone), lsn, name, or incident (a window to search the archive). */
  target: { xid?: string | number; time?: string; lsn?: string; name?: string; incident?: IncidentQuery };
  /** Default false: stop just before the bad transaction. */
  inclusive?: boolean;
  then: 'pause' | 'export' | 'promote';
  export?: { tables: string[]; insertMissing?: boolean };
  /** Default true for pause/export; promote cannot return to delay. */
  returnToDelay?: boolean;
  /** With then=pause and returnToDelay: how long to stay at the target waiting for "resume" (default 24h). */
  maxPause?: string | number;
  /** Fail when replay does not move for this long (default 10m). */
  replayStallTimeout?: string | number;
  waitForLock?: LockWait;
}

export interface DelayedReplicaPitrResult {
  cluster: string;
  target: RecoveryTarget;
  inclusive: boolean;
  pause: { latencyMs: number; state: string; replayLsn: string };
  checked: CheckedTarget;
  reached: ReplayTargetReached;
  exported?: TableExport[];
  inserted?: InsertResult[];
  promoted?: PromotionResult;
  returnedToDelay?: DelayedReplayConfirmed;
  finalState: 'paused at target' | 'delayed replica again' | 'promoted';
}

export interface LocateIncidentInput extends IncidentQuery {
  cluster: string;
}

/** The transactions that deleted, truncated or dropped in the window. */
export type LocateIncidentResult = Incident[];
