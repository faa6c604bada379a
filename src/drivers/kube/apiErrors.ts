// Turns what @kubernetes/client-node throws into errors a person can act on. client-node 2.x
// throws ApiException with the HTTP code and, except for 401, the response body as text (the
// API server's `Status` object); its own message dumps every response header, which is noise.
import { ApiException } from '@kubernetes/client-node';
import { PermanentDriverError } from '../cluster/types';

/** What a call was about, so that an error names the permission or object in question. */
export interface KubeCall {
  /** The RBAC verb: get, list, watch, patch, update, delete. */
  verb: string;
  /** The RBAC resource, with subresource: `statefulsets/scale`, `pods`, `secrets`. */
  resource: string;
  /** The API group: '' for the core group, 'apps' for StatefulSets. */
  group: string;
  namespace: string;
  name?: string;
}

/** An API answer that retrying may fix (a conflict, a server error); `code` is the HTTP status. */
export class KubernetesApiError extends Error {
  override readonly name = 'KubernetesApiError';
  constructor(
    message: string,
    readonly code: number,
    readonly reason: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

interface StatusBody {
  message?: string;
  reason?: string;
}

function parseStatusBody(body: unknown): StatusBody {
  let value = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch {
      return { message: body.slice(0, 300) };
    }
  }
  if (typeof value !== 'object' || value === null) return {};
  const { message, reason } = value as Record<string, unknown>;
  return {
    message: typeof message === 'string' ? message : undefined,
    reason: typeof reason === 'string' ? reason : undefined,
  };
}

function describeCall(call: KubeCall): string {
  const resource = call.group ? `${call.resource}.${call.group}` : call.resource;
  return `${call.verb} ${resource} ${call.namespace}/${call.name ?? '*'}`;
}

/** Translates one failed call: 401/403 become PermanentDriverError, other HTTP codes KubernetesApiError. */
export function translateKubeError(err: unknown, call: KubeCall): Error {
  if (!(err instanceof ApiException)) {
    const detail = err instanceof Error ? err.message : String(err);
    return new Error(`Kubernetes API request failed (${describeCall(call)}): ${detail}`, { cause: err });
  }
  const code: number = err.code;
  const status = parseStatusBody(err.body);
  const serverSays = status.message ? `: ${status.message}` : '';
  if (code === 401) {
    return new PermanentDriverError(
      `the Kubernetes API server refused the credentials (401 Unauthorized) for ${describeCall(call)}: ` +
        'check the user/token of the kubeconfig context the worker uses',
    );
  }
  if (code === 403) {
    const group = call.group === '' ? '"" (core)' : call.group;
    return new PermanentDriverError(
      `missing permission: the worker may not "${call.verb}" ${call.resource} (API group ${group}) in namespace ${call.namespace}` +
        ` (403 Forbidden${serverSays}); grant it with a Role rule { apiGroups: [${JSON.stringify(call.group)}], resources: [${JSON.stringify(call.resource)}], verbs: [${JSON.stringify(call.verb)}] }`,
    );
  }
  return new KubernetesApiError(
    `Kubernetes API ${describeCall(call)} failed with ${code}${status.reason ? ` ${status.reason}` : ''}${serverSays}`,
    code,
    status.reason,
    {
      cause: err,
    },
  );
}

/** Runs one client-node call, translating its failure (see translateKubeError). */
export async function callKube<T>(call: KubeCall, request: () => Promise<T>): Promise<T> {
  try {
    return await request();
  } catch (err) {
    throw translateKubeError(err, call);
  }
}

export function isKubeStatus(err: unknown, code: number): err is KubernetesApiError {
  return err instanceof KubernetesApiError && err.code === code;
}

/** Reads one object: undefined when it does not exist (404), any other failure as callKube throws it. */
export async function readIfFound<T>(call: KubeCall, request: () => Promise<T>): Promise<T | undefined> {
  try {
    return await callKube(call, request);
  } catch (err) {
    if (isKubeStatus(err, 404)) return undefined;
    throw err;
  }
}
