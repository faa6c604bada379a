// The Kubernetes cluster driver against a real API server (v1.33, with the real StatefulSet
// controller, scheduler, PV binder and RBAC) whose pods run on a kwok node. The harness holds
// each pod's deletion until its (here empty) backend has stopped, as a kubelet waits for the
// container to exit, so terminating pods are seen as on a real node.
import {
  AppsV1Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  Watch,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import { kubernetesTargetSchema, type KubernetesTarget } from '../src/config/schema';
import {
  KubernetesClusterDriver,
  loadKubeConfig,
  REPLICAS_BEFORE_STOP_ANNOTATION,
} from '../src/drivers/cluster/kubernetes';
import { PermanentDriverError } from '../src/drivers/cluster/types';
import { KubernetesApiError } from '../src/drivers/kube/apiErrors';
import { readSecretValue } from '../src/drivers/kube/secrets';
import { kubeCluster, type KubeCluster } from './harness/kubeCluster';
import { createStatefulSet, serviceAccountKubeconfig, testNamespace } from './harness/kubeObjects';
import { backedPodTemplate, backPods, type PodBackend } from './harness/podBackends';
import { SpyKubeConfig } from './harness/spyKubeConfig';

/** A gate the backend's stop waits on, so a test can hold pods in Terminating. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe('KubernetesClusterDriver (real API server, kwok node)', function () {
  this.timeout(60_000);
  let cluster: KubeCluster;
  let ns: string;
  let target: KubernetesTarget;
  let kubeConfig: SpyKubeConfig;
  let driver: KubernetesClusterDriver;
  let backend: PodBackend;
  let stopGate: { promise: Promise<void>; open: () => void } | undefined;

  const apps = () => cluster.admin().makeApiClient(AppsV1Api);
  const core = () => cluster.admin().makeApiClient(CoreV1Api);
  const statefulSet = () => apps().readNamespacedStatefulSet({ name: 'pg', namespace: ns });
  const annotation = async () => (await statefulSet()).metadata?.annotations?.[REPLICAS_BEFORE_STOP_ANNOTATION];
  const pods = async () =>
    (await core().listNamespacedPod({ namespace: ns, labelSelector: 'app=pg' })).items
      .map((p) => `${p.metadata?.name}${p.metadata?.deletionTimestamp ? ' terminating' : ''}`)
      .sort();
  const hookLog = () => backend.log.filter((l) => l.startsWith('start') || l.startsWith('stop'));

  before(async function () {
    this.timeout(180_000);
    cluster = await kubeCluster();
  });

  beforeEach(async () => {
    stopGate = undefined;
    ns = await testNamespace(cluster, 'drv');
    backend = await backPods(cluster, ns, 'pg', {
      start: async () => undefined,
      stop: async () => stopGate?.promise,
    });
    await createStatefulSet(cluster, {
      namespace: ns,
      name: 'pg',
      replicas: 2,
      volumeClaimTemplates: ['data'],
      ...backedPodTemplate,
    });
    target = kubernetesTargetSchema.parse({
      kind: 'kubernetes',
      namespace: ns,
      statefulSet: 'pg',
      replicas: 2,
      kubeconfig: cluster.adminKubeconfig,
      readyTimeoutSeconds: 30,
      stopTimeoutSeconds: 30,
    });
    kubeConfig = SpyKubeConfig.fromFile(cluster.adminKubeconfig);
    driver = new KubernetesClusterDriver(target, kubeConfig);
    backend.log.length = 0;
  });

  afterEach(async () => {
    stopGate?.open();
    await backend.close();
  });

  const scalePath = () => `/apis/apps/v1/namespaces/${ns}/statefulsets/pg/scale`;

  it('describes a running set: pods, desired and ready replicas', async () => {
    assert.deepEqual(await driver.describe(), {
      running: true,
      replicas: 2,
      readyReplicas: 2,
      members: ['pg-0', 'pg-1'],
    });
  });

  it('stops a 2-replica set through the scale subresource, records the count first and waits until no pod is left', async () => {
    const seen: string[] = [];
    const watching = await new Watch(cluster.admin()).watch(
      `/apis/apps/v1/namespaces/${ns}/statefulsets`,
      { fieldSelector: 'metadata.name=pg' },
      (_type: string, sts: V1StatefulSet) =>
        seen.push(`${sts.spec?.replicas}/${sts.metadata?.annotations?.[REPLICAS_BEFORE_STOP_ANNOTATION] ?? '-'}`),
      () => undefined,
    );
    const progress: string[] = [];
    const result = await driver.stop({ onProgress: (line) => progress.push(line) });
    watching.abort();

    assert.deepEqual(result, { replicasBefore: 2, alreadyStopped: false });
    assert.deepEqual(await pods(), [], 'no pod is left when stop returns');
    assert.equal((await statefulSet()).spec?.replicas, 0);
    assert.equal(await annotation(), '2');
    assert.deepEqual(
      kubeConfig.writes(),
      [`PATCH /apis/apps/v1/namespaces/${ns}/statefulsets/pg`, `PUT ${scalePath()}`],
      'the annotation is written before the scale-down, and replicas only through the scale subresource',
    );
    assert.ok(!seen.includes('0/-'), `the server never held replicas 0 without the record: ${seen.join(' ')}`);
    assert.match(progress[0] ?? '', /^waiting for [12] pod\(s\) to terminate: pg-/);
    assert.deepEqual(hookLog(), ['stop pg-1', 'stop pg-0'], 'the highest ordinal goes first');
    assert.deepEqual(await driver.describe(), { running: false, replicas: 0, readyReplicas: 0, members: [] });
  });

  it('stop is idempotent: a second call writes nothing and reports the recorded count', async () => {
    await driver.stop();
    const writesAfterFirst = kubeConfig.writes().length;
    const version = (await statefulSet()).metadata?.resourceVersion;
    assert.deepEqual(await driver.stop(), { replicasBefore: 2, alreadyStopped: true });
    assert.equal(kubeConfig.writes().length, writesAfterFirst);
    assert.equal((await statefulSet()).metadata?.resourceVersion, version);
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
    await core().deleteNamespacedPersistentVolumeClaim({ name: 'data-pg-1', namespace: ns });
    await assert.rejects(driver.verifyQuiescent(), (err: Error) => {
      assert.ok(err instanceof PermanentDriverError);
      // The pvc-protection finalizer may still hold it for a moment: "being deleted", else "gone".
      assert.match(
        err.message,
        new RegExp(`PersistentVolumeClaim ${ns}/data-pg-1 of StatefulSet ${ns}/pg is (gone|being deleted)`),
      );
      return true;
    });
  });

  it('verifyQuiescent refuses a running set, naming its pods', async () => {
    await assert.rejects(
      driver.verifyQuiescent(),
      new RegExp(`${ns}/pg is not quiescent \\(spec.replicas is 2; pod\\(s\\) still present: pg-0, pg-1\\)`),
    );
  });

  it('start with the recorded replica count scales back, waits for Ready and clears the record', async () => {
    await driver.stop();
    backend.log.length = 0;
    const replicas = (await driver.recordedReplicas()) ?? target.replicas;
    const progress: string[] = [];

    const result = await driver.start(replicas, { onProgress: (line) => progress.push(line) });

    assert.deepEqual(result, { readyReplicas: 2, alreadyRunning: false });
    assert.deepEqual(await pods(), ['pg-0', 'pg-1']);
    assert.equal((await statefulSet()).status?.readyReplicas, 2);
    assert.deepEqual(hookLog(), ['start pg-0', 'start pg-1'], 'ordinal 0 starts first (OrderedReady)');
    assert.match(progress[0] ?? '', /^waiting for 2 ready replica\(s\)/);
    assert.equal(await annotation(), undefined);
    assert.equal(await driver.recordedReplicas(), undefined);
  });

  it('start on a set that already runs ready is a no-op', async () => {
    assert.deepEqual(await driver.start(2), { readyReplicas: 2, alreadyRunning: true });
    assert.deepEqual(kubeConfig.writes(), []);
  });

  /** Before each scale write, another client changes the StatefulSet: the write's resourceVersion is stale. */
  function concurrentWriterBeforeScaleWrites(times: number): () => number {
    let written = 0;
    kubeConfig.beforeRequest = async (request) => {
      if (request.method !== 'PUT' || request.path !== scalePath() || written >= times) return;
      written++;
      await apps().patchNamespacedStatefulSet(
        { name: 'pg', namespace: ns, body: { metadata: { labels: { touched: String(written) } } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    };
    return () => written;
  }

  it('retries a scale write that met a concurrent write (a real 409 Conflict)', async () => {
    const written = concurrentWriterBeforeScaleWrites(1);
    assert.deepEqual(await driver.stop(), { replicasBefore: 2, alreadyStopped: false });
    assert.equal(written(), 1);
    assert.equal(kubeConfig.writes().filter((w) => w === `PUT ${scalePath()}`).length, 2, 'one 409, one success');
    assert.equal((await statefulSet()).spec?.replicas, 0);
  });

  it('gives up with a retryable KubernetesApiError when every scale write conflicts', async () => {
    concurrentWriterBeforeScaleWrites(100);
    await assert.rejects(driver.stop(), (err: Error) => {
      assert.ok(err instanceof KubernetesApiError && !(err instanceof PermanentDriverError));
      assert.equal(err.code, 409);
      assert.match(
        err.message,
        /Conflict.*the object has been modified; please apply your changes to the latest version/,
      );
      return true;
    });
    assert.equal((await statefulSet()).spec?.replicas, 2);
  });

  it('an unknown StatefulSet is a PermanentDriverError naming namespace and name', async () => {
    const lost = new KubernetesClusterDriver({ ...target, statefulSet: 'pg-typo' }, kubeConfig);
    await assert.rejects(lost.stop(), (err: Error) => {
      assert.ok(err instanceof PermanentDriverError);
      assert.match(err.message, new RegExp(`StatefulSet ${ns}/pg-typo not found.*check the catalog`));
      return true;
    });
  });

  it('a ServiceAccount whose Role lacks a rule gets the real 403, named as a missing permission', async () => {
    const kubeconfig = await serviceAccountKubeconfig(cluster, ns, 'no-scale-update', [
      { apiGroups: ['apps'], resources: ['statefulsets'], verbs: ['get', 'patch'] },
      { apiGroups: ['apps'], resources: ['statefulsets/scale'], verbs: ['get'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['list', 'get'] },
    ]);
    const limited = new KubernetesClusterDriver({ ...target, kubeconfig }, loadKubeConfig({ ...target, kubeconfig }));
    await assert.rejects(limited.stop(), (err: Error) => {
      assert.ok(err instanceof PermanentDriverError);
      assert.match(
        err.message,
        new RegExp(`may not "update" statefulsets/scale \\(API group apps\\) in namespace ${ns}`),
      );
      assert.match(
        err.message,
        new RegExp(
          `User "system:serviceaccount:${ns}:no-scale-update" cannot update resource "statefulsets/scale" in API group "apps" in the namespace "${ns}"`,
        ),
      );
      return true;
    });
    assert.equal((await statefulSet()).spec?.replicas, 2);
  });

  it('refused credentials (401) are a PermanentDriverError; an unknown context is named', async () => {
    const stranger = new KubernetesClusterDriver(target, loadKubeConfig({ ...target, context: 'wrong-token' }));
    await assert.rejects(
      stranger.describe(),
      (err: Error) => err instanceof PermanentDriverError && /401 Unauthorized/.test(err.message),
    );
    assert.throws(
      () => loadKubeConfig({ ...target, context: 'prod' }),
      /has no context "prod" \(its contexts: admin, wrong-token\)/,
    );
  });

  it('stop honours an AbortSignal while pods terminate', async () => {
    stopGate = gate();
    const controller = new AbortController();
    const reason = new Error('activity cancelled');
    setTimeout(() => controller.abort(reason), 1000);
    const started = Date.now();
    await assert.rejects(driver.stop({ signal: controller.signal }), (err) => err === reason);
    assert.ok(Date.now() - started < 3000, 'stopped waiting soon after the abort');
    assert.deepEqual(await pods(), ['pg-0', 'pg-1 terminating'], 'pg-1 is held in Terminating, so pg-0 waits its turn');
  });

  it('stop times out with an error naming the pods left', async () => {
    stopGate = gate();
    const impatient = new KubernetesClusterDriver({ ...target, stopTimeoutSeconds: 1 }, kubeConfig);
    await assert.rejects(
      impatient.stop(),
      new RegExp(`${ns}/pg did not stop within 1 s \\(waiting for 2 pod\\(s\\) to terminate: pg-0, pg-1\\)`),
    );
  });

  it('restartPod replaces the pod with a new uid and waits until it is Ready', async () => {
    const oldUid = (await core().readNamespacedPod({ name: 'pg-1', namespace: ns })).metadata?.uid;
    const { podName, uid } = await driver.restartPod(1);
    assert.equal(podName, 'pg-1');
    assert.notEqual(uid, oldUid);
    const pod = await core().readNamespacedPod({ name: 'pg-1', namespace: ns });
    assert.equal(pod.metadata?.uid, uid);
    assert.ok(pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    assert.deepEqual(hookLog(), ['stop pg-1', 'start pg-1']);
  });

  it('restartPod refuses an ordinal the StatefulSet would not recreate', async () => {
    await assert.rejects(
      driver.restartPod(2),
      (err: Error) => err instanceof PermanentDriverError && /no pod with ordinal 2/.test(err.message),
    );
    assert.deepEqual(kubeConfig.writes(), []);
  });
});

describe('readSecretValue (real API server)', () => {
  let ns: string;
  let kubeConfig: ReturnType<typeof loadKubeConfig>;

  before(async function () {
    this.timeout(180_000);
    const cluster = await kubeCluster();
    ns = await testNamespace(cluster, 'secret');
    await cluster
      .admin()
      .makeApiClient(CoreV1Api)
      .createNamespacedSecret({
        namespace: ns,
        body: { metadata: { name: 'pg-su' }, stringData: { password: 's3cret-é', other: 'x' } },
      });
    kubeConfig = cluster.admin();
  });

  it('returns the decoded value, from the default or the given namespace', async () => {
    assert.equal(await readSecretValue(kubeConfig, ns, { name: 'pg-su', key: 'password' }), 's3cret-é');
    assert.equal(
      await readSecretValue(kubeConfig, 'default', { name: 'pg-su', key: 'password', namespace: ns }),
      's3cret-é',
    );
  });

  it('names secret, key and namespace for a missing key, and never the values', async () => {
    await assert.rejects(readSecretValue(kubeConfig, ns, { name: 'pg-su', key: 'pasword' }), (err: Error) => {
      assert.ok(err instanceof PermanentDriverError);
      assert.match(err.message, new RegExp(`Secret ${ns}/pg-su has no key "pasword" \\(its keys: other, password\\)`));
      assert.doesNotMatch(err.message, /s3cret/);
      return true;
    });
  });

  it('names a missing secret', async () => {
    await assert.rejects(
      readSecretValue(kubeConfig, ns, { name: 'pg-gone', key: 'password' }),
      (err: Error) =>
        err instanceof PermanentDriverError && new RegExp(`Secret ${ns}/pg-gone not found`).test(err.message),
    );
  });
});
