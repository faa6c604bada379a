// A short-lived pod that mounts a stopped StatefulSet's claims, so the worker can read and write
// files in the data directory (backup_label, recovery.signal, postgresql.auto.conf) and run
// pg_controldata while no PostgreSQL pod runs: on Kubernetes a claim is mounted nowhere while
// the StatefulSet is at 0. It runs the StatefulSet's own image, user and node placement, sleeps,
// and is driven through pods/exec with argument arrays. Its name is fixed per StatefulSet, so a
// retried step finds (or replaces) the pod an earlier attempt left; activeDeadlineSeconds ends
// it on its own if no worker ever comes back.
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { callKube, isKubeStatus, readIfFound } from './apiErrors';
import { execInPod, type PodExecResult } from './podExec';
import type { StatefulSetLayout } from './statefulSetLayout';
import type { WaitOptions } from '../cluster/types';
import { PermanentDriverError } from '../cluster/types';
import { pollUntil } from '../waiting';

export const HELPER_LABEL = 'pgops.temporal.io/helper-for';
const HELPER_CONTAINER = 'helper';
const LIFETIME_SECONDS = 3600;

export function helperPodName(statefulSet: string): string {
  return `pgops-helper-${statefulSet}`.slice(0, 63).replace(/[-.]+$/, '');
}

export function helperPodObject(layout: StatefulSetLayout): V1Pod {
  const spec = layout.podSpec;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: helperPodName(layout.statefulSet),
      namespace: layout.namespace,
      // Never the StatefulSet's own labels: its controller would adopt the pod, its driver count it.
      labels: { [HELPER_LABEL]: layout.statefulSet, 'app.kubernetes.io/managed-by': 'temporal-postgres-ops' },
    },
    spec: {
      restartPolicy: 'Never',
      activeDeadlineSeconds: LIFETIME_SECONDS,
      terminationGracePeriodSeconds: 0,
      automountServiceAccountToken: false,
      securityContext: spec.securityContext,
      nodeSelector: spec.nodeSelector,
      tolerations: spec.tolerations,
      affinity: spec.affinity,
      imagePullSecrets: spec.imagePullSecrets,
      priorityClassName: spec.priorityClassName,
      containers: [
        {
          name: HELPER_CONTAINER,
          image: layout.container.image,
          imagePullPolicy: layout.container.imagePullPolicy,
          securityContext: layout.container.securityContext,
          env: layout.container.env?.filter((e) => e.value !== undefined && !e.valueFrom),
          command: ['sleep', String(LIFETIME_SECONDS)],
          volumeMounts: layout.claims.map((c) => ({
            name: c.template,
            mountPath: c.mountPath,
            subPath: c.subPath,
            readOnly: c.readOnly,
          })),
        },
      ],
      volumes: layout.claims.map((c) => ({ name: c.template, persistentVolumeClaim: { claimName: c.claim } })),
    },
  };
}

export class HelperPod {
  private readonly core: CoreV1Api;
  readonly name: string;

  constructor(
    private readonly kubeConfig: KubeConfig,
    readonly layout: StatefulSetLayout,
    private readonly timeoutSeconds = 300,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.name = helperPodName(layout.statefulSet);
  }

  private call(verb: string) {
    return { verb, resource: 'pods', group: '', namespace: this.layout.namespace, name: this.name };
  }

  private async read(): Promise<V1Pod | undefined> {
    return readIfFound(this.call('get'), () =>
      this.core.readNamespacedPod({ name: this.name, namespace: this.layout.namespace }),
    );
  }

  /** Creates the pod (or reuses a running one a crashed attempt left) and waits until it runs. */
  async open(opts: WaitOptions = {}): Promise<void> {
    let existing = await this.read();
    if (
      existing &&
      (existing.metadata?.deletionTimestamp || !['Pending', 'Running'].includes(existing.status?.phase ?? ''))
    ) {
      await this.close(opts); // an ended or terminating pod is replaced, not reused
      existing = undefined;
    }
    if (!existing) {
      try {
        await callKube(this.call('create'), () =>
          this.core.createNamespacedPod({ namespace: this.layout.namespace, body: helperPodObject(this.layout) }),
        );
      } catch (err) {
        if (!isKubeStatus(err, 409)) throw err;
      }
    }
    await pollUntil<void>(
      async () => {
        const pod = await this.read();
        if (!pod) return { waiting: 'the helper pod is gone' };
        const state = pod.status?.containerStatuses?.[0]?.state;
        if (pod.status?.phase === 'Running' && state?.running) return { done: undefined };
        if (pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded')
          throw new Error(
            `helper pod ${this.layout.namespace}/${this.name} ended (${pod.status.phase}): ${pod.status.message ?? ''}`,
          );
        const waiting = state?.waiting;
        if (
          waiting &&
          ['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'CreateContainerConfigError'].includes(
            waiting.reason ?? '',
          )
        )
          throw new PermanentDriverError(
            `helper pod ${this.layout.namespace}/${this.name} cannot start: ${waiting.reason}: ${waiting.message ?? ''}`,
          );
        const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
        return {
          waiting: `helper pod ${this.name}: ${waiting?.reason ?? pod.status?.phase ?? 'pending'}${scheduled?.status === 'False' ? ` (${scheduled.message ?? 'not scheduled'})` : ''}`,
        };
      },
      {
        intervalMs: 250,
        timeoutMs: this.timeoutSeconds * 1000,
        what: `helper pod ${this.layout.namespace}/${this.name} (mounting ${this.layout.claims.map((c) => c.claim).join(', ')}) to run`,
        onProgress: opts.onProgress,
        signal: opts.signal,
      },
    );
  }

  exec(command: string[], opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<PodExecResult> {
    return execInPod(
      this.kubeConfig,
      { namespace: this.layout.namespace, pod: this.name, container: HELPER_CONTAINER },
      command,
      opts,
    );
  }

  /** Runs a command that must succeed; returns its stdout. */
  async run(command: string[], opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<string> {
    const result = await this.exec(command, opts);
    if (result.code !== 0)
      throw new Error(
        `${command[0]} in helper pod ${this.layout.namespace}/${this.name} failed (exit ${result.code}): ${(result.stderr || result.stdout).trim()}`,
      );
    return result.stdout;
  }

  /** Deletes the pod and waits until it is gone, so that its claims are free again. Idempotent. */
  async close(opts: WaitOptions = {}): Promise<void> {
    try {
      await callKube(this.call('delete'), () =>
        this.core.deleteNamespacedPod({ name: this.name, namespace: this.layout.namespace, gracePeriodSeconds: 0 }),
      );
    } catch (err) {
      if (!isKubeStatus(err, 404)) throw err;
    }
    await pollUntil<void>(async () => ((await this.read()) ? { waiting: 'still there' } : { done: undefined }), {
      intervalMs: 250,
      timeoutMs: 120_000,
      what: `helper pod ${this.layout.namespace}/${this.name} to be gone`,
      onProgress: opts.onProgress,
      signal: opts.signal,
    });
  }
}
