// Kubernetes manifests for the test cluster: parsed from YAML, and applied with server-side apply
// (or its dry run), CRDs waited on until the server serves them.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig, KubernetesObjectApi, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { pollUntil } from '../../../src/drivers/waiting';

/** Every manifest of the YAML files in `dir` (the CRDs build.sh copied). */
export function crdManifests(dir: string): KubernetesObject[] {
  if (!existsSync(dir)) throw new Error(`${dir} is missing: run \`bash scripts/k8s/build.sh\``);
  return readdirSync(dir)
    .filter((file) => file.endsWith('.yaml'))
    .flatMap((file) => parseManifests(readFileSync(join(dir, file), 'utf8')));
}

export function parseManifests(text: string): KubernetesObject[] {
  return parseAllDocuments(text)
    .map((doc) => doc.toJS() as KubernetesObject | null)
    .filter((o): o is KubernetesObject => o !== null && typeof o === 'object' && 'kind' in o);
}

/** Creates (or server-side applies) every object; CRDs are waited on until Established. */
export async function applyManifests(kc: KubeConfig, objects: KubernetesObject[], dryRun = false): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  for (const object of objects) {
    await api.patch(object, undefined, dryRun ? 'All' : undefined, 'pgops-tests', true, PatchStrategy.ServerSideApply);
  }
  if (dryRun) return;
  for (const crd of objects.filter((o) => o.kind === 'CustomResourceDefinition')) {
    await pollUntil(
      async () => {
        const read = (await api.read({
          apiVersion: 'apiextensions.k8s.io/v1',
          kind: 'CustomResourceDefinition',
          metadata: { name: crd.metadata?.name ?? '' },
        })) as KubernetesObject & { status?: { conditions?: { type: string; status: string }[] } };
        const established = read.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
        return established ? { done: undefined } : { waiting: 'not Established' };
      },
      { intervalMs: 50, timeoutMs: 30_000, what: `CRD ${crd.metadata?.name} to be Established` },
    );
  }
}
