// A short-lived pod that mounts a stopped StatefulSet's claims, so the worker can read and write
// files in the data directory (backup_label, recovery.signal, postgresql.auto.conf) and run
// pg_controldata while no PostgreSQL pod runs: on Kubernetes a claim is mounted nowhere while
// the StatefulSet is at 0. It runs the StatefulSet's own image, user and node placement, sleeps,
// and is driven through pods/exec with argument arrays. Its name is fixed per StatefulSet, so a
// retried step finds (or replaces) the pod an earlier attempt left; activeDeadlineSeconds ends
// it on its own if no worker ever comes back.
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { callKube, isKubeStatus } from './apiErrors';
import { execInPod, type PodExecResult } from './podExec';
import { deletePodAndWait, isReusable, readOwnPod, waitForPodRunning, type OwnPod } from './podLifecycle';
import type { StatefulSetLayout } from './statefulSetLayout';
import type { WaitOptions } from '../cluster/types';

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
  private readonly pod: OwnPod;
  readonly name: string;

  constructor(
    private readonly kubeConfig: KubeConfig,
    readonly layout: StatefulSetLayout,
    private readonly timeoutSeconds = 300,
  ) {
    this.name = helperPodName(layout.statefulSet);
    this.pod = {
      core: kubeConfig.makeApiClient(CoreV1Api),
      namespace: layout.namespace,
      name: this.name,
      kind: 'helper pod',
    };
  }

  /** Creates the pod (or reuses a running one a crashed attempt left) and waits until it runs. */
  async open(opts: WaitOptions = {}): Promise<void> {
    let existing = await readOwnPod(this.pod);
    if (existing && !isReusable(existing)) {
      await this.close(opts);
      existing = undefined;
    }
    if (!existing) {
      try {
        await callKube(
          { verb: 'create', resource: 'pods', group: '', namespace: this.layout.namespace, name: this.name },
          () =>
            this.pod.core.createNamespacedPod({ namespace: this.layout.namespace, body: helperPodObject(this.layout) }),
        );
      } catch (err) {
        if (!isKubeStatus(err, 409)) throw err;
      }
    }
    await waitForPodRunning(
      this.pod,
      `mounting ${this.layout.claims.map((c) => c.claim).join(', ')}`,
      this.timeoutSeconds * 1000,
      opts,
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
    await deletePodAndWait(this.pod, opts);
  }
}
