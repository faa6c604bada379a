// Scratch instances: a writable clone of a backup's snapshots with a PostgreSQL of its own, which
// never touches the cluster's volumes, its WAL archive or its replication (docs/operations/scratch.md).
// Pure types: kept with the clone by the drivers, shown by the scratch workflows and `pgops scratch`.
import type { StorageKind } from './backups';
export type { BackupVerification, DrillChecks } from './verification';

/** Who made a scratch instance: a retry of the same run reuses it; a janitor removes it once the run is over. */
export interface ScratchOwner {
  workflowId: string;
  runId: string;
  /** The operation's label (verifyBackup, recoverRows, openScratch). */
  operation: string;
}

/** How to reach a scratch instance's PostgreSQL. */
export interface ScratchConnection {
  /** Where the worker reaches it (Kubernetes: the worker's own port-forward, on the worker's host). */
  host: string;
  port: number;
  user: string;
  database: string;
  /** Kubernetes: the scratch pod, and the command that forwards a local port to it. */
  pod?: string;
  namespace?: string;
  portForward?: string;
  /**
   * A psql command line for a DBA (no password: the clone keeps the cluster's roles and their passwords);
   * on Kubernetes, to run after `portForward`.
   */
  psql: string;
}

/** One volume of the clone: the production volume it copies and where the copy is. */
export interface ScratchVolume {
  role: 'data' | 'wal' | 'tablespace' | 'claim';
  /**
   * The production directory this is a copy of, as PostgreSQL's paths name it: the volume's directory
   * (local), the image's mount point (RBD on the worker), the claim's mount path in the pod (Kubernetes).
   * Links and tablespace_map paths below it are moved to the same place below `path`.
   */
  source: string;
  /** The copy itself: a directory on the worker, pool/image, or a PersistentVolumeClaim. */
  clone: string;
  /** Where the copy's root is: a directory on the worker, or the mount path in the scratch pod. */
  path: string;
  /** Tablespace OID, for role 'tablespace'. */
  oid?: string;
}

/** The record of a scratch instance, kept with it (scratch.json, image metadata, annotations). */
export interface ScratchRecord {
  /** pgops-scratch-<8 hex of the owner's run id>: a DNS label, also a directory, image and pod name part. */
  id: string;
  cluster: string;
  /** The backup (or safety snapshot) it is a clone of. */
  backup: string;
  storage: StorageKind;
  owner: ScratchOwner;
  createdAt: string;
  /** Removed by the janitor after this time, whoever owns it. */
  expiresAt: string;
  volumes: ScratchVolume[];
  /** The scratch PostgreSQL's data directory (local: on the worker; Kubernetes: in the pod). */
  pgdata: string;
  /** Local: the port the scratch PostgreSQL listens on; Kubernetes: the pod's port. */
  port: number;
  /** Kubernetes: the scratch pod. */
  pod?: string;
  /** How each volume was cloned, one line each. */
  methods: string[];
}

/** Where a scratch instance's recovery stops: as the restore's recovery settings (src/contract/recovery.ts). */
export interface ScratchRecovery {
  /** 'immediate': at consistency; 'end': through the whole archive; else a recovery target. */
  target: 'immediate' | 'end' | { xid: string } | { time: string } | { lsn: string } | { name: string };
  inclusive: boolean;
  /** promote: a writable throwaway copy (the drill's checks); pause: read-only at the target (rows, preview). */
  action: 'promote' | 'pause';
  /** recovery_target_timeline. */
  timeline: 'current' | 'latest' | number;
}
