// The pod a scratch instance's PostgreSQL runs in: the StatefulSet's image (or the catalog's
// scratch.image), user and node placement, each clone claim mounted where its claim is mounted in
// the StatefulSet's pod, the WAL archive's volume (if the archive is on one) read-only, and an
// emptyDir for the server's socket and log. Its main process is a shell that sleeps (and reaps
// the postmaster once it exits); PostgreSQL is started and stopped with pg_ctl through pods/exec,
// so the files can be prepared first and the server stopped without losing the pod.
// It never carries the StatefulSet's labels (its controller would adopt it, its Services route to
// it), never its host network or priority, and ends on its own at the scratch instance's expiry
// (activeDeadlineSeconds), whoever forgot it.
import { posix } from 'node:path';
import { CoreV1Api, type KubeConfig, type V1Pod, type V1Volume, type V1VolumeMount } from '@kubernetes/client-node';
import { callKube, isKubeStatus } from './apiErrors';
import { execInPod, type PodExecResult } from './podExec';
import { deletePodAndWait, isReusable, readOwnPod, waitForPodRunning, type OwnPod } from './podLifecycle';
import type { StatefulSetLayout } from './statefulSetLayout';
import { PermanentDriverError, type WaitOptions } from '../cluster/types';
import type { ScratchRecord } from '../../contract/scratch';

export const SCRATCH_LABELS = {
  scratch: 'pgops.temporal.io/scratch',
  cluster: 'pgops.temporal.io/cluster',
  operation: 'pgops.temporal.io/scratch-operation',
  ownerWorkflow: 'pgops.temporal.io/scratch-owner',
};
export const SCRATCH_OWNER_ANNOTATION = 'pgops.temporal.io/scratch-owner';
/** The emptyDir with the server's Unix socket and its log (never on a clone: nothing of it is data). */
export const SCRATCH_RUN_DIR = '/pgops-scratch';
export const SCRATCH_LOG = `${SCRATCH_RUN_DIR}/postgresql.log`;
const CONTAINER = 'postgres';
const RUNNING_TIMEOUT_MS = 10 * 60_000;
/** The shortest life a (re)made pod is given, so that one made just before expiry still gets to run. */
const MIN_LIFETIME_SECONDS = 60;

/**
 * PID 1: sleeps until the pod is deleted. `wait` reaps every child, including the postmaster that
 * pg_ctl detached (it is re-parented here once pg_ctl exits), so a stopped server leaves no zombie.
 */
const SLEEP_SCRIPT = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";

/**
 * Runs "$@" as the owner of the data directory ($1) when the pod runs as root (images that start
 * as root and drop to postgres in their entrypoint): pg_ctl refuses to run as root. A constant
 * script; the command is its arguments.
 */
const AS_OWNER_SCRIPT =
  'd="$1"; shift; if [ "$(id -u)" = 0 ]; then u=$(stat -c %u "$d") && g=$(stat -c %g "$d") || exit 1; ' +
  'if [ "$u" != 0 ]; then if command -v setpriv >/dev/null 2>&1; then ' +
  'exec setpriv --reuid="$u" --regid="$g" --clear-groups -- "$@"; fi; exec gosu "$u:$g" "$@"; fi; fi; exec "$@"';

/** PostgreSQL's programs: the bin directory of the data directory's major version, else pg_ctl's on PATH. */
const BIN_DIR_SCRIPT =
  'v=$(cat "$1/PG_VERSION" 2>/dev/null); if [ -n "$v" ] && [ -x "/usr/lib/postgresql/$v/bin/pg_ctl" ]; then ' +
  'echo "/usr/lib/postgresql/$v/bin"; exit 0; fi; c=$(command -v pg_ctl) && { dirname "$c"; exit 0; }; ' +
  'echo "no pg_ctl in the image (neither /usr/lib/postgresql/$v/bin nor on PATH)" >&2; exit 1';

function within(path: string, dir: string): boolean {
  const rel = posix.relative(dir, path);
  return rel === '' || (!rel.startsWith('..') && !posix.isAbsolute(rel));
}

/** A label value (63 characters of letters, digits, '-', '_', '.', alphanumeric at both ends). */
export function labelValue(text: string): string {
  return text
    .replace(/[^A-Za-z0-9_.-]/g, '_')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
}

type ArchivePlace =
  { on: 'volume'; mount: V1VolumeMount; volume: V1Volume } | { on: 'claim'; claim: string } | { on: 'nothing' };

/**
 * Where the WAL archive (read by restore_command) is in the StatefulSet's pod: on a volume that
 * is not one of its claims (a shared archive), which the scratch pod mounts read-only; on one of
 * its claims, whose clone holds the archive as of the backup; or on no volume at all.
 */
export function archivePlace(layout: StatefulSetLayout, walArchive: string): ArchivePlace {
  const claim = layout.claims.find((c) => within(walArchive, c.mountPath));
  if (claim) return { on: 'claim', claim: claim.claim };
  const mount = (layout.container.volumeMounts ?? [])
    .filter((m) => within(walArchive, m.mountPath))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  const volume = layout.podSpec.volumes?.find((v) => v.name === mount?.name);
  if (!mount || !volume) return { on: 'nothing' };
  const claimSource = volume.persistentVolumeClaim && { ...volume.persistentVolumeClaim, readOnly: true };
  return {
    on: 'volume',
    mount: { name: 'wal-archive', mountPath: mount.mountPath, subPath: mount.subPath, readOnly: true },
    volume: { ...volume, ...(claimSource && { persistentVolumeClaim: claimSource }), name: 'wal-archive' },
  };
}

/** One line for the record's methods: how the scratch server reaches the WAL archive. */
export function archiveNote(layout: StatefulSetLayout, walArchive: string | undefined): string {
  if (!walArchive) return 'WAL archive: none in the catalog (walArchive)';
  const place = archivePlace(layout, walArchive);
  if (place.on === 'volume')
    return `WAL archive ${walArchive}: the StatefulSet's volume ${place.mount.mountPath}, mounted read-only`;
  if (place.on === 'claim') return `WAL archive ${walArchive}: on claim ${place.claim}, as its clone holds it`;
  return `WAL archive ${walArchive}: on no volume of the StatefulSet's pod; restore_command finds only what the image has there`;
}

export interface ScratchPodSpec {
  layout: StatefulSetLayout;
  record: ScratchRecord;
  /** The catalog's scratch.image, if any. */
  image?: string;
  walArchive?: string;
}

export function scratchPodObject({ layout, record, image, walArchive }: ScratchPodSpec): V1Pod {
  const spec = layout.podSpec;
  const lifetime = Math.max(MIN_LIFETIME_SECONDS, Math.ceil((Date.parse(record.expiresAt) - Date.now()) / 1000));
  const place = walArchive ? archivePlace(layout, walArchive) : undefined;
  const archive = place?.on === 'volume' ? place : undefined;
  const clones = record.volumes.map((volume, index) => ({
    volume: { name: `clone-${index}`, persistentVolumeClaim: { claimName: volume.clone } },
    mount: {
      name: `clone-${index}`,
      mountPath: volume.path,
      // The claim's subPath in the StatefulSet's pod: the clone holds the same tree.
      subPath: layout.claims.find((c) => c.mountPath === volume.source)?.subPath,
    },
  }));
  const sameImage = !image || image === layout.container.image;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: record.pod ?? record.id,
      namespace: layout.namespace,
      labels: {
        [SCRATCH_LABELS.scratch]: record.id,
        [SCRATCH_LABELS.cluster]: record.cluster,
        [SCRATCH_LABELS.operation]: labelValue(record.owner.operation),
        [SCRATCH_LABELS.ownerWorkflow]: labelValue(record.owner.workflowId),
        'app.kubernetes.io/managed-by': 'temporal-postgres-ops',
      },
      annotations: { [SCRATCH_OWNER_ANNOTATION]: JSON.stringify(record.owner) },
    },
    spec: {
      restartPolicy: 'Never',
      activeDeadlineSeconds: lifetime,
      terminationGracePeriodSeconds: 5,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      securityContext: spec.securityContext,
      nodeSelector: spec.nodeSelector,
      tolerations: spec.tolerations,
      // Node affinity only: the StatefulSet's pod (anti-)affinity is about its own replicas, and
      // would keep the scratch pod off the node production runs on, even when it is the only one.
      affinity: spec.affinity?.nodeAffinity ? { nodeAffinity: spec.affinity.nodeAffinity } : undefined,
      imagePullSecrets: spec.imagePullSecrets,
      containers: [
        {
          name: CONTAINER,
          image: image ?? layout.container.image,
          imagePullPolicy: sameImage ? layout.container.imagePullPolicy : undefined,
          securityContext: layout.container.securityContext,
          env: layout.container.env?.filter((e) => e.value !== undefined && !e.valueFrom),
          command: ['sh', '-c', SLEEP_SCRIPT],
          volumeMounts: [
            ...clones.map((c) => c.mount),
            { name: 'scratch-run', mountPath: SCRATCH_RUN_DIR },
            ...(archive ? [archive.mount] : []),
          ],
        },
      ],
      volumes: [
        ...clones.map((c) => c.volume),
        { name: 'scratch-run', emptyDir: {} },
        ...(archive ? [archive.volume] : []),
      ],
    },
  };
}

/** A scratch pod, driven through pods/exec with argument arrays. */
export class ScratchPod {
  private readonly pod: OwnPod;
  private binDir?: string;

  constructor(
    private readonly kubeConfig: KubeConfig,
    readonly namespace: string,
    /** The scratch id, the pod's name (the id) and PGDATA in the pod. */
    readonly scratch: { id: string; pod: string; pgdata: string },
  ) {
    this.pod = { core: kubeConfig.makeApiClient(CoreV1Api), namespace, name: scratch.pod, kind: 'scratch pod' };
  }

  get name(): string {
    return this.pod.name;
  }

  /** For helperDataDirectory: the data directory as the scratch pod mounts it. */
  get layout(): { pgdata: string } {
    return { pgdata: this.scratch.pgdata };
  }

  /** The pod, if it exists and is this scratch instance's (a pod of another name owner is never touched). */
  async read(): Promise<V1Pod | undefined> {
    const pod = await readOwnPod(this.pod);
    const id = this.scratch.id;
    if (pod && pod.metadata?.labels?.[SCRATCH_LABELS.scratch] !== id)
      throw new PermanentDriverError(
        `pod ${this.namespace}/${this.name} exists and is not scratch instance ${id}'s (no label ${SCRATCH_LABELS.scratch}=${id}): it is left alone`,
      );
    return pod;
  }

  /** Whether its container runs now (so exec can reach it). */
  async isRunning(): Promise<boolean> {
    const pod = await this.read();
    return pod?.status?.phase === 'Running' && !pod.metadata?.deletionTimestamp;
  }

  /**
   * Creates the pod (or keeps the running one a retry finds; an ended one is replaced) and waits
   * until it runs. The clones keep the data: a pod deleted by hand is simply made again.
   */
  async open(spec: () => Promise<ScratchPodSpec>, opts: WaitOptions = {}): Promise<void> {
    let existing = await this.read();
    if (existing && !isReusable(existing)) {
      await deletePodAndWait(this.pod, opts);
      existing = undefined;
    }
    const made = existing ? undefined : await spec();
    if (made) {
      const body = scratchPodObject(made);
      opts.onProgress?.(`creating scratch pod ${this.name}`);
      await callKube({ verb: 'create', resource: 'pods', group: '', namespace: this.namespace, name: this.name }, () =>
        this.pod.core.createNamespacedPod({ namespace: this.namespace, body }),
      ).catch((err: unknown) => {
        if (!isKubeStatus(err, 409)) throw err;
      });
    }
    await waitForPodRunning(this.pod, `scratch instance ${this.scratch.id}`, RUNNING_TIMEOUT_MS, opts);
  }

  /**
   * Deletes the pod (PostgreSQL in it is killed: it is a copy) and waits until it is gone. Idempotent;
   * a pod of that name that is not this scratch instance's is left alone (and said so).
   */
  async delete(opts: WaitOptions = {}): Promise<void> {
    const pod = await readOwnPod(this.pod);
    if (!pod) return;
    if (pod.metadata?.labels?.[SCRATCH_LABELS.scratch] !== this.scratch.id) {
      opts.onProgress?.(`pod ${this.namespace}/${this.name} is not scratch instance ${this.scratch.id}'s: left alone`);
      return;
    }
    await deletePodAndWait(this.pod, opts);
  }

  /** Runs a command in the pod as the data directory's owner. */
  exec(command: string[], opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<PodExecResult> {
    return execInPod(
      this.kubeConfig,
      { namespace: this.namespace, pod: this.name, container: CONTAINER },
      ['sh', '-c', AS_OWNER_SCRIPT, 'pgops-as-owner', this.scratch.pgdata, ...command],
      opts,
    );
  }

  /** Runs a command that must succeed; returns its stdout. */
  async run(command: string[], opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<string> {
    const result = await this.exec(command, opts);
    if (result.code !== 0)
      throw new Error(
        `${command[0]} in scratch pod ${this.namespace}/${this.name} failed (exit ${result.code}): ${(result.stderr || result.stdout).trim()}`,
      );
    return result.stdout;
  }

  /** The path of one of PostgreSQL's programs in the pod's image. */
  async program(name: string, signal?: AbortSignal): Promise<string> {
    if (!/^[a-z_]{1,40}$/.test(name)) throw new Error(`refusing program name ${JSON.stringify(name)}`);
    this.binDir ??= (
      await this.run(['sh', '-c', BIN_DIR_SCRIPT, 'pgops-bin-dir', this.scratch.pgdata], { signal })
    ).trim();
    return `${this.binDir}/${name}`;
  }
}
