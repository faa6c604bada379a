// The Kubernetes cluster driver against the API server stand-in, over real HTTP through
// @kubernetes/client-node: the same calls it makes on a real cluster.
import {
  ApiException,
  AppsV1Api,
  PatchStrategy,
  setHeaderOptions,
  Watch,
  type KubeConfig,
} from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubernetesTargetSchema, type KubernetesTarget } from '../src/config/schema';
import {
  KubernetesClusterDriver,
  loadKubeConfig,
  REPLICAS_BEFORE_STOP_ANNOTATION,
} from '../src/drivers/cluster/kubernetes';
import { PermanentDriverError } from '../src/drivers/cluster/types';
import { KubernetesApiError } from '../src/drivers/kube/apiErrors';
import { readSecretValue } from '../src/drivers/kube/secrets';
import { startKubeApiStandIn, type KubeApiStandIn, type PodHooks } from './harness/kubeApiStandIn';

const SCALE_PATH = '/apis/apps/v1/namespaces/db/statefulsets/pg/scale';

/** A gate the stop hook waits on, so a test can hold pods in Terminating. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe('KubernetesClusterDriver (against the API server stand-in)', function () {
  this.timeout(30_000);
  let api: KubeApiStandIn;
  let dir: string;
  let target: KubernetesTarget;
  let kubeConfig: KubeConfig;
  let driver: KubernetesClusterDriver;
  let hookLog: string[];
  let stopGate: { promise: Promise<void>; open: () => void } | undefined;

  async function setUp(hooks: PodHooks = {}): Promise<void> {
    api = await startKubeApiStandIn({ readyDelayMs: 30, terminateDelayMs: 60, hooks });
    await api.addStatefulSet({
      namespace: 'db',
      name: 'pg',
      replicas: 2,
      labels: { app: 'pg' },
      volumeClaimTemplates: ['data'],
    });
    dir = await mkdtemp(join(tmpdir(), 'pgops-kube-'));
    await api.writeKubeconfig(join(dir, 'kubeconfig'));
    target = kubernetesTargetSchema.parse({
      kind: 'kubernetes',
      namespace: 'db',
      statefulSet: 'pg',
      replicas: 2,
      kubeconfig: join(dir, 'kubeconfig'),
      readyTimeoutSeconds: 10,
      stopTimeoutSeconds: 10,
    });
    kubeConfig = loadKubeConfig(target);
    driver = new KubernetesClusterDriver(target, kubeConfig);
  }

  beforeEach(async () => {
    hookLog = [];
    stopGate = undefined;
    await setUp({
      onPodStart: async (pod) => void hookLog.push(`start ${pod}`),
      onPodStop: async (pod) => {
        hookLog.push(`stop ${pod}`);
        await stopGate?.promise;
      },
    });
  });

  afterEach(async () => {
    stopGate?.open();
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });

  const writes = () => api.requests.filter((r) => r.method !== 'GET');
  const annotation = () => api.statefulSet('db', 'pg')?.metadata.annotations?.[REPLICAS_BEFORE_STOP_ANNOTATION];

  it('describes a running set: pods, desired and ready replicas', async () => {
    assert.deepEqual(await driver.describe(), {
      running: true,
      replicas: 2,
      readyReplicas: 2,
      members: ['pg-0', 'pg-1'],
    });
  });

  it('stops a 2-replica set through the scale subresource, records the count first and waits until no pod is left', async () => {
    const progress: string[] = [];
    const result = await driver.stop({ onProgress: (line) => progress.push(line) });

    assert.deepEqual(result, { replicasBefore: 2, alreadyStopped: false });
    assert.deepEqual(api.pods('db'), [], 'no pod is left when stop returns');
    assert.equal(api.statefulSet('db', 'pg')?.spec.replicas, 0);
    assert.equal(annotation(), '2');
    assert.deepEqual(
      writes().map((r) => `${r.method} ${r.path} ${r.status}`),
      ['PATCH /apis/apps/v1/namespaces/db/statefulsets/pg 200', `PUT ${SCALE_PATH} 200`],
      'the annotation is written before the scale-down, and replicas only through the scale subresource',
    );
    assert.deepEqual(writes()[0]?.body, { metadata: { annotations: { [REPLICAS_BEFORE_STOP_ANNOTATION]: '2' } } });
    assert.match(progress[0] ?? '', /^waiting for [12] pod\(s\) to terminate: pg-/);
    assert.deepEqual(
      hookLog.filter((l) => l.startsWith('stop')),
      ['stop pg-1', 'stop pg-0'],
      'the highest ordinal goes first',
    );
    assert.deepEqual(await driver.describe(), { running: false, replicas: 0, readyReplicas: 0, members: [] });
  });

  it('stop is idempotent: a second call writes nothing and reports the recorded count', async () => {
    await driver.stop();
    const writesAfterFirst = writes().length;
    assert.deepEqual(await driver.stop(), { replicasBefore: 2, alreadyStopped: true });
    assert.equal(writes().length, writesAfterFirst);
    assert.equal(await driver.recordedReplicas(), 2);
  });

  it('verifyQuiescent lists the PVCs of every replica of the stopped set', async () => {
    await driver.stop();
    assert.deepEqual(await driver.verifyQuiescent(), {
      noServerRunning: true,
      volumesKept: ['data-pg-0', 'data-pg-1'],
    });
  });

  it('verifyQuiescent fails naming a PVC deleted behind its back', async () => {
    await driver.stop();
    api.deletePersistentVolumeClaim('db', 'data-pg-1');
    await assert.rejects(driver.verifyQuiescent(), (err: Error) => {
      assert.ok(err instanceof PermanentDriverError);
      assert.match(err.message, /PersistentVolumeClaim db\/data-pg-1 of StatefulSet db\/pg is gone/);
      return true;
    });
  });

  it('verifyQuiescent refuses a running set, naming its pods', async () => {
    await assert.rejects(
      driver.verifyQuiescent(),
      /db\/pg is not quiescent \(spec.replicas is 2; pod\(s\) still present: pg-0, pg-1\)/,
    );
  });

  it('start with the recorded replica count scales back, waits for Ready and clears the record', async () => {
    await driver.stop();
    hookLog.length = 0;
    const replicas = (await driver.recordedReplicas()) ?? target.replicas;
    const progress: string[] = [];

    const result = await driver.start(replicas, { onProgress: (line) => progress.push(line) });

    assert.deepEqual(result, { readyReplicas: 2, alreadyRunning: false });
    const pods = api.pods('db');
    assert.deepEqual(
      pods.map((p) => p.metadata.name),
      ['pg-0', 'pg-1'],
    );
    assert.ok(
      pods.every((p) => p.status.conditions.some((c) => c.type === 'Ready' && c.status === 'True')),
      'both pods are Ready',
    );
    assert.equal(api.statefulSet('db', 'pg')?.status.readyReplicas, 2);
    assert.deepEqual(hookLog, ['start pg-0', 'start pg-1'], 'ordinal 0 starts first');
    assert.match(progress[0] ?? '', /^waiting for 2 ready replica\(s\)/);
    assert.equal(annotation(), undefined);
    assert.equal(await driver.recordedReplicas(), undefined);
  });

  it('start on a set that already runs ready is a no-op', async () => {
    assert.deepEqual(await driver.start(2), { readyReplicas: 2, alreadyRunning: true });
    assert.deepEqual(writes(), []);
  });

  it('retries a scale write that met a newer resourceVersion (409 Conflict)', async () => {
    api.injectScaleConflicts(1);
    assert.deepEqual(await driver.stop(), { replicasBefore: 2, alreadyStopped: false });
    const scaleWrites = api.requests.filter((r) => r.method === 'PUT' && r.path === SCALE_PATH);
    assert.deepEqual(
      scaleWrites.map((r) => r.status),
      [409, 200],
    );
    assert.equal(api.statefulSet('db', 'pg')?.spec.replicas, 0);
  });

  it('gives up with a retryable KubernetesApiError when every scale write conflicts', async () => {
    api.injectScaleConflicts(100);
    await assert.rejects(driver.stop(), (err: Error) => {
      assert.ok(err instanceof KubernetesApiError && !(err instanceof PermanentDriverError));
      assert.equal(err.code, 409);
      assert.match(err.message, /the object has been modified/);
      return true;
    });
    assert.equal(api.statefulSet('db', 'pg')?.spec.replicas, 2);
  });

  it('an unknown StatefulSet is a PermanentDriverError naming namespace and name', async () => {
    const lost = new KubernetesClusterDriver({ ...target, statefulSet: 'pg-typo' }, kubeConfig);
    await assert.rejects(lost.stop(), (err: Error) => {
      assert.ok(err instanceof PermanentDriverError);
      assert.match(err.message, /StatefulSet db\/pg-typo not found.*check the catalog/);
      return true;
    });
  });

  it('a missing RBAC permission is a PermanentDriverError naming verb and resource', async () => {
    api.forbid('update', 'statefulsets/scale');
    await assert.rejects(driver.stop(), (err: Error) => {
      assert.ok(err instanceof PermanentDriverError);
      assert.match(err.message, /may not "update" statefulsets\/scale \(API group apps\) in namespace db/);
      return true;
    });
    assert.equal(api.statefulSet('db', 'pg')?.spec.replicas, 2);
  });

  it('refused credentials (401) are a PermanentDriverError; an unknown context is named', async () => {
    const stranger = new KubernetesClusterDriver(
      target,
      loadKubeConfig({ ...target, context: 'stand-in-wrong-token' }),
    );
    await assert.rejects(
      stranger.describe(),
      (err: Error) => err instanceof PermanentDriverError && /401 Unauthorized/.test(err.message),
    );
    assert.throws(
      () => loadKubeConfig({ ...target, context: 'prod' }),
      /has no context "prod" \(its contexts: stand-in, stand-in-wrong-token\)/,
    );
  });

  it('stop honours an AbortSignal while pods terminate', async () => {
    stopGate = gate();
    const controller = new AbortController();
    const reason = new Error('activity cancelled');
    setTimeout(() => controller.abort(reason), 300);
    const started = Date.now();
    await assert.rejects(driver.stop({ signal: controller.signal }), (err) => err === reason);
    assert.ok(Date.now() - started < 2000, 'stopped waiting soon after the abort');
    const left = api.pods('db').map((p) => `${p.metadata.name}${p.metadata.deletionTimestamp ? ' terminating' : ''}`);
    assert.deepEqual(left, ['pg-0', 'pg-1 terminating'], 'pg-1 is held in Terminating, so pg-0 waits its turn');
  });

  it('stop times out with an error naming the pods left', async () => {
    stopGate = gate();
    const impatient = new KubernetesClusterDriver({ ...target, stopTimeoutSeconds: 1 }, kubeConfig);
    await assert.rejects(
      impatient.stop(),
      /db\/pg did not stop within 1 s \(waiting for 2 pod\(s\) to terminate: pg-0, pg-1\)/,
    );
  });

  it('restartPod replaces the pod with a new uid and waits until it is Ready', async () => {
    const oldUid = api.pods('db').find((p) => p.metadata.name === 'pg-1')?.metadata.uid;
    hookLog.length = 0;
    const { podName, uid } = await driver.restartPod(1);
    assert.equal(podName, 'pg-1');
    assert.notEqual(uid, oldUid);
    const pod = api.pods('db').find((p) => p.metadata.name === 'pg-1');
    assert.equal(pod?.metadata.uid, uid);
    assert.ok(pod?.status.conditions.some((c) => c.type === 'Ready' && c.status === 'True'));
    assert.deepEqual(hookLog, ['stop pg-1', 'start pg-1']);
  });

  it('restartPod refuses an ordinal the StatefulSet would not recreate', async () => {
    await assert.rejects(
      driver.restartPod(2),
      (err: Error) => err instanceof PermanentDriverError && /no pod with ordinal 2/.test(err.message),
    );
    assert.equal(writes().length, 0);
  });
});

describe('readSecretValue (against the API server stand-in)', () => {
  let api: KubeApiStandIn;
  let dir: string;
  let kubeConfig: KubeConfig;

  before(async () => {
    api = await startKubeApiStandIn();
    api.addSecret('db', 'pg-su', { password: 's3cret-é', other: 'x' });
    dir = await mkdtemp(join(tmpdir(), 'pgops-kube-'));
    await api.writeKubeconfig(join(dir, 'kubeconfig'));
    kubeConfig = loadKubeConfig(
      kubernetesTargetSchema.parse({
        kind: 'kubernetes',
        namespace: 'db',
        statefulSet: 'pg',
        replicas: 1,
        kubeconfig: join(dir, 'kubeconfig'),
      }),
    );
  });
  after(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('returns the decoded value, from the default or the given namespace', async () => {
    assert.equal(await readSecretValue(kubeConfig, 'db', { name: 'pg-su', key: 'password' }), 's3cret-é');
    assert.equal(
      await readSecretValue(kubeConfig, 'elsewhere', { name: 'pg-su', key: 'password', namespace: 'db' }),
      's3cret-é',
    );
  });

  it('names secret, key and namespace for a missing key, and never the values', async () => {
    await assert.rejects(readSecretValue(kubeConfig, 'db', { name: 'pg-su', key: 'pasword' }), (err: Error) => {
      assert.ok(err instanceof PermanentDriverError);
      assert.match(err.message, /Secret db\/pg-su has no key "pasword" \(its keys: password, other\)/);
      assert.doesNotMatch(err.message, /s3cret/);
      return true;
    });
  });

  it('names a missing secret', async () => {
    await assert.rejects(
      readSecretValue(kubeConfig, 'db', { name: 'pg-gone', key: 'password' }),
      (err: Error) => err instanceof PermanentDriverError && /Secret db\/pg-gone not found/.test(err.message),
    );
  });
});

describe('the API server stand-in rejects what the real server rejects', () => {
  let api: KubeApiStandIn;
  let dir: string;
  let apps: AppsV1Api;
  let kubeConfig: KubeConfig;

  before(async () => {
    api = await startKubeApiStandIn({ readyDelayMs: 10, terminateDelayMs: 10 });
    await api.addStatefulSet({ namespace: 'db', name: 'pg', replicas: 1, labels: { app: 'pg' } });
    dir = await mkdtemp(join(tmpdir(), 'pgops-kube-'));
    await api.writeKubeconfig(join(dir, 'kubeconfig'));
    kubeConfig = loadKubeConfig(
      kubernetesTargetSchema.parse({
        kind: 'kubernetes',
        namespace: 'db',
        statefulSet: 'pg',
        replicas: 1,
        kubeconfig: join(dir, 'kubeconfig'),
      }),
    );
    apps = kubeConfig.makeApiClient(AppsV1Api);
  });
  after(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function apiError(request: Promise<unknown>): Promise<{ code: number; status: Record<string, unknown> }> {
    try {
      await request;
    } catch (err) {
      assert.ok(err instanceof ApiException, `expected an ApiException, got ${String(err)}`);
      return { code: err.code, status: JSON.parse(String(err.body)) as Record<string, unknown> };
    }
    assert.fail('the request was accepted');
  }

  it('negative replicas on the scale subresource: 422 Invalid', async () => {
    const body = {
      apiVersion: 'autoscaling/v1',
      kind: 'Scale',
      metadata: { name: 'pg', namespace: 'db' },
      spec: { replicas: -1 },
    };
    const { code, status } = await apiError(
      apps.replaceNamespacedStatefulSetScale({ name: 'pg', namespace: 'db', body }),
    );
    assert.equal(code, 422);
    assert.equal(status.reason, 'Invalid');
    assert.match(String(status.message), /spec.replicas: Invalid value: -1/);
    assert.equal(api.statefulSet('db', 'pg')?.spec.replicas, 1);
  });

  it('a stale resourceVersion on the scale subresource: 409 Conflict', async () => {
    const body = {
      apiVersion: 'autoscaling/v1',
      kind: 'Scale',
      metadata: { name: 'pg', namespace: 'db', resourceVersion: '1' },
      spec: { replicas: 3 },
    };
    const { code, status } = await apiError(
      apps.replaceNamespacedStatefulSetScale({ name: 'pg', namespace: 'db', body }),
    );
    assert.deepEqual([code, status.kind, status.reason], [409, 'Status', 'Conflict']);
  });

  it('a missing object: 404 with a NotFound Status', async () => {
    const { code, status } = await apiError(apps.readNamespacedStatefulSet({ name: 'x', namespace: 'db' }));
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
    assert.equal((await apiError(apps.patchNamespacedStatefulSet({ name: 'pg', namespace: 'db', body }))).code, 400);
    const asJson = setHeaderOptions('Content-Type', 'application/json');
    assert.equal(
      (await apiError(apps.patchNamespacedStatefulSet({ name: 'pg', namespace: 'db', body }, asJson))).code,
      415,
    );
    const merged = await apps.patchNamespacedStatefulSet(
      { name: 'pg', namespace: 'db', body },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    assert.equal(merged.metadata?.annotations?.a, 'b');
  });

  it('every write moves resourceVersion, and a pod watch streams the scale-down', async () => {
    const before = Number(api.statefulSet('db', 'pg')?.metadata.resourceVersion);
    const events: string[] = [];
    const watching = await new Watch(kubeConfig).watch(
      '/api/v1/namespaces/db/pods',
      { labelSelector: 'app=pg' },
      (type: string, pod: { metadata?: { name?: string; deletionTimestamp?: unknown } }) =>
        events.push(
          `${type} ${pod.metadata?.name ?? ''}${type === 'MODIFIED' && pod.metadata?.deletionTimestamp ? ' terminating' : ''}`,
        ),
      () => {},
    );
    const body = {
      apiVersion: 'autoscaling/v1',
      kind: 'Scale',
      metadata: { name: 'pg', namespace: 'db' },
      spec: { replicas: 0 },
    };
    await apps.replaceNamespacedStatefulSetScale({ name: 'pg', namespace: 'db', body });
    const deadline = Date.now() + 5000;
    while (!events.includes('DELETED pg-0') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    watching.abort();
    assert.deepEqual(events, ['ADDED pg-0', 'MODIFIED pg-0 terminating', 'DELETED pg-0']);
    assert.ok(Number(api.statefulSet('db', 'pg')?.metadata.resourceVersion) > before);
  });
});
