// Objects tests create in the shared test cluster: a namespace per test (isolation), pre-bound
// PersistentVolumes so that volumeClaimTemplates bind (no provisioner runs), StatefulSets whose
// pods land on the kwok node, and ServiceAccounts with a Role, reached through their own token.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AppsV1Api,
  CoreV1Api,
  RbacAuthorizationV1Api,
  type V1PodSpec,
  type V1PolicyRule,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { pollUntil } from '../../src/drivers/waiting';
import { writeKubeconfig } from './kube/pki';
import type { KubeCluster } from './kubeCluster';
import { scratchDir } from './testEnv';

/** A fresh namespace `<prefix>-<random>`, ready for pods (its default ServiceAccount exists). */
export async function testNamespace(cluster: KubeCluster, prefix: string): Promise<string> {
  const name = `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
  const core = cluster.admin().makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name } } });
  await pollUntil(
    async () =>
      (await core.readNamespacedServiceAccount({ name: 'default', namespace: name }).catch(() => undefined))
        ? { done: undefined }
        : { waiting: 'no default ServiceAccount yet' },
    { intervalMs: 50, timeoutMs: 30_000, what: `namespace ${name}'s default ServiceAccount` },
  );
  return name;
}

/** One hostPath PersistentVolume per claim and the claim itself, bound to each other before any pod needs them. */
export async function preboundVolumes(cluster: KubeCluster, namespace: string, claims: string[]): Promise<void> {
  const core = cluster.admin().makeApiClient(CoreV1Api);
  for (const claim of claims) {
    const path = join(cluster.dir, 'volumes', namespace, claim);
    mkdirSync(path, { recursive: true });
    await core.createPersistentVolume({
      body: {
        metadata: { name: `${namespace}-${claim}`, labels: { 'pgops.test/namespace': namespace } },
        spec: {
          capacity: { storage: '1Gi' },
          accessModes: ['ReadWriteOnce'],
          persistentVolumeReclaimPolicy: 'Retain',
          storageClassName: '',
          hostPath: { path, type: 'Directory' },
          claimRef: { namespace, name: claim },
        },
      },
    });
    // The claim too, bound to it before any pod needs it: a pod the scheduler meets with an unbound
    // claim is parked as unschedulable and may not be tried again for minutes.
    await core.createNamespacedPersistentVolumeClaim({
      namespace,
      body: {
        metadata: { name: claim },
        spec: {
          accessModes: ['ReadWriteOnce'],
          resources: { requests: { storage: '1Gi' } },
          storageClassName: '',
          volumeName: `${namespace}-${claim}`,
        },
      },
    });
  }
  await pollUntil(
    async () => {
      const phases = await Promise.all(
        claims.map(async (name) => (await core.readNamespacedPersistentVolumeClaim({ name, namespace })).status?.phase),
      );
      return phases.every((p) => p === 'Bound') ? { done: undefined } : { waiting: phases.join(', ') };
    },
    { intervalMs: 100, timeoutMs: 30_000, what: `claims ${claims.join(', ')} to be Bound` },
  );
}

export interface StatefulSetSpec {
  namespace: string;
  name: string;
  replicas: number;
  /** Claim templates (1Gi each); their volumes are pre-bound for `replicas` ordinals. */
  volumeClaimTemplates?: string[];
  /** Extra pod spec fields (readiness gates come from podBackends.ts). */
  pod?: Partial<V1PodSpec>;
  /** Pod template finalizers (the harness's pod backends hold terminating pods with one). */
  finalizers?: string[];
}

export function statefulSetObject(spec: StatefulSetSpec): V1StatefulSet {
  const labels = { app: spec.name };
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: spec.name, namespace: spec.namespace, labels },
    spec: {
      replicas: spec.replicas,
      serviceName: spec.name,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels, finalizers: spec.finalizers },
        spec: {
          terminationGracePeriodSeconds: 30,
          containers: [{ name: 'postgres', image: 'postgres:15', ports: [{ name: 'postgres', containerPort: 5432 }] }],
          ...spec.pod,
        },
      },
      volumeClaimTemplates: (spec.volumeClaimTemplates ?? []).map((name) => ({
        metadata: { name },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
      })),
    },
  };
}

/** Creates the StatefulSet (with bound volumes for its claim templates) and waits for `replicas` Ready pods. */
export async function createStatefulSet(cluster: KubeCluster, spec: StatefulSetSpec): Promise<V1StatefulSet> {
  const claims = (spec.volumeClaimTemplates ?? []).flatMap((template) =>
    Array.from({ length: spec.replicas }, (_, ordinal) => `${template}-${spec.name}-${ordinal}`),
  );
  await preboundVolumes(cluster, spec.namespace, claims);
  const apps = cluster.admin().makeApiClient(AppsV1Api);
  const created = await apps.createNamespacedStatefulSet({ namespace: spec.namespace, body: statefulSetObject(spec) });
  await waitForReadyReplicas(cluster, spec.namespace, spec.name, spec.replicas);
  return created;
}

export async function waitForReadyReplicas(
  cluster: KubeCluster,
  namespace: string,
  name: string,
  replicas: number,
  timeoutMs = 60_000,
): Promise<void> {
  const apps = cluster.admin().makeApiClient(AppsV1Api);
  await pollUntil(
    async () => {
      const sts = await apps.readNamespacedStatefulSet({ name, namespace });
      const ready = sts.status?.readyReplicas ?? 0;
      const current = sts.status?.replicas ?? 0;
      return ready === replicas && current === replicas
        ? { done: undefined }
        : { waiting: `${ready} ready of ${current}` };
    },
    { intervalMs: 100, timeoutMs, what: `StatefulSet ${namespace}/${name} to have ${replicas} ready replica(s)` },
  ).catch(async (err: unknown) => {
    throw new Error(`${err instanceof Error ? err.message : String(err)}; ${await podsAndClaims(cluster, namespace)}`);
  });
}

/** What the pods and claims of a namespace look like, for a timeout message. */
async function podsAndClaims(cluster: KubeCluster, namespace: string): Promise<string> {
  const core = cluster.admin().makeApiClient(CoreV1Api);
  const pods = (await core.listNamespacedPod({ namespace })).items.map((p) => {
    // A condition that is not True says why (the scheduler's message names the taint or the resource).
    const conditions = (p.status?.conditions ?? [])
      .map((c) => `${c.type}=${c.status}${c.status !== 'True' && c.message ? ` (${c.reason}: ${c.message})` : ''}`)
      .join(',');
    return `${p.metadata?.name} ${p.status?.phase} node=${p.spec?.nodeName ?? '-'} ${conditions}${p.metadata?.deletionTimestamp ? ' terminating' : ''}`;
  });
  const claims = (await core.listNamespacedPersistentVolumeClaim({ namespace })).items.map(
    (c) => `${c.metadata?.name} ${c.status?.phase}`,
  );
  return `pods: ${pods.join('; ') || 'none'}; claims: ${claims.join('; ') || 'none'}`;
}

/**
 * A ServiceAccount in `namespace`, with a Role of `rules` bound to it when given, and a kubeconfig
 * that authenticates with its token (TokenRequest API, one hour).
 */
export async function serviceAccountKubeconfig(
  cluster: KubeCluster,
  namespace: string,
  name: string,
  rules?: V1PolicyRule[],
): Promise<string> {
  const kc = cluster.admin();
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  if (rules) {
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({ namespace, body: { metadata: { name }, rules } });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
        subjects: [{ kind: 'ServiceAccount', name, namespace }],
      },
    });
  }
  const token = await serviceAccountToken(cluster, namespace, name);
  return writeKubeconfig(join(cluster.dir, `${namespace}-${name}.kubeconfig`), cluster.server, cluster.caFile, [
    { name, namespace, user: { token } },
  ]);
}

export async function serviceAccountToken(cluster: KubeCluster, namespace: string, name: string): Promise<string> {
  const core = cluster.admin().makeApiClient(CoreV1Api);
  const request = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { expirationSeconds: 3600, audiences: [] } },
  });
  const token = request.status?.token;
  if (!token) throw new Error(`no token was issued for ServiceAccount ${namespace}/${name}`);
  return token;
}

/** A catalog target for StatefulSet `<namespace>/<statefulSet>` (one replica), reached as the admin. */
export function kubernetesTarget(
  cluster: KubeCluster,
  namespace: string,
  statefulSet: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return { kind: 'kubernetes', namespace, statefulSet, replicas: 1, kubeconfig: cluster.adminKubeconfig, ...extra };
}

/** Writes a catalog with `clusters` into a fresh scratch directory and returns its path. */
export async function writeCatalog(label: string, clusters: Record<string, unknown>): Promise<string> {
  const path = join(await scratchDir(label), 'pgops.yaml');
  writeFileSync(path, stringify({ clusters }));
  return path;
}
