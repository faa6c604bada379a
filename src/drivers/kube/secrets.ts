// Reads one value of a Kubernetes Secret (the catalog references secrets, never inlines them).
// The value never appears in an error message or a log line; key names may, values may not.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { PermanentDriverError } from '../cluster/types';
import { callKube, isKubeStatus } from './apiErrors';

export interface SecretKeyRef {
  name: string;
  key: string;
  /** Defaults to the namespace passed to readSecretValue (the cluster's own). */
  namespace?: string;
}

/** Returns the decoded (UTF-8) value of `ref.key` in Secret `ref.name`. */
export async function readSecretValue(kubeConfig: KubeConfig, namespace: string, ref: SecretKeyRef): Promise<string> {
  const secretNamespace = ref.namespace ?? namespace;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const call = { verb: 'get', resource: 'secrets', group: '', namespace: secretNamespace, name: ref.name };
  let data: Record<string, string> | undefined;
  try {
    data = (await callKube(call, () => core.readNamespacedSecret({ name: ref.name, namespace: secretNamespace }))).data;
  } catch (err) {
    if (isKubeStatus(err, 404)) {
      throw new PermanentDriverError(
        `Secret ${secretNamespace}/${ref.name} not found: create it, or fix the secret reference (name "${ref.name}", key "${ref.key}") in the catalog`,
      );
    }
    throw err;
  }
  const encoded = data?.[ref.key];
  if (encoded === undefined) {
    const keys = Object.keys(data ?? {});
    throw new PermanentDriverError(
      `Secret ${secretNamespace}/${ref.name} has no key "${ref.key}" (its keys: ${keys.length > 0 ? keys.join(', ') : 'none'}): ` +
        'add the key to the Secret or fix the key in the catalog',
    );
  }
  return Buffer.from(encoded, 'base64').toString('utf8');
}
