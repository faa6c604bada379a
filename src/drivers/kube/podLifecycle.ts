// Waiting for a pod the worker made itself (the helper pod, a scratch pod) to run, and for it to be
// gone again: both say what the pod is stuck on (its image, its scheduling, its claims), so that a
// step waiting on it reports something a person can act on instead of "pending".
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { callKube, isKubeStatus, readIfFound } from './apiErrors';
import { PermanentDriverError, type WaitOptions } from '../cluster/types';
import { pollUntil } from '../waiting';

/** A container that will not start whatever the wait: retrying cannot fix these. */
const CANNOT_START = ['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'CreateContainerConfigError'];

export interface OwnPod {
  core: CoreV1Api;
  namespace: string;
  name: string;
  /** How messages name it: "helper pod", "scratch pod". */
  kind: string;
}

export function readOwnPod(pod: OwnPod): Promise<V1Pod | undefined> {
  return readIfFound({ verb: 'get', resource: 'pods', group: '', namespace: pod.namespace, name: pod.name }, () =>
    pod.core.readNamespacedPod({ name: pod.name, namespace: pod.namespace }),
  );
}

/** An ended or terminating pod is replaced, not reused. */
export function isReusable(pod: V1Pod): boolean {
  return !pod.metadata?.deletionTimestamp && ['Pending', 'Running'].includes(pod.status?.phase ?? '');
}

/** Waits until the pod's first container runs; throws at once if it ended or cannot start. */
export async function waitForPodRunning(
  pod: OwnPod,
  what: string,
  timeoutMs: number,
  opts: WaitOptions = {},
): Promise<V1Pod> {
  const id = `${pod.kind} ${pod.namespace}/${pod.name}`;
  return pollUntil<V1Pod>(
    async () => {
      const current = await readOwnPod(pod);
      if (!current) return { waiting: `the ${pod.kind} is gone` };
      const state = current.status?.containerStatuses?.[0]?.state;
      if (current.status?.phase === 'Running' && state?.running) return { done: current };
      if (current.status?.phase === 'Failed' || current.status?.phase === 'Succeeded')
        throw new Error(`${id} ended (${current.status.phase}): ${current.status.message ?? ''}`);
      const waiting = state?.waiting;
      if (waiting && CANNOT_START.includes(waiting.reason ?? ''))
        throw new PermanentDriverError(`${id} cannot start: ${waiting.reason}: ${waiting.message ?? ''}`);
      const scheduled = current.status?.conditions?.find((c) => c.type === 'PodScheduled');
      return {
        waiting: `${pod.kind} ${pod.name}: ${waiting?.reason ?? current.status?.phase ?? 'pending'}${scheduled?.status === 'False' ? ` (${scheduled.message ?? 'not scheduled'})` : ''}`,
      };
    },
    { intervalMs: 250, timeoutMs, what: `${id} (${what}) to run`, onProgress: opts.onProgress, signal: opts.signal },
  );
}

/** Deletes the pod at once (no grace period) and waits until it is gone, so that its claims are free again. Idempotent. */
export async function deletePodAndWait(pod: OwnPod, opts: WaitOptions = {}): Promise<void> {
  try {
    await callKube({ verb: 'delete', resource: 'pods', group: '', namespace: pod.namespace, name: pod.name }, () =>
      pod.core.deleteNamespacedPod({ name: pod.name, namespace: pod.namespace, gracePeriodSeconds: 0 }),
    );
  } catch (err) {
    if (!isKubeStatus(err, 404)) throw err;
  }
  await pollUntil<void>(async () => ((await readOwnPod(pod)) ? { waiting: 'still there' } : { done: undefined }), {
    intervalMs: 250,
    timeoutMs: 120_000,
    what: `${pod.kind} ${pod.namespace}/${pod.name} to be gone`,
    onProgress: opts.onProgress,
    signal: opts.signal,
  });
}
