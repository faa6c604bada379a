// PostgreSQL 15 StatefulSets on the real node, as the real-node suites build them: the image the
// harness imported, PostgreSQL as the container's main process, a preStop hook that asks for a
// fast shutdown (SIGTERM alone is PostgreSQL's "smart" shutdown, which waits for every session),
// readiness from pg_isready, and the helpers to make and remove such a StatefulSet.
import { AppsV1Api, CoreV1Api, type V1Container, type V1PodSpec, type V1Volume } from '@kubernetes/client-node';
import { pollUntil } from '../../../src/drivers/waiting';
import type { KubeCluster } from '../kubeCluster';
import { statefulSetObject, waitForReadyReplicas } from '../kubeObjects';
import { POSTGRES_GID, POSTGRES_IMAGE, POSTGRES_UID, realNodeHealth, realNodePod } from './realNode';

export interface RealNodePostgres {
  namespace: string;
  name: string;
  /** Where the claim `pgdata` is mounted; PGDATA is its `data` subdirectory. */
  pgdataMount?: string;
  /** Shell run when PGDATA holds no cluster yet (default: initdb with trust authentication). */
  init?: string;
  /** `-c name=value` settings on the postgres command line. */
  settings?: Record<string, string>;
  env?: V1Container['env'];
  extraMounts?: V1Container['volumeMounts'];
  volumes?: V1Volume[];
  /** Claim templates (default: `pgdata`), of this StorageClass when given (else pre-bound volumes). */
  volumeClaimTemplates?: string[];
  storageClass?: string;
}

const DEFAULT_MOUNT = '/var/lib/pgdata';

/** The pod spec of one PostgreSQL container on the real node. */
export function realNodePostgresPod(spec: RealNodePostgres): V1PodSpec {
  const mount = spec.pgdataMount ?? DEFAULT_MOUNT;
  const settings = { listen_addresses: '*', unix_socket_directories: '/tmp', ...spec.settings };
  const init = spec.init ?? 'initdb -D "$PGDATA" -U postgres --auth=trust >/dev/null';
  const quote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;
  return {
    ...realNodePod,
    terminationGracePeriodSeconds: 30,
    securityContext: { runAsUser: POSTGRES_UID, runAsGroup: POSTGRES_GID },
    containers: [
      {
        name: 'postgres',
        image: POSTGRES_IMAGE,
        imagePullPolicy: 'Never',
        env: [{ name: 'PGDATA', value: `${mount}/data` }, ...(spec.env ?? [])],
        command: [
          'bash',
          '-ec',
          `[ -f "$PGDATA/PG_VERSION" ] || { ${init}; }; exec postgres -D "$PGDATA" ` +
            Object.entries(settings)
              .map(([name, value]) => `-c ${quote(`${name}=${value}`)}`)
              .join(' '),
        ],
        ports: [{ name: 'postgres', containerPort: 5432 }],
        readinessProbe: { exec: { command: ['pg_isready', '-h', '127.0.0.1', '-U', 'postgres'] }, periodSeconds: 1 },
        lifecycle: { preStop: { exec: { command: ['pg_ctl', 'stop', '-m', 'fast', '-w', '-t', '25'] } } },
        volumeMounts: [{ name: 'pgdata', mountPath: mount }, ...(spec.extraMounts ?? [])],
      },
    ],
    volumes: spec.volumes,
  };
}

/**
 * A primary archiving with `cp` into `archiveInPod`, whose replicas' pg_basebackup may connect
 * from the node's pod network; `settings` come on top.
 */
export function archivingPrimary(
  archiveInPod: string,
  settings: Record<string, string> = {},
): Pick<RealNodePostgres, 'init' | 'settings'> {
  return {
    init:
      'initdb -D "$PGDATA" -U postgres --auth=trust >/dev/null; ' +
      'echo "host replication postgres 10.203.0.0/24 trust" >> "$PGDATA/pg_hba.conf"',
    settings: {
      wal_level: 'replica',
      archive_mode: 'on',
      archive_command: `cp %p ${archiveInPod}/%f`,
      track_commit_timestamp: 'on',
      ...settings,
    },
  };
}

/** Creates the StatefulSet (one replica) and waits until its pod is Ready. */
export async function createRealNodePostgres(
  cluster: KubeCluster,
  spec: RealNodePostgres,
  timeoutMs = 180_000,
): Promise<void> {
  const sts = statefulSetObject({
    namespace: spec.namespace,
    name: spec.name,
    replicas: 1,
    volumeClaimTemplates: spec.volumeClaimTemplates ?? ['pgdata'],
  });
  if (spec.storageClass)
    for (const template of sts.spec!.volumeClaimTemplates!) template.spec!.storageClassName = spec.storageClass;
  sts.spec!.template.spec = realNodePostgresPod(spec);
  await cluster.admin().makeApiClient(AppsV1Api).createNamespacedStatefulSet({ namespace: spec.namespace, body: sts });
  await waitForReadyReplicas(cluster, spec.namespace, spec.name, 1, timeoutMs).catch(async (err: unknown) => {
    throw new Error(`${err instanceof Error ? err.message : String(err)}; ${await realNodeHealth(cluster)}`);
  });
}

/** The IP of a running pod (pods on the real node reach each other on its bridge). */
export async function podIp(cluster: KubeCluster, namespace: string, name: string): Promise<string> {
  const pod = await cluster.admin().makeApiClient(CoreV1Api).readNamespacedPod({ name, namespace });
  const ip = pod.status?.podIP;
  if (!ip) throw new Error(`pod ${namespace}/${name} has no IP yet`);
  return ip;
}

/**
 * Deletes the StatefulSet and waits until its pods are gone: the real node is shared by the suites
 * that run after, and one of them counts the containerized postmasters.
 */
export async function removeStatefulSet(cluster: KubeCluster, namespace: string, name: string): Promise<void> {
  await cluster
    .admin()
    .makeApiClient(AppsV1Api)
    .deleteNamespacedStatefulSet({ name, namespace })
    .catch(() => undefined);
  const core = cluster.admin().makeApiClient(CoreV1Api);
  await pollUntil(
    async () => {
      const pods = (await core.listNamespacedPod({ namespace })).items.filter((p) => p.metadata?.labels?.app === name);
      for (const pod of pods)
        await core.deleteNamespacedPod({ name: pod.metadata!.name!, namespace }).catch(() => undefined);
      return pods.length === 0 ? { done: true } : { waiting: `${pods.length} pod(s) left` };
    },
    { intervalMs: 250, timeoutMs: 90_000, what: `the pods of ${namespace}/${name} to be gone` },
  );
}
