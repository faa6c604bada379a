// A PostgreSQL cluster on Kubernetes is a StatefulSet. Stopping it means what `kubectl scale
// --replicas=0` means (a write to the scale subresource) and then waiting until no pod is left;
// starting it means scaling back and waiting for Ready. The replica count to come back to is
// recorded on the StatefulSet itself (an annotation), so that a worker that crashed half-way, or
// another worker, still finds it.
import {
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import { setTimeout as delay } from 'node:timers/promises';
import type { KubernetesTarget } from '../../config/schema';
import { callKube, isKubeStatus, readIfFound, type KubeCall } from '../kube/apiErrors';
import { HelperPod } from '../kube/helperPod';
import { execInPod, type PodExecResult } from '../kube/podExec';
import { statefulSetLayout, type StatefulSetLayout } from '../kube/statefulSetLayout';
import {
  PermanentDriverError,
  type ClusterDriver,
  type ClusterState,
  type QuiescentCheck,
  type RestartOptions,
  type WaitOptions,
} from './types';

export const REPLICAS_BEFORE_STOP_ANNOTATION = 'pgops.temporal.io/replicas-before-stop';
const POLL_INTERVAL_MS = 500;
/** The StatefulSet controller rewrites status while pods come and go, so scale writes often meet a newer resourceVersion. */
const SCALE_WRITE_ATTEMPTS = 6;

/** Loads the kubeconfig the catalog entry names (or the default one) and selects its context. */
export function loadKubeConfig(target: KubernetesTarget): KubeConfig {
  const kubeConfig = new KubeConfig();
  const source = target.kubeconfig ?? 'the default kubeconfig ($KUBECONFIG, ~/.kube/config or in-cluster)';
  try {
    if (target.kubeconfig !== undefined) kubeConfig.loadFromFile(target.kubeconfig);
    else kubeConfig.loadFromDefault();
  } catch (err) {
    throw new PermanentDriverError(`cannot load ${source}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (target.context !== undefined) {
    if (kubeConfig.getContextObject(target.context) === null) {
      const known = kubeConfig.getContexts().map((c) => c.name);
      throw new PermanentDriverError(
        `${source} has no context "${target.context}" (its contexts: ${known.join(', ') || 'none'}): fix target.context in the catalog`,
      );
    }
    kubeConfig.setCurrentContext(target.context);
  }
  return kubeConfig;
}

export class KubernetesClusterDriver implements ClusterDriver {
  readonly kind = 'kubernetes' as const;
  private readonly apps: AppsV1Api;
  private readonly core: CoreV1Api;
  private readonly namespace: string;
  private readonly name: string;

  constructor(
    private readonly target: KubernetesTarget,
    private readonly kubeConfig: KubeConfig,
  ) {
    this.apps = kubeConfig.makeApiClient(AppsV1Api);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.namespace = target.namespace;
    this.name = target.statefulSet;
  }

  async describe(): Promise<ClusterState> {
    const sts = await this.readStatefulSet();
    const pods = await this.listPods(sts);
    return {
      running: pods.length > 0,
      replicas: sts.spec?.replicas ?? 0,
      readyReplicas: pods.filter(isServing).length,
      members: pods.map(podName),
    };
  }

  /** Where the StatefulSet keeps its database: container, PGDATA, the first pod's claims. */
  async layout(): Promise<StatefulSetLayout> {
    return statefulSetLayout(await this.readStatefulSet(), this.target);
  }

  /** A helper pod mounting the first pod's claims (the StatefulSet must be at 0). */
  async helperPod(): Promise<HelperPod> {
    return new HelperPod(this.kubeConfig, await this.layout());
  }

  /**
   * The first pod's PostgreSQL container: PGDATA there, and a command runner into it (pods/exec,
   * argument arrays; as the container's user). Each command goes to whatever pod carries the name
   * then: after a restart, the new one.
   */
  async serverContainer(): Promise<{
    pod: string;
    pgdata: string;
    run: (command: string[], opts: { timeoutMs?: number; signal?: AbortSignal }) => Promise<PodExecResult>;
  }> {
    const layout = await this.layout();
    const where = { namespace: this.namespace, pod: layout.firstPod, container: layout.container.name };
    return {
      pod: layout.firstPod,
      pgdata: layout.pgdata,
      run: (command, opts) => execInPod(this.kubeConfig, where, command, opts),
    };
  }

  /** The PostgreSQL container's log lines of the first pod (the kubelet's log), newest last. */
  async serverLog(tailLines = 400): Promise<string[]> {
    const layout = await this.layout();
    try {
      const text = await callKube(this.call('get', 'pods/log', '', layout.firstPod), () =>
        this.core.readNamespacedPodLog({
          name: layout.firstPod,
          namespace: this.namespace,
          container: layout.container.name,
          tailLines,
        }),
      );
      return text.trimEnd().split('\n');
    } catch {
      return [];
    }
  }

  async stop(opts: WaitOptions = {}): Promise<{ replicasBefore: number; alreadyStopped: boolean }> {
    const sts = await this.readStatefulSet();
    const scale = await this.readScale();
    let replicasBefore: number;
    if (scale.replicas > 0) {
      // Recorded before the scale-down, so that a crash between the two writes loses nothing.
      await this.patchAnnotation(String(scale.replicas));
      await this.scaleTo(0);
      replicasBefore = scale.replicas;
    } else {
      replicasBefore = recordedReplicasOf(sts, this.id) ?? this.target.replicas;
    }
    const pods = await this.listPods(sts);
    if (scale.replicas === 0 && pods.length === 0) return { replicasBefore, alreadyStopped: true };
    await this.waitForNoPods(sts, opts);
    return { replicasBefore, alreadyStopped: false };
  }

  async recordedReplicas(): Promise<number | undefined> {
    return recordedReplicasOf(await this.readStatefulSet(), this.id);
  }

  async verifyQuiescent(): Promise<QuiescentCheck> {
    const sts = await this.readStatefulSet();
    const pods = await this.listPods(sts);
    const wanted = sts.spec?.replicas ?? 0;
    if (wanted > 0 || pods.length > 0) {
      const problems = [
        wanted > 0 ? `spec.replicas is ${wanted}` : '',
        pods.length > 0 ? `pod(s) still present: ${pods.map(podName).join(', ')}` : '',
      ];
      throw new Error(
        `StatefulSet ${this.id} is not quiescent (${problems.filter(Boolean).join('; ')}): stop it and wait until no pod is left`,
      );
    }
    const claims = this.claimNames(sts, recordedReplicasOf(sts, this.id) ?? this.target.replicas);
    for (const claim of claims) await this.requirePersistentVolumeClaim(claim);
    return { noServerRunning: true, volumesKept: claims };
  }

  async start(replicas: number, opts: WaitOptions = {}): Promise<{ readyReplicas: number; alreadyRunning: boolean }> {
    if (!Number.isInteger(replicas) || replicas < 1) {
      throw new PermanentDriverError(
        `cannot start StatefulSet ${this.id} with ${replicas} replica(s): give a whole number of at least 1`,
      );
    }
    const scale = await this.readScale();
    if (scale.replicas === replicas) {
      const readiness = await this.readiness(replicas);
      if (readiness.waiting === undefined) {
        await this.clearAnnotation();
        return { readyReplicas: readiness.ready, alreadyRunning: true };
      }
    } else {
      await this.scaleTo(replicas);
    }
    const readyReplicas = await pollUntil<number>(
      async () => {
        const readiness = await this.readiness(replicas);
        return readiness.waiting === undefined ? { result: readiness.ready } : { waiting: readiness.waiting };
      },
      this.target.readyTimeoutSeconds,
      (waiting) =>
        new Error(
          `StatefulSet ${this.id} was not ready within ${this.target.readyTimeoutSeconds} s (${waiting}): check the pods' events and logs`,
        ),
      opts,
    );
    await this.clearAnnotation();
    return { readyReplicas, alreadyRunning: false };
  }

  /**
   * Deletes pod `<statefulset>-<ordinal>` and waits until the controller has replaced it with a
   * new pod (another uid) that is Ready. A repeated call restarts the pod once more.
   */
  /** The pod is deleted and the StatefulSet controller recreates it: PostgreSQL starts anew. */
  // `immediate` is not honoured here: a pod deletion lets PostgreSQL shut down cleanly. The PITR
  // step falls back to the commit-based target if PostgreSQL then refuses the earlier stop point.
  async restartServer(opts: RestartOptions = {}): Promise<void> {
    await this.restartPod(0, opts);
  }

  async restartPod(
    ordinal: number,
    opts: WaitOptions & { untilStarted?: boolean } = {},
  ): Promise<{ podName: string; uid: string }> {
    const sts = await this.readStatefulSet();
    const first = sts.spec?.ordinals?.start ?? 0;
    const wanted = sts.spec?.replicas ?? 0;
    if (!Number.isInteger(ordinal) || ordinal < first || ordinal >= first + wanted) {
      throw new PermanentDriverError(
        `StatefulSet ${this.id} has no pod with ordinal ${ordinal} (it runs ${wanted} replica(s) from ordinal ${first}): the controller would not recreate it`,
      );
    }
    const pod = `${this.name}-${ordinal}`;
    const old = await this.readPod(pod);
    if (old === undefined)
      throw new Error(
        `pod ${this.namespace}/${pod} does not exist right now (the controller is probably recreating it): try again`,
      );
    const oldUid = old.metadata?.uid;
    try {
      await callKube(this.call('delete', 'pods', '', pod), () =>
        this.core.deleteNamespacedPod({ name: pod, namespace: this.namespace }),
      );
    } catch (err) {
      if (!isKubeStatus(err, 404)) throw err; // already gone: the wait below still applies
    }
    const uid = await pollUntil<string>(
      async () => {
        const current = await this.readPod(pod);
        if (current === undefined) return { waiting: `waiting for pod ${pod} to be recreated` };
        if (current.metadata?.uid === oldUid) return { waiting: `waiting for pod ${pod} to terminate` };
        if (opts.untilStarted ? !containerRuns(current) : !isServing(current))
          return {
            waiting: `waiting for the new pod ${pod} to be ${opts.untilStarted ? 'running' : 'Ready'} (${current.status?.phase ?? 'unknown phase'})`,
          };
        return { result: current.metadata?.uid ?? '' };
      },
      this.target.readyTimeoutSeconds,
      (waiting) =>
        new Error(
          `pod ${this.namespace}/${pod} was not back and Ready within ${this.target.readyTimeoutSeconds} s (${waiting})`,
        ),
      opts,
    );
    return { podName: pod, uid };
  }

  private get id(): string {
    return `${this.namespace}/${this.name}`;
  }

  private call(verb: string, resource: string, group: string, name?: string): KubeCall {
    return { verb, resource, group, namespace: this.namespace, name };
  }

  /** Calls on the StatefulSet itself: a 404 means the catalog points at nothing. */
  private async onStatefulSet<T>(verb: string, resource: string, request: () => Promise<T>): Promise<T> {
    try {
      return await callKube(this.call(verb, resource, 'apps', this.name), request);
    } catch (err) {
      if (isKubeStatus(err, 404)) {
        throw new PermanentDriverError(
          `StatefulSet ${this.id} not found (namespace "${this.namespace}", statefulSet "${this.name}"): check the catalog entry's target and the kubeconfig context`,
        );
      }
      throw err;
    }
  }

  private readStatefulSet(): Promise<V1StatefulSet> {
    return this.onStatefulSet('get', 'statefulsets', () =>
      this.apps.readNamespacedStatefulSet({ name: this.name, namespace: this.namespace }),
    );
  }

  private async readScale(): Promise<{ replicas: number; resourceVersion: string | undefined }> {
    const scale = await this.onStatefulSet('get', 'statefulsets/scale', () =>
      this.apps.readNamespacedStatefulSetScale({ name: this.name, namespace: this.namespace }),
    );
    // autoscaling/v1 omits spec.replicas when it is 0.
    return { replicas: scale.spec?.replicas ?? 0, resourceVersion: scale.metadata?.resourceVersion };
  }

  /** Sets spec.replicas through the scale subresource, re-reading after a 409 Conflict. */
  private async scaleTo(replicas: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const scale = await this.readScale();
      if (scale.replicas === replicas) return;
      const body = {
        apiVersion: 'autoscaling/v1',
        kind: 'Scale',
        metadata: { name: this.name, namespace: this.namespace, resourceVersion: scale.resourceVersion },
        spec: { replicas },
      };
      try {
        await this.onStatefulSet('update', 'statefulsets/scale', () =>
          this.apps.replaceNamespacedStatefulSetScale({ name: this.name, namespace: this.namespace, body }),
        );
        return;
      } catch (err) {
        if (!isKubeStatus(err, 409) || attempt >= SCALE_WRITE_ATTEMPTS) throw err;
        await delay(50 * attempt);
      }
    }
  }

  /** Sets (a string) or removes (null) the replicas-before-stop annotation with a JSON merge patch. */
  private async patchAnnotation(value: string | null): Promise<void> {
    await this.annotate(REPLICAS_BEFORE_STOP_ANNOTATION, value);
  }

  /** An annotation of the StatefulSet (pgops's own marks: names are constants, never input). */
  async annotation(key: string): Promise<string | undefined> {
    return (await this.readStatefulSet()).metadata?.annotations?.[key];
  }

  /** Sets (a string) or removes (null) an annotation of the StatefulSet with a JSON merge patch. */
  async annotate(key: string, value: string | null): Promise<void> {
    const body = { metadata: { annotations: { [key]: value } } };
    await this.onStatefulSet('patch', 'statefulsets', () =>
      this.apps.patchNamespacedStatefulSet(
        { name: this.name, namespace: this.namespace, body },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
  }

  private async clearAnnotation(): Promise<void> {
    const sts = await this.readStatefulSet();
    if (sts.metadata?.annotations?.[REPLICAS_BEFORE_STOP_ANNOTATION] !== undefined) await this.patchAnnotation(null);
  }

  /** Every pod the StatefulSet's selector matches, owned or not: any of them may hold the data volume. */
  private async listPods(sts: V1StatefulSet): Promise<V1Pod[]> {
    const selector = sts.spec?.selector;
    const labels = Object.entries(selector?.matchLabels ?? {});
    if ((selector?.matchExpressions ?? []).length > 0 || labels.length === 0) {
      throw new PermanentDriverError(
        `StatefulSet ${this.id} selects its pods without matchLabels (or with matchExpressions), which this driver does not handle`,
      );
    }
    const labelSelector = labels.map(([key, value]) => `${key}=${value}`).join(',');
    const list = await callKube(this.call('list', 'pods', ''), () =>
      this.core.listNamespacedPod({ namespace: this.namespace, labelSelector }),
    );
    return [...list.items].sort((a, b) => podName(a).localeCompare(podName(b), undefined, { numeric: true }));
  }

  /** The pod IP of the StatefulSet's pod `ordinal`, as other pods reach it; undefined when it has none. */
  async podAddress(ordinal = 0): Promise<string | undefined> {
    return (await this.readPod(`${this.name}-${ordinal}`))?.status?.podIP ?? undefined;
  }

  private async readPod(name: string): Promise<V1Pod | undefined> {
    return readIfFound(this.call('get', 'pods', '', name), () =>
      this.core.readNamespacedPod({ name, namespace: this.namespace }),
    );
  }

  private async waitForNoPods(sts: V1StatefulSet, opts: WaitOptions): Promise<void> {
    await pollUntil<void>(
      async () => {
        const pods = await this.listPods(sts);
        return pods.length === 0
          ? { result: undefined }
          : { waiting: `waiting for ${pods.length} pod(s) to terminate: ${pods.map(podName).join(', ')}` };
      },
      this.target.stopTimeoutSeconds,
      (waiting) =>
        new Error(
          `StatefulSet ${this.id} did not stop within ${this.target.stopTimeoutSeconds} s (${waiting}): ` +
            `look at the pods (kubectl -n ${this.namespace} describe pod) for finalizers or an unreachable node`,
        ),
      opts,
    );
  }

  /** Whether the first `replicas` ordinals run Ready pods and the controller counts them; `waiting` says what is missing. */
  private async readiness(replicas: number): Promise<{ ready: number; waiting?: string }> {
    const sts = await this.readStatefulSet();
    const pods = new Map((await this.listPods(sts)).map((pod) => [podName(pod), pod]));
    const first = sts.spec?.ordinals?.start ?? 0;
    const notReady: string[] = [];
    for (let ordinal = first; ordinal < first + replicas; ordinal++) {
      const name = `${this.name}-${ordinal}`;
      const pod = pods.get(name);
      if (pod === undefined) notReady.push(`${name} (not created yet)`);
      else if (!isServing(pod))
        notReady.push(
          `${name} (${pod.metadata?.deletionTimestamp ? 'terminating' : (pod.status?.phase ?? 'unknown phase')})`,
        );
    }
    const ready = replicas - notReady.length;
    const counted = sts.status?.readyReplicas ?? 0;
    if (notReady.length === 0 && counted >= replicas) return { ready };
    const detail =
      notReady.length > 0 ? `not ready: ${notReady.join(', ')}` : `the StatefulSet status counts ${counted} ready`;
    return { ready, waiting: `waiting for ${replicas} ready replica(s), ${ready} ready; ${detail}` };
  }

  /** The PVCs the data lives on: `<template>-<statefulset>-<ordinal>` per claim template, plus claims the pod template names. */
  private claimNames(sts: V1StatefulSet, replicas: number): string[] {
    const first = sts.spec?.ordinals?.start ?? 0;
    const names: string[] = [];
    for (const template of sts.spec?.volumeClaimTemplates ?? []) {
      const templateName = template.metadata?.name;
      if (templateName === undefined) continue;
      for (let ordinal = first; ordinal < first + replicas; ordinal++)
        names.push(`${templateName}-${this.name}-${ordinal}`);
    }
    for (const volume of sts.spec?.template.spec?.volumes ?? []) {
      if (volume.persistentVolumeClaim) names.push(volume.persistentVolumeClaim.claimName);
    }
    if (names.length === 0) {
      throw new PermanentDriverError(
        `StatefulSet ${this.id} keeps no data on a PersistentVolumeClaim (no volumeClaimTemplates, no claim volumes): there is no volume to keep`,
      );
    }
    return names;
  }

  private async requirePersistentVolumeClaim(claim: string): Promise<void> {
    const gone = `PersistentVolumeClaim ${this.namespace}/${claim} of StatefulSet ${this.id}`;
    const advice = 'starting the cluster now would give that replica a new, empty volume: restore the volume first';
    try {
      const pvc = await callKube(this.call('get', 'persistentvolumeclaims', '', claim), () =>
        this.core.readNamespacedPersistentVolumeClaim({ name: claim, namespace: this.namespace }),
      );
      if (pvc.metadata?.deletionTimestamp) throw new PermanentDriverError(`${gone} is being deleted; ${advice}`);
    } catch (err) {
      if (isKubeStatus(err, 404)) throw new PermanentDriverError(`${gone} is gone; ${advice}`);
      throw err;
    }
  }
}

function podName(pod: V1Pod): string {
  return pod.metadata?.name ?? '';
}

/** Every container of the pod runs (started), whether or not it is Ready yet. */
function containerRuns(pod: V1Pod): boolean {
  if (pod.metadata?.deletionTimestamp) return false;
  const statuses = pod.status?.containerStatuses ?? [];
  return statuses.length > 0 && statuses.every((c) => c.state?.running !== undefined && c.started !== false);
}

/** Ready and not on its way out. */
function isServing(pod: V1Pod): boolean {
  if (pod.metadata?.deletionTimestamp) return false;
  return (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

function recordedReplicasOf(sts: V1StatefulSet, id: string): number | undefined {
  const value = sts.metadata?.annotations?.[REPLICAS_BEFORE_STOP_ANNOTATION];
  if (value === undefined) return undefined;
  if (!/^\d{1,4}$/.test(value)) {
    throw new PermanentDriverError(
      `StatefulSet ${id} has annotation ${REPLICAS_BEFORE_STOP_ANNOTATION}=${JSON.stringify(value)}, which is not a replica count: fix or remove it`,
    );
  }
  return Number(value);
}

/**
 * Polls `check` about every POLL_INTERVAL_MS until it gives a result, reporting what it waits for
 * on every round (activities turn that into heartbeats) and honouring the abort signal.
 */
async function pollUntil<T>(
  check: () => Promise<{ result: T } | { waiting: string }>,
  timeoutSeconds: number,
  timeoutError: (waiting: string) => Error,
  opts: WaitOptions,
): Promise<T> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    opts.signal?.throwIfAborted();
    const outcome = await check();
    if ('result' in outcome) return outcome.result;
    opts.onProgress?.(outcome.waiting);
    const left = deadline - Date.now();
    if (left <= 0) throw timeoutError(outcome.waiting);
    try {
      await delay(Math.min(POLL_INTERVAL_MS, left), undefined, { signal: opts.signal });
    } catch (err) {
      opts.signal?.throwIfAborted(); // the caller's reason, not the timer's AbortError
      throw err;
    }
  }
}
