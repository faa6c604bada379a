// How the Kubernetes API server answers, for the stand-in (kubeApiStandIn.ts): its object shapes,
// `Status` bodies, patch content types, merge patches, label selectors and Scale objects. Each
// rule here is one the real server applies; where the stand-in does less, the message says so.

export type Obj = Record<string, unknown> & { metadata: Meta };
export interface Meta {
  name: string;
  namespace: string;
  uid: string;
  resourceVersion: string;
  creationTimestamp: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string;
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller: boolean }[];
}
export interface StatefulSet extends Obj {
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    volumeClaimTemplates: { metadata: { name: string } }[];
  } & Record<string, unknown>;
  status: Record<string, unknown>;
}
export interface Pod extends Obj {
  status: { phase: string; conditions: { type: string; status: string; reason?: string; message?: string }[] };
}
export type Reply = [number, unknown];

export const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
export const status = (code: number, reason: string, message: string, details?: Record<string, unknown>) => ({
  kind: 'Status',
  apiVersion: 'v1',
  metadata: {},
  status: 'Failure',
  message,
  reason,
  details,
  code,
});
export function scaleOf(sts: StatefulSet) {
  const { name, namespace, uid, resourceVersion, creationTimestamp } = sts.metadata;
  const selector = Object.entries(sts.spec.selector.matchLabels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  // autoscaling/v1 ScaleSpec.replicas is omitempty: a Scale of 0 has an empty spec.
  const spec = sts.spec.replicas === 0 ? {} : { replicas: sts.spec.replicas };
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: { name, namespace, uid, resourceVersion, creationTimestamp },
    spec,
    status: { replicas: sts.status.replicas ?? 0, selector },
  };
}

export function methodNotAllowed(): Reply {
  return [
    405,
    status(
      405,
      'MethodNotAllowed',
      'the server does not allow this method on the requested resource (or the Kubernetes API stand-in does not implement it)',
    ),
  ];
}

export function conflict(sts: StatefulSet): Reply {
  const message = `Operation cannot be fulfilled on statefulsets.apps "${sts.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`;
  return [409, status(409, 'Conflict', message, { name: sts.metadata.name, group: 'apps', kind: 'statefulsets' })];
}

export function invalid(sts: StatefulSet, field: string, detail: string): Reply {
  const message = `StatefulSet.apps "${sts.metadata.name}" is invalid: ${field}: ${detail}`;
  const causes = [{ reason: 'FieldValueInvalid', message: detail, field }];
  return [
    422,
    status(422, 'Invalid', message, { name: sts.metadata.name, group: 'apps', kind: 'StatefulSet', causes }),
  ];
}

/** The real server takes four patch types; the stand-in implements merge patch only and says so. */
export function refusePatchType(contentType: string | undefined, body: unknown): Reply | undefined {
  const type = (contentType ?? '').split(';')[0]?.trim();
  if (type === 'application/merge-patch+json')
    return isRecord(body) ? undefined : [400, status(400, 'BadRequest', 'a merge patch must be a JSON object')];
  if (type === 'application/json-patch+json' && !Array.isArray(body)) {
    return [400, status(400, 'BadRequest', 'json: cannot unmarshal object into Go value of type jsonpatch.Patch')];
  }
  const accepted = [
    'application/json-patch+json',
    'application/merge-patch+json',
    'application/strategic-merge-patch+json',
    'application/apply-patch+yaml',
  ];
  const message = accepted.includes(type ?? '')
    ? `the Kubernetes API stand-in does not implement ${type} patches (the real server does): use application/merge-patch+json`
    : `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`;
  return [415, status(415, 'UnsupportedMediaType', message)];
}

/** RFC 7386 JSON merge patch: objects merge, null removes, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return patch;
  const result: Record<string, unknown> = isRecord(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/** Equality-based label selectors (k=v, k==v, k!=v, k, !k); returns a message for anything else. */
export function parseSelector(text: string): ((labels: Record<string, string>) => boolean) | string {
  const tests: ((labels: Record<string, string>) => boolean)[] = [];
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const equality = /^([A-Za-z0-9._/-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)$/.exec(part);
    const existence = /^(!?)([A-Za-z0-9._/-]+)$/.exec(part);
    if (equality) {
      const [, key = '', op, value] = equality;
      tests.push(op === '!=' ? (l) => l[key] !== value : (l) => l[key] === value);
    } else if (existence) {
      const [, not, key = ''] = existence;
      tests.push(not ? (l) => !(key in l) : (l) => key in l);
    } else {
      return `unable to parse requirement: ${JSON.stringify(part)} (the stand-in takes only equality-based selectors)`;
    }
  }
  return (labels) => tests.every((t) => t(labels));
}

// ---- pods/portforward over WebSocket (the kubelet's streaming server, reached through the API server) ----

/** The kubelet accepts `v4.channel.k8s.io` and its base64 twin; the stand-in speaks only the binary one. */
export const PORT_FORWARD_PROTOCOL = 'v4.channel.k8s.io';

/**
 * The subprotocol to answer with, taking the client's offers in order as the server does: '' for
 * a client that offers none (binary framing), undefined when nothing offered is spoken (the real
 * server then fails the handshake with 403 Forbidden). client-node 1.x offers v5 … v1; v5 is for
 * exec/attach only, so a port-forward settles on v4.
 */
export function choosePortForwardProtocol(offered: string | undefined): string | undefined {
  const offers = (offered ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  if (offers.length === 0) return '';
  return offers.find((p) => p === PORT_FORWARD_PROTOCOL);
}

/** The `ports` query parameter (repeatable, comma-separated), with the kubelet's messages. */
export function parsePortForwardPorts(params: URLSearchParams): number[] | string {
  const values = params.getAll('ports');
  if (values.length === 0) return 'query parameter "ports" is required';
  const ports: number[] = [];
  for (const value of values) {
    if (value === '') return 'query parameter "ports" cannot be empty';
    for (const part of value.split(',')) {
      const port = /^\d{1,5}$/.test(part) ? Number(part) : NaN;
      if (!(port <= 65535))
        return `unable to parse "${value}" as a port: strconv.ParseUint: parsing "${part}": invalid syntax`;
      if (port < 1) return `port "${value}" must be > 0`;
      ports.push(port);
    }
  }
  return ports;
}

/**
 * One WebSocket message of the channel protocol: the channel number, then the payload. Port i
 * has data channel 2i and error channel 2i+1; each first carries the port as uint16 little-endian.
 */
export function channelMessage(channel: number, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from([channel]), payload]);
}

export function portPrefix(port: number): Buffer {
  const bytes = Buffer.alloc(2);
  bytes.writeUInt16LE(port, 0);
  return bytes;
}
