// Where a StatefulSet keeps its database: the PostgreSQL container, PGDATA inside it, and the
// claims of its first pod that the container mounts (one per volumeClaimTemplate). Backups
// snapshot exactly these claims; claims the pod template names directly (a shared WAL archive,
// say) are not the database's own and are never snapshotted or rolled back.
import { posix } from 'node:path';
import type { V1Container, V1PodSpec, V1StatefulSet } from '@kubernetes/client-node';
import type { KubernetesTarget } from '../../config/schema';
import { PermanentDriverError } from '../cluster/types';

/** The data directory of the official image and of Debian-based ones that follow it. */
export const DEFAULT_CONTAINER_PGDATA = '/var/lib/postgresql/data';

export interface ClaimMount {
  /** The volumeClaimTemplate's name. */
  template: string;
  /** The claim of the first pod: `<template>-<statefulset>-<ordinal>`. */
  claim: string;
  mountPath: string;
  subPath?: string;
  readOnly?: boolean;
}

export interface StatefulSetLayout {
  statefulSet: string;
  namespace: string;
  /** The first pod: `<statefulset>-<first ordinal>`. */
  firstPod: string;
  container: V1Container;
  pgdata: string;
  /** Claims of the first pod mounted in the container, the data claim first. */
  claims: ClaimMount[];
  /** The claim whose mount holds PGDATA. */
  dataClaim: ClaimMount;
  podSpec: V1PodSpec;
  /** The claim templates by name (a restored claim is made from its template). */
  templates: Map<string, NonNullable<NonNullable<V1StatefulSet['spec']>['volumeClaimTemplates']>[number]>;
}

function within(path: string, dir: string): boolean {
  const rel = posix.relative(dir, path);
  return rel === '' || (!rel.startsWith('..') && !posix.isAbsolute(rel));
}

export function statefulSetLayout(sts: V1StatefulSet, target: KubernetesTarget): StatefulSetLayout {
  const id = `StatefulSet ${target.namespace}/${target.statefulSet}`;
  const podSpec = sts.spec?.template.spec;
  const containers = podSpec?.containers ?? [];
  const container = target.container
    ? containers.find((c) => c.name === target.container)
    : (containers.find((c) => c.name === 'postgres') ?? containers[0]);
  if (!podSpec || !container)
    throw new PermanentDriverError(
      `${id} has no container ${target.container ? `"${target.container}"` : ''} (its containers: ${containers.map((c) => c.name).join(', ') || 'none'}): set target.container in the catalog`,
    );
  if (!container.image) throw new PermanentDriverError(`${id}: container "${container.name}" names no image`);
  const pgdata =
    target.pgdata ?? container.env?.find((e) => e.name === 'PGDATA' && e.value)?.value ?? DEFAULT_CONTAINER_PGDATA;
  const firstPod = `${target.statefulSet}-${sts.spec?.ordinals?.start ?? 0}`;
  const templates = new Map((sts.spec?.volumeClaimTemplates ?? []).map((t) => [t.metadata?.name ?? '', t]));
  const claims: ClaimMount[] = [];
  for (const mount of container.volumeMounts ?? []) {
    if (!templates.has(mount.name)) continue;
    claims.push({
      template: mount.name,
      claim: `${mount.name}-${firstPod}`,
      mountPath: mount.mountPath,
      subPath: mount.subPath,
      readOnly: mount.readOnly,
    });
  }
  const holding = claims
    .filter((c) => within(pgdata, c.mountPath))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  if (!holding)
    throw new PermanentDriverError(
      `${id}: PGDATA ${pgdata} is not on any volume from its volumeClaimTemplates (container "${container.name}" mounts ${claims.map((c) => `${c.claim} at ${c.mountPath}`).join(', ') || 'none'}), so a snapshot of its claims would not hold the database. Set target.pgdata in the catalog to PGDATA inside the container.`,
    );
  return {
    statefulSet: target.statefulSet,
    namespace: target.namespace,
    firstPod,
    container,
    pgdata,
    claims: [holding, ...claims.filter((c) => c !== holding)],
    dataClaim: holding,
    podSpec,
    templates,
  };
}
