// The start of the suites on the real node with storage kind "csi": the CSI driver the harness
// plays, the StatefulSet of kubeBackupFixture on its StorageClass (skipped, saying why, without a
// real node or the snapshot-controller), and the worker's ServiceAccount with deploy/'s rules.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { RbacAuthorizationV1Api, type KubernetesObject, type V1PolicyRule } from '@kubernetes/client-node';
import type { KubeCluster } from '../kubeCluster';
import { serviceAccountKubeconfig } from '../kubeObjects';
import { kubeBackupFixture, type KubeBackupFixture } from '../kubeBackupFixture';
import { parseManifests } from './manifests';
import { POSTGRES_GID, POSTGRES_UID } from './realNode';
import { realNodeOrSkip } from './realNodeSuite';
import { CSI_SNAPSHOT_CLASS, CSI_STORAGE_CLASS, csiHostpath } from './csiHostpath';

export async function csiBackupFixtureOrSkip(
  ctx: Mocha.Context,
  prefix: string,
): Promise<{ cluster: KubeCluster; fx: KubeBackupFixture }> {
  const started = await realNodeOrSkip(ctx);
  const cluster = started.cluster;
  if (!cluster.daemons.some((d) => d.name === 'snapshot-controller')) {
    console.log('      skipped: the snapshot-controller was not built');
    ctx.skip();
  }
  const csi = await csiHostpath(cluster, started.node, { uid: POSTGRES_UID, gid: POSTGRES_GID });
  const fx = await kubeBackupFixture(
    cluster,
    prefix,
    CSI_STORAGE_CLASS,
    { kind: 'csi', volumeSnapshotClass: CSI_SNAPSHOT_CLASS },
    () => `CSI driver: ${csi.log.join('\n')}`,
  );
  return { cluster, fx };
}

/**
 * A kubeconfig of the ServiceAccount pgops-worker in `ns` with the rules of deploy/worker-rbac.yaml's
 * Roles `roles` (each rule through `adjust`) and its ClusterRole pgops-worker-volumes.
 */
export async function deployRulesKubeconfig(
  cluster: KubeCluster,
  ns: string,
  roles: string[],
  adjust: (rule: V1PolicyRule) => V1PolicyRule = (rule) => rule,
): Promise<string> {
  const deploy = parseManifests(
    readFileSync(resolve(__dirname, '..', '..', '..', 'deploy', 'worker-rbac.yaml'), 'utf8'),
  );
  const rules = (kind: string, name: string) =>
    (deploy.find((o) => o.kind === kind && o.metadata?.name === name) as KubernetesObject & { rules: V1PolicyRule[] })
      .rules;
  const kubeconfig = await serviceAccountKubeconfig(
    cluster,
    ns,
    'pgops-worker',
    roles.flatMap((role) => rules('Role', role)).map(adjust),
  );
  const api = cluster.admin().makeApiClient(RbacAuthorizationV1Api);
  const name = `pgops-worker-volumes-${ns}`;
  await api.createClusterRole({ body: { metadata: { name }, rules: rules('ClusterRole', 'pgops-worker-volumes') } });
  await api.createClusterRoleBinding({
    body: {
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects: [{ kind: 'ServiceAccount', name: 'pgops-worker', namespace: ns }],
    },
  });
  return kubeconfig;
}
