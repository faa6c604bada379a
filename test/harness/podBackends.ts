// kwok pods never run a process. For the tests where the pod's PostgreSQL must be real, the
// harness plays the kubelet's part for one StatefulSet: a watch on its pods starts the backend
// (a local PostgreSQL) when a pod is Running, then marks the pod Ready (its readiness gate, as a
// probe would); when the pod is deleted it stops the backend, then removes the harness's
// finalizer, so the pod leaves the API only once its database is down. kwok's PortForward
// objects send the pod's port 5432 to the backend's port, behind the real pods/portforward.
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  Watch,
  type KubeConfig,
  type V1Pod,
  type V1PodSpec,
} from '@kubernetes/client-node';
import type { KubeCluster } from './kubeCluster';

export const POSTGRES_READY_GATE = 'pgops.test/postgres-ready';
export const POSTGRES_FINALIZER = 'pgops.test/postgres';

/** Pod template parts that put a StatefulSet's pods under a PodBackend's control. */
export const backedPodTemplate: { pod: Partial<V1PodSpec>; finalizers: string[] } = {
  pod: { readinessGates: [{ conditionType: POSTGRES_READY_GATE }] },
  finalizers: [POSTGRES_FINALIZER],
};

export interface Backend {
  /** Called when pod `pod` runs; the pod turns Ready when it resolves. A throw leaves it not Ready. */
  start(pod: string): Promise<void>;
  /** Called when pod `pod` is deleted; the pod leaves the API when it resolves. */
  stop(pod: string): Promise<void>;
}

export interface PodBackend {
  /** What happened, in order: `start pg-0`, `ready pg-0`, `stop pg-0`, `gone pg-0`. */
  log: string[];
  close(): Promise<void>;
}

/** Backs the pods of StatefulSet `statefulSet` in `namespace` (label app=<statefulSet>) by `backend`. */
export async function backPods(
  cluster: KubeCluster,
  namespace: string,
  statefulSet: string,
  backend: Backend,
): Promise<PodBackend> {
  const kc = cluster.admin();
  const core = kc.makeApiClient(CoreV1Api);
  const log: string[] = [];
  const running = new Set<string>(); // pods whose backend runs, by uid
  let closed = false;
  let queue: Promise<void> = Promise.resolve();
  let watch: AbortController | undefined;
  const errors: string[] = [];

  const handle = async (pod: V1Pod): Promise<void> => {
    const name = pod.metadata?.name ?? '';
    const uid = pod.metadata?.uid ?? '';
    const finalizers = pod.metadata?.finalizers ?? [];
    if (pod.metadata?.deletionTimestamp) {
      if (!finalizers.includes(POSTGRES_FINALIZER)) return;
      if (running.delete(uid)) {
        log.push(`stop ${name}`);
        await backend.stop(name);
      }
      await core.patchNamespacedPod(
        {
          name,
          namespace,
          body: {
            metadata: {
              finalizers: finalizers.filter((f) => f !== POSTGRES_FINALIZER),
              resourceVersion: pod.metadata.resourceVersion,
            },
          },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      log.push(`gone ${name}`);
      return;
    }
    const gate = pod.status?.conditions?.find((c) => c.type === POSTGRES_READY_GATE);
    if (pod.status?.phase !== 'Running' || gate?.status === 'True') return;
    if (!running.has(uid)) {
      log.push(`start ${name}`);
      await backend.start(name);
      running.add(uid);
    }
    const now = new Date();
    await core.patchNamespacedPodStatus(
      {
        name,
        namespace,
        body: {
          status: {
            conditions: [
              { type: POSTGRES_READY_GATE, status: 'True', lastTransitionTime: now },
              { type: 'Ready', status: 'True', lastTransitionTime: now },
            ],
          },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
    if (log.at(-1) !== `ready ${name}`) log.push(`ready ${name}`);
  };
  let pending = 0;
  const enqueue = (pod: V1Pod) => {
    pending++;
    queue = queue
      .then(() => (closed ? undefined : handle(pod)))
      .catch((err: unknown) => {
        // A 409 means the pod changed meanwhile; the next event or resync runs the step again. A 404
        // means a queued event (or a resync's list) was older than the pod's removal: a pod carrying
        // the harness's finalizer leaves the API only after this backend has stopped it, so there
        // is nothing left to do for it.
        const code = (err as { code?: number }).code;
        if (code === 409 || code === 404) return;
        errors.push(String(err));
        log.push(`error ${pod.metadata?.name}: ${String(err)}`);
      })
      .finally(() => pending--);
  };

  // List, then watch from the list's resourceVersion; when the watch ends (the server closes
  // watches after a while, or answers 410 Gone for an expired resourceVersion), list again.
  const labelSelector = `app=${statefulSet}`;
  const listAndWatch = async (): Promise<void> => {
    if (closed) return;
    const list = await core.listNamespacedPod({ namespace, labelSelector });
    for (const pod of list.items) enqueue(pod);
    watch = await new Watch(kc).watch(
      `/api/v1/namespaces/${namespace}/pods`,
      { labelSelector, resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: false },
      (type: string, pod: V1Pod) => {
        if (type === 'ADDED' || type === 'MODIFIED') enqueue(pod);
      },
      () => void (closed ? undefined : setTimeout(() => void listAndWatch().catch(() => undefined), 100)),
    );
  };
  await listAndWatch();
  // Every step is idempotent: a resync each second, when nothing is queued, makes up for an event
  // a watch may have lost while it was being re-established.
  const resync = setInterval(() => {
    if (closed || pending > 0) return;
    core.listNamespacedPod({ namespace, labelSelector }).then(
      (list) => list.items.forEach(enqueue),
      () => undefined,
    );
  }, 1000);

  return {
    log,
    async close() {
      closed = true;
      clearInterval(resync);
      watch?.abort();
      await queue;
      if (errors.length > 0) throw new Error(`pod backend of ${namespace}/${statefulSet} failed: ${errors.join('; ')}`);
    },
  };
}

/** kwok PortForward objects: port `port` of each named pod goes to 127.0.0.1:`targetPort`. */
export async function forwardPodPort(
  kc: KubeConfig,
  namespace: string,
  pods: string[],
  port: number,
  targetPort: number,
): Promise<void> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  for (const pod of pods) {
    await custom.createNamespacedCustomObject({
      group: 'kwok.x-k8s.io',
      version: 'v1alpha1',
      namespace,
      plural: 'portforwards',
      body: {
        apiVersion: 'kwok.x-k8s.io/v1alpha1',
        kind: 'PortForward',
        metadata: { name: pod, namespace },
        spec: { forwards: [{ ports: [port], target: { port: targetPort, address: '127.0.0.1' } }] },
      },
    });
  }
}
