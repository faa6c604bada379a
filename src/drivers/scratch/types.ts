// A cluster's scratch space: where scratch instances of its backups are cloned and run, on the
// worker (local targets: pg_ctl on a free port) or in a pod beside the cluster (Kubernetes). The
// scratch workflows drive it through the activities; it never touches the cluster's own volumes,
// its WAL archive (read-only restore_command) or its replication (no primary_conninfo).
import type { WaitOptions } from '../cluster/types';
import type { BackupRecord } from '../../contract/backups';
import type { ScratchOwner, ScratchRecord } from '../../contract/scratch';
import type { PgEndpoint } from '../postgres/session';
import type { ArchiveFiles } from '../postgres/archive/archiveFiles';
import type { RecoveryFiles } from '../postgres/restore/recoveryConfig';

export interface ScratchRequest {
  id: string;
  backup: BackupRecord;
  owner: ScratchOwner;
  expiresAt: string;
  /** backup_label, recovery.signal and the recovery settings (recoveryFiles()), before the scratch settings. */
  recovery: RecoveryFiles;
}

/** The stopped scratch data directory, for the checks that need the server down (pg_checksums). */
export interface ScratchCommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ScratchPortForward {
  namespace: string;
  pod: string;
  /** The local port the command forwards (to the server's port in the pod). */
  localPort: number;
  command: string;
}

export interface ScratchSpace {
  /** Local: the worker's scratch directory; Kubernetes: namespace/… */
  readonly where: string;
  /** Every scratch instance of this cluster kept here, oldest first. */
  list(): Promise<ScratchRecord[]>;
  /** The record of one, if it exists. */
  find(id: string): Promise<ScratchRecord | undefined>;
  /**
   * Clones the backup and prepares the copy to start as a scratch instance (recovery files, scratch
   * settings, pg_wal and tablespaces pointed at the copies). The record is written before the clone,
   * so a crash in between leaves something the janitor finds. Idempotent for the same id: a retry
   * reuses a finished clone and redoes a half-made one.
   */
  create(request: ScratchRequest, opts?: WaitOptions): Promise<ScratchRecord>;
  /** Starts the scratch PostgreSQL (no wait for recovery). Idempotent. */
  start(record: ScratchRecord, opts?: WaitOptions): Promise<void>;
  /** Whether its server runs. */
  running(record: ScratchRecord): Promise<boolean>;
  /** Stops it (fast; immediate if that fails). Idempotent. */
  stop(record: ScratchRecord, opts?: WaitOptions): Promise<void>;
  /** How this worker reaches it, with the cluster's credentials (`base`). */
  endpoint(record: ScratchRecord, base: PgEndpoint): Promise<PgEndpoint>;
  /** Runs one of PostgreSQL's programs (pg_controldata, pg_checksums) with `-D` the copy's data directory, then `args`. */
  runProgram(record: ScratchRecord, program: string, args: string[], opts?: WaitOptions): Promise<ScratchCommandResult>;
  /**
   * The WAL archive's files as the scratch server's restore_command sees them (the worker's
   * directory, or the archive volume mounted in the scratch pod); a string says why they cannot be read.
   */
  archiveFiles(record: ScratchRecord, walArchive: string, opts?: WaitOptions): Promise<ArchiveFiles | string>;
  /**
   * How a DBA away from the worker reaches it, where the endpoint is the worker's own (Kubernetes: the
   * worker's port-forward); undefined where the endpoint is the way (local: the worker's host and port).
   */
  portForward(record: ScratchRecord): ScratchPortForward | undefined;
  /** Its server log, newest last. */
  serverLog(record: ScratchRecord): Promise<string[]>;
  /** Stops it, removes the clone and the record. Idempotent: an id that is gone is fine. */
  remove(id: string, opts?: WaitOptions): Promise<void>;
}
