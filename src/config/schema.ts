// The worker's cluster catalog: where each named cluster is and how to reach it. Workflow input
// only ever names a cluster; everything here stays on the worker. Secrets are referenced (an
// environment variable or a Kubernetes Secret), never written inline.
import { z } from 'zod';
import { clusterNameProblem, isKubernetesLabel, isKubernetesName } from '../common/names';
import { DEFAULT_PG_BIN_DIR } from './binDir';
import { parseDuration } from '../common/durations';
import type { StorageKind } from '../contract/backups';

const k8sName = (what: string) =>
  z.string().refine(isKubernetesName, {
    message: `${what} must be a Kubernetes object name (lower-case letters, digits, '-' and '.')`,
  });
const k8sLabel = (what: string) =>
  z.string().refine(isKubernetesLabel, {
    message: `${what} must be a DNS-1123 label (lower-case letters, digits and '-', at most 63)`,
  });
const port = z.number().int().min(1).max(65535);
// Paths reach pg_ctl, which hands some of them to /bin/sh: keep them to plain characters.
const safePath = z
  .string()
  .min(1)
  .regex(/^[A-Za-z0-9_./@+-]+$/, {
    message: 'path may contain only letters, digits and _ . / @ + - (no spaces or shell characters)',
  });
const envVarName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: 'must be an environment variable name' });

export const secretRefSchema = z.strictObject({
  name: k8sName('secret name'),
  key: z.string().regex(/^[-._a-zA-Z0-9]+$/, { message: 'secret key may contain letters, digits, - . _' }),
  namespace: k8sLabel('secret namespace').optional(),
});

export const postgresAccessSchema = z
  .strictObject({
    host: z.string().min(1).optional(),
    port: port.optional(),
    user: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: 'user must be a plain role name' })
      .default('postgres'),
    database: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_-]*$/, { message: 'database must be a plain database name' })
      .default('postgres'),
    passwordEnv: envVarName.optional(),
    passwordSecret: secretRefSchema.optional(),
    connectTimeoutMs: z.number().int().min(100).max(120_000).default(5000),
    /** Reach PostgreSQL through the API server's pods/portforward instead of host/port (kubernetes targets). */
    portForward: z
      .strictObject({
        /** Default: the StatefulSet's first pod, `<statefulSet>-0`. */
        pod: k8sName('portForward.pod').optional(),
        port: port.default(5432),
      })
      .optional(),
  })
  .refine((p) => !(p.passwordEnv && p.passwordSecret), { message: 'give passwordEnv or passwordSecret, not both' })
  .refine((p) => !(p.portForward && (p.host !== undefined || p.port !== undefined)), {
    message: "give host/port or portForward, not both (with portForward, the pod's port is portForward.port)",
    path: ['portForward'],
  });

export const localTargetSchema = z.strictObject({
  kind: z.literal('local'),
  pgdata: safePath,
  port,
  binDir: safePath.default(DEFAULT_PG_BIN_DIR),
  /** The operating-system user that owns PGDATA; pg_ctl refuses to run as root. */
  osUser: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]*$/)
    .default('postgres'),
  logFile: safePath.optional(),
  startTimeoutSeconds: z.number().int().min(5).max(86_400).default(3600),
  stopTimeoutSeconds: z.number().int().min(5).max(86_400).default(600),
});

export const kubernetesTargetSchema = z.strictObject({
  kind: z.literal('kubernetes'),
  namespace: k8sLabel('namespace'),
  statefulSet: k8sName('statefulSet'),
  replicas: z.number().int().min(1).max(100),
  kubeconfig: z.string().min(1).optional(),
  context: z.string().min(1).optional(),
  readyTimeoutSeconds: z.number().int().min(5).max(86_400).default(3600),
  stopTimeoutSeconds: z.number().int().min(5).max(86_400).default(900),
  /** The PostgreSQL container of the pod (default: the one named "postgres", else the first). */
  container: k8sLabel('container').optional(),
  /** PGDATA inside the container (default: the container's PGDATA variable, else /var/lib/postgresql/data). */
  pgdata: safePath.optional(),
  /**
   * The WAL archive directory as the PostgreSQL container mounts it, where that differs from the
   * entry's walArchive (the worker's view): the replay read-ahead copies segments from it in the pod.
   */
  walArchive: safePath.optional(),
});

const rbdPoolOrImage = (what: string) =>
  z.string().regex(/^[A-Za-z0-9_.-]{1,100}$/, { message: `${what} may contain letters, digits, _ . - (at most 100)` });

/** One RBD image holding a volume of the database, mounted on the worker (runner: local). */
export const rbdLocalVolumeSchema = z.strictObject({
  /** Where the image's file system is mounted on the worker; PGDATA (or pg_wal, a tablespace) lies below. */
  mountpoint: safePath,
  pool: rbdPoolOrImage('pool'),
  image: rbdPoolOrImage('image'),
  /** Where rbd-fuse exposes the image as a file (default: <mountpoint>.rbd-fuse). */
  fuseDir: safePath.optional(),
});

const preRestoreRetentionDays = z.number().int().min(1).max(3650).default(7);

export const storageSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('local'),
    /** Where snapshots and their manifests go (default: <pgdata>.pgops-snapshots beside PGDATA). */
    snapshotDir: safePath.optional(),
    /** auto: a btrfs snapshot where the volume is a btrfs subvolume, else a copy. */
    method: z.enum(['auto', 'btrfs', 'copy']).default('auto'),
    preRestoreRetentionDays,
  }),
  z
    .strictObject({
      kind: z.literal('rbd'),
      /** toolbox: rbd runs in the Rook toolbox pod (Kubernetes); local: rbd runs on the worker host. */
      runner: z.enum(['toolbox', 'local']).default('toolbox'),
      toolbox: z
        .strictObject({
          namespace: k8sLabel('toolbox namespace'),
          labelSelector: z.string().regex(/^[A-Za-z0-9_./-]+=[A-Za-z0-9_.-]+$/),
        })
        .optional(),
      volumes: z.array(rbdLocalVolumeSchema).min(1).max(16).optional(),
      /** ceph.conf for the rbd command (runner: local); default /etc/ceph/ceph.conf. */
      cephConf: safePath.optional(),
      cephUser: z
        .string()
        .regex(/^[A-Za-z0-9_.-]{1,64}$/)
        .optional(),
      /**
       * How a restore puts the images back (runner local): auto (clone-swap where the images can be
       * cloned), clone-swap, or rollback (rbd snap rollback). The toolbox runner always rolls back.
       */
      restoreMethod: z.enum(['auto', 'clone-swap', 'rollback']).optional(),
      /** After a clone-swap: flatten the clones in the background (default), or never. */
      flatten: z.enum(['background', 'never']).optional(),
      /**
       * Objects a background flatten copies at once (rbd --rbd-concurrent-management-ops; Ceph's default
       * is 10): fewer leave more of the cluster to the restored database while it runs.
       */
      flattenConcurrency: z.number().int().min(1).max(64).optional(),
      preRestoreRetentionDays,
    })
    .refine((s) => s.runner !== 'toolbox' || s.toolbox !== undefined, {
      message: 'runner "toolbox" needs toolbox: { namespace, labelSelector }',
      path: ['toolbox'],
    })
    .refine((s) => s.runner !== 'local' || s.volumes !== undefined, {
      message: 'runner "local" needs volumes: [{ mountpoint, pool, image }] (the RBD images mounted on the worker)',
      path: ['volumes'],
    }),
  z.strictObject({
    kind: z.literal('csi'),
    volumeSnapshotClass: k8sName('volumeSnapshotClass'),
    preRestoreRetentionDays,
  }),
]);

/**
 * What a backup's retention does to the WAL archive (README, "WAL archive retention"). A sibling
 * of walArchive, which stays a plain path: every catalog written before keeps working unchanged.
 */
export const walArchiveRetentionSchema = z.strictObject({
  /** After a backup with `keep`, remove the segments no kept backup or replica needs (default true). */
  prune: z.boolean().default(true),
  /** Segments archived within this long stay as well, such as "7d" (default: only what is needed). */
  keepExtra: z
    .string()
    .superRefine((value, ctx) => {
      const ms = parseDuration('keepExtra', value, { min: 0, max: 3650 * 86_400_000 });
      if (typeof ms === 'string') ctx.addIssue({ code: 'custom', message: ms });
    })
    .optional(),
});

/** Scratch instances of the cluster's backups (restore drills, rows back from a backup, previews). */
export const scratchSchema = z.strictObject({
  /** Local targets: where clones and their servers go on the worker (default: beside the snapshots). */
  dir: safePath.optional(),
  /** Local targets: the scratch server's listen_addresses (default localhost). */
  listenAddresses: z
    .string()
    .regex(/^[A-Za-z0-9_.:*,-]{1,200}$/)
    .default('localhost'),
  /** shared_buffers of a scratch server (default 128MB): production's may not fit beside it. */
  sharedBuffers: z
    .string()
    .regex(/^[0-9]{1,9}(kB|MB|GB)$/)
    .default('128MB'),
  /** Kubernetes: the scratch pod's image (default: the StatefulSet's PostgreSQL container image). */
  image: z.string().min(1).max(500).optional(),
});

export const clusterEntrySchema = z
  .strictObject({
    target: z.discriminatedUnion('kind', [localTargetSchema, kubernetesTargetSchema]),
    postgres: postgresAccessSchema.optional(),
    storage: storageSchema.optional(),
    /** For a delayed replica: the catalog name of its primary. */
    replicaOf: z.string().optional(),
    /** The WAL archive directory: where a primary's archive_command writes, or a delayed replica restores from. */
    walArchive: safePath.optional(),
    /** Retention of the WAL archive (walArchive) after a backup's prune. */
    walArchiveRetention: walArchiveRetentionSchema.optional(),
    /**
     * For a delayed replica with a walArchive: WAL segments copied ahead of a targeted replay into
     * pg_wal/pgops_readahead (default 4; 0 turns the read-ahead off), by the worker on a local
     * target, by a loop inside the replica's container on a Kubernetes one.
     */
    replayReadAhead: z.number().int().min(0).max(64).optional(),
    /** Where exported rows are written on the worker (default: <tmpdir>/pgops-exports). */
    exportDir: safePath.optional(),
    /** Scratch instances of its backups. */
    scratch: scratchSchema.optional(),
  })
  .refine(
    (entry) => !(entry.storage?.kind === 'rbd' && entry.storage.runner === 'local' && entry.target.kind !== 'local'),
    {
      message:
        'storage runner "local" needs a local target (the worker mounts the images); use runner "toolbox" on Kubernetes',
      path: ['storage', 'runner'],
    },
  )
  .refine(
    (entry) =>
      !(entry.storage?.kind === 'rbd' && entry.storage.runner === 'toolbox' && entry.target.kind !== 'kubernetes'),
    {
      message:
        'storage runner "toolbox" runs rbd in the Rook toolbox pod of a kubernetes target; for RBD images mounted on the worker use runner "local" with volumes',
      path: ['storage', 'runner'],
    },
  )
  .refine((entry) => !(entry.storage?.kind === 'csi' && entry.target.kind !== 'kubernetes'), {
    message: 'storage kind "csi" snapshots PersistentVolumeClaims: it needs a kubernetes target',
    path: ['storage', 'kind'],
  })
  .refine((entry) => !(entry.storage?.kind === 'local' && entry.target.kind !== 'local'), {
    message:
      'storage kind "local" snapshots a data directory on the worker: it needs a local target (use rbd or csi on Kubernetes)',
    path: ['storage', 'kind'],
  })
  .refine((entry) => !(entry.walArchiveRetention && entry.walArchive === undefined), {
    message: 'walArchiveRetention needs walArchive (the directory archive_command writes to)',
    path: ['walArchiveRetention'],
  })
  .refine((entry) => !(entry.postgres?.portForward && entry.target.kind !== 'kubernetes'), {
    message:
      'postgres.portForward needs a kubernetes target (it forwards to a pod); a local target is reached at 127.0.0.1 and its port',
    path: ['postgres', 'portForward'],
  });

/** Settings for the whole worker fleet of one task queue (every worker reads the same catalog). */
const fleetSchema = z.strictObject({
  /** At most this many backups run at once across the fleet; the others wait. Restores never wait. Unset: no cap. */
  maxConcurrentBackups: z.number().int().min(1).max(1000).optional(),
});

export const catalogSchema = z.strictObject({
  fleet: fleetSchema.optional(),
  clusters: z.record(z.string(), clusterEntrySchema).superRefine((clusters, ctx) => {
    for (const [name, entry] of Object.entries(clusters)) {
      const problem = clusterNameProblem(name);
      if (problem) ctx.addIssue({ code: 'custom', path: [name], message: problem });
      if (entry.replicaOf !== undefined && !(entry.replicaOf in clusters)) {
        ctx.addIssue({
          code: 'custom',
          path: [name, 'replicaOf'],
          message: `names cluster "${entry.replicaOf}", which is not in the catalog`,
        });
      }
    }
  }),
});

export type Catalog = z.infer<typeof catalogSchema>;
export type ClusterEntry = z.infer<typeof clusterEntrySchema>;
export type LocalTarget = z.infer<typeof localTargetSchema>;
export type KubernetesTarget = z.infer<typeof kubernetesTargetSchema>;
export type PostgresAccess = z.infer<typeof postgresAccessSchema>;
export type SecretRef = z.infer<typeof secretRefSchema>;
export type WalArchiveRetention = z.infer<typeof walArchiveRetentionSchema>;
export type StorageConfig = z.infer<typeof storageSchema>;
export type ScratchConfig = z.infer<typeof scratchSchema>;
/** Every kind of the contract's STORAGE_KINDS has its schema here, and no other: otherwise this does not compile. */
export const STORAGE_SCHEMA_MATCHES_CONTRACT: [StorageConfig['kind']] extends [StorageKind]
  ? [StorageKind] extends [StorageConfig['kind']]
    ? true
    : never
  : never = true;
export type LocalStorageConfig = Extract<StorageConfig, { kind: 'local' }>;
export type RbdStorageConfig = Extract<StorageConfig, { kind: 'rbd' }>;
