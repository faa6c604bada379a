// verifyBackupWorkflow, recoverRowsWorkflow, openScratchWorkflow and scratchGcWorkflow: their inputs
// and results. Each works on a scratch clone of a backup (src/contract/scratch.ts), never on the
// cluster's own volumes; only recoverRows's insert and restore-as write to the running primary.
import type { BackupVerification, DrillChecks, ScratchConnection, ScratchRecord } from '../scratch';
import type { RecoveryTarget } from '../recovery';
import type { IncidentQuery } from './delayedReplicaPitr';
import type { InsertResult, TableExport } from './pitrSteps';
import type { LockWait } from './lockWait';

export interface VerifyBackupInput {
  cluster: string;
  /** A backup id, or "latest" (default): the newest regular backup. */
  backup?: string;
  checks?: {
    /** pg_amcheck over every database (default true). */
    amcheck?: boolean;
    /** pg_checksums --check where data checksums are on (default true). */
    checksums?: boolean;
    /** The archive holds every segment from the backup to the newest (default true). */
    archive?: boolean;
    /** Replay the whole archive ("now"), not only to consistency (default false). */
    replayToEnd?: boolean;
  };
  /** Give up (and clean up) after this long: "2h", seconds, … (default 6h). */
  maxDuration?: string | number;
}

export interface VerifyBackupResult {
  cluster: string;
  backup: string;
  verification: BackupVerification;
  checks: DrillChecks;
  scratch: { id: string; methods: string[]; removed: boolean };
}

/** What recoverRows brings back: rows of tables, or whole databases. */
export interface RecoverRowsInput {
  cluster: string;
  /** Recover as of just before this: an xid, a time (with a zone), an LSN, a restore point name, or an incident window. */
  target: { xid?: string | number; time?: string; lsn?: string; name?: string; incident?: IncidentQuery };
  /** Default false: stop just before the target. */
  inclusive?: boolean;
  /** Tables to export as of the target ("orders", "sales.orders"). */
  tables?: string[];
  /** Insert into the running primary the exported rows it lacks (by primary key), one transaction per table. */
  insertMissing?: boolean;
  /** Databases to dump as of the target (pg_dump -Fc). */
  databases?: string[];
  /** With one database: restore its dump into the primary under this new name. */
  restoreAs?: string;
  /** A backup to start from instead of the newest before the target. */
  backup?: string;
  /** Where the exports go on the worker (default: the catalog's exportDir, else the temp directory). */
  exportDir?: string;
  /** Give up (and clean up) after this long (default 6h). */
  maxDuration?: string | number;
  /** For the insert and the restore-as only: queue behind another operation on the cluster. */
  waitForLock?: LockWait;
}

export interface DatabaseDump {
  database: string;
  file: string;
  bytes: number;
}

export interface RecoverRowsResult {
  cluster: string;
  backup: string;
  target: RecoveryTarget;
  inclusive: boolean;
  /** Where the scratch replay stopped, and how (the server's own words). */
  stopped: { replayLsn?: string | null; note?: string; recoveryMs: number };
  exported?: TableExport[];
  inserted?: InsertResult[];
  dumps?: DatabaseDump[];
  restoredAs?: { database: string; from: string };
  scratch: { id: string; methods: string[]; removed: boolean };
}

export interface OpenScratchInput {
  cluster: string;
  /** The moment to look at: a time, an LSN, an xid (stopping just before it) or a backup id as it was taken. */
  asOf: { time?: string; lsn?: string; xid?: string | number; backup?: string };
  /** How long it stays open unless closed sooner: "30m", "2h", seconds; at most 7 days. */
  ttl: string | number;
}

export interface OpenScratchResult {
  cluster: string;
  backup: string;
  opened: ScratchConnection;
  /** Why it ended: closed (the close signal) or its ttl (a cancel ends the run as cancelled, after the removal). */
  ended: 'closed' | 'ttl';
  openMs: number;
  scratch: { id: string; methods: string[]; removed: boolean };
}

export interface ScratchGcInput {
  /** One cluster, or every cluster of the catalog. */
  cluster?: string;
  /** Also remove scratch instances whose owner still runs (default false). */
  all?: boolean;
}

export interface ScratchGcResult {
  removed: { id: string; cluster: string; why: string }[];
  kept: { id: string; cluster: string; owner: string; expiresAt: string }[];
  failed: { id: string; cluster: string; error: string }[];
}

export interface ListScratchResult {
  scratch: ScratchRecord[];
}
