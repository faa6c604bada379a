// How a database is stopped and started. Kubernetes (StatefulSet scale) and local (pg_ctl) sit
// side by side behind this interface; workflows never know which one runs underneath.
// Drivers are plain TypeScript: no Temporal imports. Long waits report through `onProgress`
// (activities turn that into heartbeats) and stop early when `signal` is aborted.

export interface ClusterState {
  /** True when at least one PostgreSQL server process / pod exists. */
  running: boolean;
  /** Desired replica count as the platform records it (StatefulSet spec.replicas; 1 or 0 locally). */
  replicas: number;
  /** Replicas that are ready (pod Ready condition; locally: postmaster answering pg_ctl status). */
  readyReplicas: number;
  /** Names of the pods (or the postmaster PID as a string locally) that exist now. */
  members: string[];
}

export interface QuiescentCheck {
  /** No server process / pod is left. */
  noServerRunning: boolean;
  /** The volumes that keep the data (PVC names, or the data directory), all still present. */
  volumesKept: string[];
}

export interface WaitOptions {
  onProgress?: (detail: string) => void;
  signal?: AbortSignal;
}

export interface RestartOptions extends WaitOptions {
  /**
   * Stop without a shutdown restartpoint (pg_ctl -m immediate). A standby's clean shutdown
   * flushes its buffers and moves its minimum recovery point up to what it has replayed; a
   * recovery target that relies on re-replaying records after the restart must not lose that.
   */
  immediate?: boolean;
  /**
   * Return once the server runs again, before it accepts connections (the caller waits for its
   * first query itself). A Kubernetes pod is then taken when its container runs, not when its
   * readiness probe next passes (up to a probe period later).
   */
  untilStarted?: boolean;
}

export interface ClusterDriver {
  readonly kind: 'local' | 'kubernetes';
  describe(): Promise<ClusterState>;
  /**
   * Stops the database and waits until nothing runs. Idempotent: stopping a stopped cluster is a
   * no-op that reports the replica count recorded at the first stop.
   * Returns the replica count to restore later (recorded before the first scale-down).
   */
  stop(opts?: WaitOptions): Promise<{ replicasBefore: number; alreadyStopped: boolean }>;
  /** The replica count recorded by the last stop (Kubernetes: an annotation), if any. */
  recordedReplicas(): Promise<number | undefined>;
  /** Confirms the quiescent point: nothing running, volumes still there. Throws if not. */
  verifyQuiescent(): Promise<QuiescentCheck>;
  /** Starts `replicas` replicas and waits until they are ready. Idempotent. */
  start(replicas: number, opts?: WaitOptions): Promise<{ readyReplicas: number; alreadyRunning: boolean }>;
  /**
   * Restarts the PostgreSQL server of the first member (a delayed replica has one), so settings
   * that need a restart (recovery_target_*) take effect. Waits until the new server runs.
   */
  restartServer(opts?: RestartOptions): Promise<void>;
}

/** A problem retrying cannot fix (bad configuration, a missing object). Activities make it non-retryable. */
export class PermanentDriverError extends Error {
  override readonly name = 'PermanentDriverError';
}
