// A restore drill's verdict on a backup (verifyBackupWorkflow): kept in the backup's record.
// Pure types, importing nothing: the backup record (backups.ts) and the scratch types both use them.

/** What a restore drill checked and found. */
export interface DrillChecks {
  /** pg_amcheck over every database (heap and B-tree indexes). */
  amcheck?: { ok: boolean; databases: number; problems: string[] };
  /** pg_checksums --check on the stopped copy; skipped when data checksums are off. */
  checksums?: { ok: boolean; enabled: boolean; badBlocks: number; problems: string[] };
  /** The WAL archive holds every segment from the backup's start to the newest. */
  archive?: {
    ok: boolean;
    missingSegment?: string;
    note: string;
    /** false: the archive could not be read where the scratch server reads it (the note says why). */
    checked?: boolean;
  };
}

/** The outcome of a drill, kept in the backup's record (BackupRecord.verification). */
export interface BackupVerification {
  at: string;
  ok: boolean;
  /** The findings, one line each (empty when ok). */
  findings: string[];
  /** Milliseconds from the start of the clone to a usable instance: what a restore of this backup takes. */
  timeToUsableMs: number;
  /** Recovery alone (start to consistency, or to the end of the archive). */
  recoveryMs: number;
  replayedTo: 'consistency' | 'end of archive';
  /** Where the copy's replay ended (pg_last_wal_replay_lsn at promotion). */
  replayLsn?: string | null;
  checks: DrillChecks;
  /** The drill's workflow. */
  workflowId: string;
}
