// The project's deploy/ manifests as objects, and their namespaces (db, rook-ceph) moved to a
// test's own: the suites that apply them to the real API server share these.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { parseManifests } from './manifests';

export const DEPLOY_DIR = resolve(__dirname, '..', '..', '..', 'deploy');

/** Every .yaml under deploy/, each with its path relative to deploy/. */
export function deployManifests(dir = DEPLOY_DIR): { file: string; objects: KubernetesObject[] }[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return deployManifests(path);
    if (!entry.name.endsWith('.yaml')) return [];
    return [{ file: path.slice(DEPLOY_DIR.length + 1), objects: parseManifests(readFileSync(path, 'utf8')) }];
  });
}

/** The objects of one deploy/ file. */
export function deployFile(file: string): KubernetesObject[] {
  const found = deployManifests().find((m) => m.file === file);
  if (!found) throw new Error(`deploy/${file} is missing`);
  return found.objects;
}

/** The manifests' namespaces (db, rook-ceph) mapped to this test's own, in objects and RoleBinding subjects. */
export function relocate(objects: KubernetesObject[], namespaces: Record<string, string>): KubernetesObject[] {
  const moved = structuredClone(objects) as (KubernetesObject & { subjects?: { namespace?: string }[] })[];
  for (const object of moved) {
    const ns = object.metadata?.namespace;
    if (ns && object.metadata) object.metadata.namespace = namespaces[ns] ?? ns;
    for (const subject of object.subjects ?? [])
      subject.namespace = namespaces[subject.namespace ?? ''] ?? subject.namespace;
  }
  return moved;
}
