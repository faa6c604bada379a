// What the real API server answers to the calls and mistakes the driver may make, through
// @kubernetes/client-node: the facts apiErrors.ts and the driver's retries rely on. These used
// to be rules a hand-written stand-in imitated; now the server itself says them.
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  Watch,
  type KubeConfig,
  type V1ConfigMap,
  type V1Pod,
} from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import { kubeCluster, type KubeCluster } from './harness/kubeCluster';
import { createStatefulSet, statefulSetObject, testNamespace } from './harness/kubeObjects';

async function apiError(request: Promise<unknown>): Promise<{ code: number; status: Record<string, unknown> }> {
  try {
    await request;
  } catch (err) {
    assert.ok(err instanceof ApiException, `expected an ApiException, got ${String(err)}`);
    return { code: err.code, status: JSON.parse(String(err.body)) as Record<string, unknown> };
  }
  assert.fail('the request was accepted');
}

const scale = (ns: string, replicas: number, resourceVersion?: string) => ({
  apiVersion: 'autoscaling/v1',
  kind: 'Scale',
  metadata: { name: 'pg', namespace: ns, resourceVersion },
  spec: { replicas },
});

describe('the real API server: answers the driver relies on', function () {
  this.timeout(60_000);
  let cluster: KubeCluster;
  let kc: KubeConfig;
  let apps: AppsV1Api;
  let ns: string;

  before(async function () {
    this.timeout(180_000);
    cluster = await kubeCluster();
    kc = cluster.admin();
    apps = kc.makeApiClient(AppsV1Api);
    ns = await testNamespace(cluster, 'api');
    await createStatefulSet(cluster, { namespace: ns, name: 'pg', replicas: 1 });
  });

  it('negative replicas on the scale subresource: 422 Invalid', async () => {
    const { code, status } = await apiError(
      apps.replaceNamespacedStatefulSetScale({ name: 'pg', namespace: ns, body: scale(ns, -1) }),
    );
    assert.equal(code, 422);
    assert.equal(status.reason, 'Invalid');
    assert.match(String(status.message), /spec.replicas: Invalid value: -1/);
    assert.equal((await apps.readNamespacedStatefulSet({ name: 'pg', namespace: ns })).spec?.replicas, 1);
  });

  it('an invalid object (selector not matching the template labels): 422 Invalid naming the field', async () => {
    const body = statefulSetObject({ namespace: ns, name: 'bad', replicas: 1 });
    body.spec!.selector = { matchLabels: { app: 'other' } };
    const { code, status } = await apiError(apps.createNamespacedStatefulSet({ namespace: ns, body }));
    assert.equal(code, 422);
    assert.equal(status.reason, 'Invalid');
    assert.match(
      String(status.message),
      /spec.template.metadata.labels: Invalid value.*`selector` does not match template `labels`/,
    );
  });

  it('a stale resourceVersion on the scale subresource: 409 Conflict', async () => {
    const current = await apps.readNamespacedStatefulSetScale({ name: 'pg', namespace: ns });
    await apps.patchNamespacedStatefulSet(
      { name: 'pg', namespace: ns, body: { metadata: { labels: { touched: 'yes' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const { code, status } = await apiError(
      apps.replaceNamespacedStatefulSetScale({
        name: 'pg',
        namespace: ns,
        body: scale(ns, 3, current.metadata?.resourceVersion),
      }),
    );
    assert.deepEqual([code, status.kind, status.reason], [409, 'Status', 'Conflict']);
    assert.match(
      String(status.message),
      /Operation cannot be fulfilled on statefulsets.apps "pg": the object has been modified/,
    );
  });

  it('a missing object: 404 with a NotFound Status', async () => {
    const { code, status } = await apiError(apps.readNamespacedStatefulSet({ name: 'x', namespace: ns }));
    assert.equal(code, 404);
    assert.deepEqual(
      {
        kind: status.kind,
        apiVersion: status.apiVersion,
        status: status.status,
        reason: status.reason,
        code: status.code,
        message: status.message,
      },
      {
        kind: 'Status',
        apiVersion: 'v1',
        status: 'Failure',
        reason: 'NotFound',
        code: 404,
        message: 'statefulsets.apps "x" not found',
      },
    );
  });

  it('a merge-style body sent as the default JSON patch: 400; an unknown patch type: 415', async () => {
    const body = { metadata: { annotations: { a: 'b' } } };
    const asJsonPatch = await apiError(apps.patchNamespacedStatefulSet({ name: 'pg', namespace: ns, body }));
    assert.equal(asJsonPatch.code, 400);
    const asJson = setHeaderOptions('Content-Type', 'application/json');
    assert.equal(
      (await apiError(apps.patchNamespacedStatefulSet({ name: 'pg', namespace: ns, body }, asJson))).code,
      415,
    );
    const merged = await apps.patchNamespacedStatefulSet(
      { name: 'pg', namespace: ns, body },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    assert.equal(merged.metadata?.annotations?.a, 'b');
  });

  it('a pod watch streams the scale-down: added, terminating, deleted', async () => {
    const before = await kc.makeApiClient(AppsV1Api).readNamespacedStatefulSet({ name: 'pg', namespace: ns });
    const events: string[] = [];
    const watching = await new Watch(kc).watch(
      `/api/v1/namespaces/${ns}/pods`,
      { labelSelector: 'app=pg' },
      (type: string, pod: V1Pod) =>
        events.push(`${type} ${pod.metadata?.name ?? ''}${pod.metadata?.deletionTimestamp ? ' terminating' : ''}`),
      () => {},
    );
    await apps.replaceNamespacedStatefulSetScale({ name: 'pg', namespace: ns, body: scale(ns, 0) });
    const deadline = Date.now() + 10_000;
    while (!events.includes('DELETED pg-0 terminating') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    watching.abort();
    assert.equal(events[0], 'ADDED pg-0');
    assert.ok(events.includes('MODIFIED pg-0 terminating'), events.join(', '));
    assert.equal(events.at(-1), 'DELETED pg-0 terminating');
    const after = await apps.readNamespacedStatefulSet({ name: 'pg', namespace: ns });
    assert.ok(Number(after.metadata?.resourceVersion) > Number(before.metadata?.resourceVersion));
  });

  it('a watch from an expired resourceVersion gets 410 Gone (Expired); a new list and a watch from its version resume', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    const path = `/api/v1/namespaces/${ns}/configmaps`;
    const expired = await new Promise<{ type: string; status: Record<string, unknown> }>((resolve, reject) => {
      void new Watch(kc)
        .watch(
          path,
          { resourceVersion: '1' },
          (type: string, status: Record<string, unknown>) => resolve({ type, status }),
          reject,
        )
        .catch(reject);
    });
    assert.equal(expired.type, 'ERROR');
    assert.deepEqual([expired.status.code, expired.status.reason], [410, 'Expired']);
    assert.match(String(expired.status.message), /^too old resource version: 1 \(\d+\)$/);

    const list = await core.listNamespacedConfigMap({ namespace: ns });
    const seen: string[] = [];
    const resumed = await new Watch(kc).watch(
      path,
      { resourceVersion: list.metadata?.resourceVersion },
      (type: string, cm: V1ConfigMap) => seen.push(`${type} ${cm.metadata?.name}`),
      () => undefined,
    );
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'after-resume' } } });
    for (let waited = 0; seen.length === 0 && waited < 5000; waited += 20) await new Promise((r) => setTimeout(r, 20));
    resumed.abort();
    assert.deepEqual(seen, ['ADDED after-resume'], 'only what changed after the list, nothing replayed');
  });
});
