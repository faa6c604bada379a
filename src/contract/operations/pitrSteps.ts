// The results of a PITR's single steps that delayedReplicaPitrWorkflow's and locateIncidentWorkflow's
// results carry: the target check, the replay to it, the rows exported and inserted, the promotion,
// the delay confirmed, and the incidents found. Pure types: the activities and drivers that produce
// them are annotated with them.
import type { RecoveryTarget } from '../../common/recoveryTarget';

/** The archive search's work: reads for bisection marks, and segments read for the record. */
export interface ArchiveSearchStats {
  /** Reads of the archive for a bisection mark (each stops at the first one). */
  probes: number;
  /** Segments read for the record itself, up to the one that holds it. */
  segmentsRead: number;
}

/**
 * checkPitrTarget: what the PITR check decided about a target, and what its parts (the drop check,
 * the timeline check, the lock search) refine in turn.
 */
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

/** What the WAL read-ahead did during a replay. */
export interface ReadAheadStats {
  /** Segments copied into the staging directory. */
  staged: number;
  /** Staged segments that restore_command took. */
  consumed: number;
  /** Staged segments replay had passed already (it fetched them itself first), removed. */
  discarded: number;
  /** Segments the archive did not hold whole when their turn came (left to restore_command). */
  skipped: number;
  /** Where the segments were copied: by the worker, or by a loop inside the replica's pod (Kubernetes). */
  where?: 'worker' | 'pod';
  /** In a pod: why its last loop ended (done, stopped, no-archive, not-owner, failed...) and what it said. */
  ended?: string;
}

/** waitForReplayTarget: replay paused at the target. */
export interface ReplayTargetReached {
  replayLsn: string;
  replayTimestamp: string | null;
  pauseState: string;
  bytesReplayed: number;
  ms: number;
  averageRateBytesPerSecond: number;
  /** What the WAL read-ahead did during this replay (replayReadAhead.ts), when it ran. */
  readAhead?: ReadAheadStats;
}

/** exportLostRows: one table exported from the paused replica. */
export interface TableExport {
  table: string;
  file: string;
  schemaFile: string;
  rows: number;
  columns: string[];
}

/** insertMissingRowsIntoPrimary: the rows of one table the primary lacked, inserted. */
export interface InsertResult {
  table: string;
  inserted: number;
  createdTable: boolean;
}

/** A replica of the former primary that follows nobody on the promoted history. */
export interface ReplicaLeftBehind {
  cluster: string;
  /** What the catalog says it follows. */
  replicaOf: string;
  note: string;
}

/** promoteReplica: the replica promoted (or found promoted already). */
export interface PromotionResult {
  promoted: boolean;
  alreadyPromoted: boolean;
  timeline: number;
  /** The primary the promoted replica followed (its catalog replicaOf, unchanged by the promotion). */
  formerPrimary?: string;
  catalogReplicaOf?: string;
  /** The former primary's other replicas in the catalog: none of them follows the promoted server. */
  replicasFollowingNobody?: ReplicaLeftBehind[];
  note?: string;
}

/** confirmDelayedReplay: the replica replays again, with its delay in force. */
export interface DelayedReplayConfirmed {
  pauseState: string;
  delay: string;
  replayLsn: string | null;
  lagSeconds: number | null;
  replayAdvanced: boolean;
  /**
   * What its startup process was seen waiting for when replay did not advance: `wal` (it has
   * replayed everything there is: a quiet primary) or `delay` (a commit held for the delay).
   */
  waitingFor?: 'wal' | 'delay';
}

/** One relation a transaction deleted from, truncated or dropped. */
export interface IncidentRelation {
  databaseOid: number;
  relfilenode: number;
  /** schema.table, when a relation map (relationMap() of the delayed replica) knows the file. */
  name?: string;
  /** Heap DELETE records: one per row deleted. */
  deletes: number;
  /** Its file was replaced by a new, empty one (TRUNCATE) or truncated to 0 blocks. */
  truncated?: true;
  /** Its file was dropped with the relation (DROP TABLE). */
  dropped?: true;
}

export type DroppedKind = 'database' | 'tablespace';

/** A database or tablespace the transaction dropped (DROP DATABASE, DROP TABLESPACE). */
export interface DroppedObject {
  kind: DroppedKind;
  oid: number;
  /** From a server that still has its catalog row (the delayed replica, while the commit waits). */
  name?: string;
  /** The drop record itself (Database/DROP or Tablespace/DROP), replayed without the delay. */
  dropLsn: string;
  /** A database: the tablespaces it had directories in. */
  tablespaceOids?: number[];
}

/** locateIncident: one transaction that deleted, truncated or dropped in the window. */
export interface Incident {
  xid: string;
  commitLsn: string;
  commitTime: string;
  relations: IncidentRelation[];
  rowsDeleted: number;
  dropped?: DroppedObject[];
  /** Set by the caller that knows the replica: a drop it has replayed already. */
  warning?: string;
}
