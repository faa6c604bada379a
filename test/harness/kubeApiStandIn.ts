/*
 * A stand-in of the Kubernetes API server, for tests. No kubelet or container runtime runs here,
 * so this small HTTP server (127.0.0.1, a free port) plays the API server and the StatefulSet
 * controller; @kubernetes/client-node talks to it over real HTTP with a bearer token. It answers
 * the way the real server does: `Status` bodies with code and reason, a resourceVersion that grows
 * with every write, optimistic concurrency (409 Conflict), validation (422 Invalid), 415 for a
 * patch content type it does not accept.
 *
 * Implements (namespaced only):
 *   apps/v1 statefulsets: GET, PATCH (application/merge-patch+json); statefulsets/scale: GET, PUT,
 *     PATCH (merge) as autoscaling/v1 Scale objects;
 *   v1 pods: GET list (labelSelector with k=v, k==v, k!=v, k, !k; watch=true with resourceVersion
 *     and timeoutSeconds), GET, DELETE (graceful: the pod terminates, then the controller
 *     recreates it with a new uid); persistentvolumeclaims: GET, GET list; secrets: GET.
 *   A StatefulSet controller (OrderedReady): creates missing ordinals one at a time, lowest first,
 *     each after the previous is Ready, with its PVCs; scales down from the highest ordinal, one
 *     pod at a time; keeps status.replicas/readyReplicas/observedGeneration current (each status
 *     write is a write: it moves resourceVersion, as the real controller's do).
 *   pods/portforward: the WebSocket upgrade (`v4.channel.k8s.io`) as the kubelet serves it behind
 *     the API server: per port a data channel 2i and an error channel 2i+1, each opened with the
 *     port as uint16 LE; bytes relayed to the TCP address `podPorts` gives for the pod's port; a
 *     failure (pod not Running, nothing listening) is text on the error channel, then the socket
 *     closes. As the real kubelet, it does not look at readiness. Not implemented: the base64
 *     channel protocol and the SPDY / v2.portforward.k8s.io upgrades (kubectl's).
 *   RBAC refusals on demand (`forbid`), 401 for a wrong token.
 * Does not implement: create/update of objects through the API, other resources and API groups,
 *   cluster-scoped paths, set-based selectors, field selectors, json-patch / strategic-merge /
 *   apply patches (answered 415 by the stand-in; the real server accepts them), pagination,
 *   protobuf, server-side dry run, finalizers, pods/exec (not used by the drivers yet).
 * The answering rules (Status bodies, patch types, selectors, Scale objects) are in kubeApiRules.ts.
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import {
  channelMessage,
  choosePortForwardProtocol,
  conflict,
  invalid,
  isRecord,
  mergePatch,
  methodNotAllowed,
  parsePortForwardPorts,
  parseSelector,
  portPrefix,
  refusePatchType,
  scaleOf,
  status,
  type Obj,
  type Meta,
  type Pod,
  type Reply,
  type StatefulSet,
} from './kubeApiRules';

export interface PodHooks {
  /** Awaited before the pod is marked Running and Ready (start the "container" here). A throw leaves it not Ready. */
  onPodStart?: (podName: string) => Promise<void>;
  /** Awaited before a terminating pod is removed (stop the "container" here). */
  onPodStop?: (podName: string) => Promise<void>;
}
export interface StandInOptions {
  readyDelayMs?: number;
  terminateDelayMs?: number;
  hooks?: PodHooks;
  /** Where a pod's port is served, for pods/portforward (the pod's "container"); undefined: nothing listens there. */
  podPorts?: (podName: string, port: number) => { host: string; port: number } | undefined;
}
export interface RecordedRequest {
  method: string;
  path: string;
  query: string;
  contentType?: string;
  body?: unknown;
  /** The HTTP status answered (101 for an upgrade accepted). */
  status?: number;
  /** For an accepted WebSocket upgrade: the subprotocol agreed. */
  protocol?: string;
}
interface Watcher {
  namespace: string;
  matches: (labels: Record<string, string>) => boolean;
  res: http.ServerResponse;
}

const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
const clone = <T>(value: T): T => structuredClone(value);
const RESOURCES: Record<string, { group: string; kinds: string[] }> = {
  'apps/v1': { group: 'apps', kinds: ['statefulsets'] },
  v1: { group: '', kinds: ['pods', 'persistentvolumeclaims', 'secrets'] },
};
const VERBS: Record<string, string> = { GET: 'get', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };

export class KubeApiStandIn {
  readonly token = `stand-in-${randomUUID()}`;
  readonly requests: RecordedRequest[] = [];
  /** Errors thrown by the hooks, for the test to look at. */
  readonly hookErrors: string[] = [];
  url = '';
  private readonly server = http.createServer((req, res) => void this.handle(req, res));
  // Protocol choice happens before the upgrade (see onUpgrade); this only echoes it.
  private readonly portForwards = new WebSocketServer({
    noServer: true,
    handleProtocols: (offered) => choosePortForwardProtocol([...offered].join(',')) || false,
  });
  private revision = 1000;
  private readonly store = new Map<string, Obj>(); // key: resource/namespace/name
  private readonly podEvents: { revision: number; type: string; object: Pod }[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly starting = new Map<string, Promise<void>>(); // pod uid → its start
  private readonly inFlight = new Set<Promise<void>>();
  private readonly forbidden = new Set<string>();
  private forgottenUpTo = 0; // watches from before this revision get 410 Expired
  private conflictsToInject = 0;
  private closed = false;

  constructor(private readonly options: StandInOptions) {
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) =>
      this.onUpgrade(req, socket, head),
    );
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Creates a StatefulSet and lets the controller bring it up; resolves when all its pods are Ready. */
  async addStatefulSet(spec: {
    namespace: string;
    name: string;
    replicas: number;
    labels: Record<string, string>;
    volumeClaimTemplates?: string[];
  }): Promise<void> {
    const sts = {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: this.newMeta(spec.namespace, spec.name, { generation: 1, labels: spec.labels }),
      spec: {
        replicas: spec.replicas,
        serviceName: spec.name,
        podManagementPolicy: 'OrderedReady',
        selector: { matchLabels: { ...spec.labels } },
        template: {
          metadata: { labels: { ...spec.labels } },
          spec: { containers: [{ name: 'postgres', image: 'postgres:15' }] },
        },
        volumeClaimTemplates: (spec.volumeClaimTemplates ?? ['data']).map((name) => ({
          metadata: { name },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
        })),
      },
      status: { replicas: 0, observedGeneration: 0 },
    } satisfies StatefulSet;
    this.put('statefulsets', sts);
    this.reconcile(sts);
    while (this.podsOf(sts).filter(isReady).length < spec.replicas) {
      if (this.hookErrors.length > 0)
        throw new Error(`StatefulSet ${spec.namespace}/${spec.name} did not come up: ${this.hookErrors.join('; ')}`);
      await delay(10);
    }
  }

  addSecret(namespace: string, name: string, data: Record<string, string>): void {
    const encoded = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
    this.put('secrets', {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: this.newMeta(namespace, name),
      type: 'Opaque',
      data: encoded,
    });
  }

  /** A kubeconfig for this server: context `stand-in` (current) and `stand-in-wrong-token`. */
  async writeKubeconfig(path: string): Promise<void> {
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'stand-in',
      // client-node 2.x refuses plain http unless TLS verification is switched off for the cluster (1.x does not mind).
      clusters: [{ name: 'stand-in', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [
        { name: 'tester', user: { token: this.token } },
        { name: 'stranger', user: { token: 'not-the-token' } },
      ],
      contexts: [
        { name: 'stand-in', context: { cluster: 'stand-in', user: 'tester', namespace: 'default' } },
        { name: 'stand-in-wrong-token', context: { cluster: 'stand-in', user: 'stranger', namespace: 'default' } },
      ],
    };
    await writeFile(path, JSON.stringify(config, null, 2)); // JSON is YAML
  }

  /** Refuse `verb` on `resource` (such as 'update', 'statefulsets/scale') with 403, as RBAC would. */
  forbid(verb: string, resource: string): void {
    this.forbidden.add(`${verb} ${resource}`);
  }

  /** Another writer touches the StatefulSet right before each of the next `count` scale writes, making them stale (409). */
  injectScaleConflicts(count = 1): void {
    this.conflictsToInject += count;
  }

  statefulSet(namespace: string, name: string): StatefulSet | undefined {
    const sts = this.store.get(`statefulsets/${namespace}/${name}`);
    return sts ? clone(sts as StatefulSet) : undefined;
  }

  pods(namespace: string): Pod[] {
    return this.list('pods', namespace).map((pod) => clone(pod as Pod));
  }

  /** Port-forward connections still open (each client connection has its own). */
  openPortForwards(): number {
    return this.portForwards.clients.size;
  }

  /** Removes a PVC behind the driver's back (as a careless `kubectl delete pvc` would once no pod uses it). */
  deletePersistentVolumeClaim(namespace: string, name: string): void {
    this.store.delete(`persistentvolumeclaims/${namespace}/${name}`);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const watcher of this.watchers) watcher.res.end();
    for (const ws of this.portForwards.clients) ws.terminate();
    this.portForwards.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await Promise.allSettled([...this.inFlight]);
  }

  // ---- HTTP ----

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const entry: RecordedRequest = {
      method: req.method ?? '',
      path: url.pathname,
      query: url.search,
      contentType: req.headers['content-type'],
    };
    this.requests.push(entry);
    let reply: Reply | undefined;
    try {
      const text = await readBody(req);
      if (text) entry.body = JSON.parse(text);
      reply = this.route(req, url, entry.body, res);
    } catch (err) {
      reply =
        err instanceof SyntaxError
          ? [400, status(400, 'BadRequest', `couldn't decode the request body: ${err.message}`)]
          : [500, status(500, 'InternalError', String(err))];
    }
    entry.status = reply?.[0] ?? 200;
    if (reply === undefined) return; // a watch keeps the response open
    const text = JSON.stringify(reply[1]);
    res.writeHead(reply[0], { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  private route(req: http.IncomingMessage, url: URL, body: unknown, res: http.ServerResponse): Reply | undefined {
    if (req.headers.authorization !== `Bearer ${this.token}`) return [401, status(401, 'Unauthorized', 'Unauthorized')];
    const match = /^\/(?:api\/(v1)|apis\/(apps\/v1))\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(
      url.pathname,
    );
    const api = RESOURCES[match?.[1] ?? match?.[2] ?? ''];
    const [namespace, resource, name, sub] = [match?.[3] ?? '', match?.[4] ?? '', match?.[5], match?.[6]];
    if (resource === 'pods' && sub === 'portforward')
      return [400, status(400, 'BadRequest', 'Upgrade request required')];
    if (
      !api ||
      !api.kinds.includes(resource) ||
      (sub !== undefined && !(resource === 'statefulsets' && sub === 'scale'))
    ) {
      return [404, status(404, 'NotFound', 'the server could not find the requested resource')];
    }
    const watching = ['true', '1'].includes(url.searchParams.get('watch') ?? '');
    const verb = name === undefined ? (watching ? 'watch' : 'list') : (VERBS[req.method ?? ''] ?? '');
    const qualified = api.group ? `${resource}.${api.group}` : resource;
    const fullResource = sub ? `${resource}/${sub}` : resource;
    if (this.forbidden.has(`${verb} ${fullResource}`)) {
      const message = `${qualified} "${name ?? ''}" is forbidden: User "tester" cannot ${verb} resource "${fullResource}" in API group "${api.group}" in the namespace "${namespace}"`;
      return [403, status(403, 'Forbidden', message, { name, group: api.group, kind: resource })];
    }
    if (name === undefined) {
      if (req.method !== 'GET' || (resource !== 'pods' && resource !== 'persistentvolumeclaims'))
        return methodNotAllowed();
      const selector = parseSelector(url.searchParams.get('labelSelector') ?? '');
      if (typeof selector === 'string') return [400, status(400, 'BadRequest', selector)];
      if (watching) return this.watchPods(namespace, selector, url.searchParams, res);
      const items = this.list(resource, namespace).filter((o) => selector(o.metadata.labels ?? {}));
      const kind = resource === 'pods' ? 'PodList' : 'PersistentVolumeClaimList';
      return [200, { kind, apiVersion: 'v1', metadata: { resourceVersion: String(this.revision) }, items }];
    }
    const object = this.store.get(`${resource}/${namespace}/${name}`);
    if (!object)
      return [
        404,
        status(404, 'NotFound', `${qualified} "${name}" not found`, { name, group: api.group, kind: resource }),
      ];
    if (resource === 'statefulsets')
      return sub
        ? this.onScale(req, object as StatefulSet, body)
        : this.onStatefulSet(req, object as StatefulSet, body);
    if (req.method === 'GET') return [200, object];
    if (resource === 'pods' && req.method === 'DELETE') {
      const uid = isRecord(body) && isRecord(body.preconditions) ? body.preconditions.uid : undefined;
      if (uid !== undefined && uid !== object.metadata.uid) {
        return [
          409,
          status(
            409,
            'Conflict',
            `Precondition failed: UID in precondition: ${String(uid)}, UID in object meta: ${object.metadata.uid}`,
            { name, kind: 'pods' },
          ),
        ];
      }
      this.beginTermination(object as Pod);
      return [200, object];
    }
    return methodNotAllowed();
  }

  private onStatefulSet(req: http.IncomingMessage, sts: StatefulSet, body: unknown): Reply {
    if (req.method === 'GET') return [200, sts];
    if (req.method !== 'PATCH') return methodNotAllowed();
    const refused = refusePatchType(req.headers['content-type'], body);
    if (refused) return refused;
    const patched = mergePatch(clone(sts), body) as StatefulSet;
    const sent = isRecord(body) && isRecord(body.metadata) ? body.metadata.resourceVersion : undefined;
    if (sent !== undefined && sent !== sts.metadata.resourceVersion) return conflict(sts);
    const annotations = patched.metadata.annotations ?? {};
    const nonString = Object.keys(annotations).find((k) => typeof annotations[k] !== 'string');
    if (nonString !== undefined)
      return [
        400,
        status(
          400,
          'BadRequest',
          `json: cannot unmarshal ${typeof annotations[nonString]} into Go struct field ObjectMeta.metadata.annotations of type string`,
        ),
      ];
    const { name, namespace, uid } = sts.metadata;
    if (patched.metadata.name !== name || patched.metadata.namespace !== namespace || patched.metadata.uid !== uid) {
      return invalid(sts, 'metadata', 'field is immutable');
    }
    const frozen = (s: StatefulSet) =>
      JSON.stringify([s.spec.selector, s.spec.volumeClaimTemplates, s.spec.serviceName, s.spec.podManagementPolicy]);
    if (frozen(patched) !== frozen(sts)) {
      return invalid(
        sts,
        'spec',
        "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
      );
    }
    const replicas = patched.spec.replicas;
    if (!Number.isInteger(replicas) || replicas < 0)
      return invalid(
        sts,
        'spec.replicas',
        `Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`,
      );
    patched.status = sts.status; // the main resource ignores status, as the real one does
    return [200, this.writeStatefulSet(patched, JSON.stringify(patched.spec) !== JSON.stringify(sts.spec))];
  }

  private onScale(req: http.IncomingMessage, sts: StatefulSet, body: unknown): Reply {
    if (req.method === 'GET') return [200, scaleOf(sts)];
    if (req.method !== 'PUT' && req.method !== 'PATCH') return methodNotAllowed();
    if (req.method === 'PATCH') {
      const refused = refusePatchType(req.headers['content-type'], body);
      if (refused) return refused;
      body = mergePatch(scaleOf(sts), body);
    }
    if (this.conflictsToInject > 0) {
      this.conflictsToInject--;
      const touched = clone(sts);
      touched.metadata.annotations = {
        ...touched.metadata.annotations,
        'stand-in/concurrent-writer': String(this.revision),
      };
      sts = this.writeStatefulSet(touched, false);
    }
    if (!isRecord(body) || !isRecord(body.metadata) || !isRecord(body.spec ?? {}))
      return [400, status(400, 'BadRequest', 'the body is not a Scale object')];
    if (body.metadata.name !== sts.metadata.name) {
      return [
        400,
        status(
          400,
          'BadRequest',
          `the name of the object (${String(body.metadata.name)}) does not match the name on the URL (${sts.metadata.name})`,
        ),
      ];
    }
    const sent = body.metadata.resourceVersion;
    if (sent !== undefined && sent !== '' && sent !== sts.metadata.resourceVersion) return conflict(sts);
    const replicas = (body.spec as Record<string, unknown> | undefined)?.replicas ?? 0; // omitted means 0 in autoscaling/v1
    if (typeof replicas !== 'number' || !Number.isInteger(replicas))
      return [400, status(400, 'BadRequest', 'spec.replicas must be an int32')];
    if (replicas < 0)
      return invalid(sts, 'spec.replicas', `Invalid value: ${replicas}: must be greater than or equal to 0`);
    const updated = clone(sts);
    updated.spec.replicas = replicas;
    return [200, scaleOf(this.writeStatefulSet(updated, replicas !== sts.spec.replicas))];
  }

  private watchPods(
    namespace: string,
    matches: (labels: Record<string, string>) => boolean,
    params: URLSearchParams,
    res: http.ServerResponse,
  ): undefined {
    res.writeHead(200, { 'Content-Type': 'application/json' }); // no length: Node sends it chunked
    const send = (type: string, object: unknown) => res.write(`${JSON.stringify({ type, object })}\n`);
    const wanted = (pod: Pod) => pod.metadata.namespace === namespace && matches(pod.metadata.labels ?? {});
    const from = params.get('resourceVersion');
    if (from === null || from === '' || from === '0') {
      for (const pod of this.list('pods', namespace) as Pod[]) if (wanted(pod)) send('ADDED', pod); // "start at most recent"
    } else {
      if (Number(from) < this.forgottenUpTo) {
        send('ERROR', status(410, 'Expired', `too old resource version: ${from} (${this.forgottenUpTo})`));
        res.end();
        return undefined;
      }
      for (const event of this.podEvents)
        if (event.revision > Number(from) && wanted(event.object)) send(event.type, event.object);
    }
    const watcher: Watcher = { namespace, matches, res };
    this.watchers.add(watcher);
    const timeout = Number(params.get('timeoutSeconds') ?? 0);
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    res.on('close', () => {
      clearTimeout(timer);
      this.watchers.delete(watcher);
    });
    return undefined;
  }

  // ---- pods/portforward ----

  /** Checks in the real server's order: authentication, RBAC, the pod, the kubelet's options, the handshake. */
  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const entry: RecordedRequest = { method: req.method ?? '', path: url.pathname, query: url.search };
    this.requests.push(entry);
    socket.on('error', () => undefined); // a client that hangs up mid-handshake is not the stand-in's problem
    const refuse = ([code, body]: Reply) => {
      entry.status = code;
      const text = body === undefined ? '' : JSON.stringify(body);
      socket.end(
        `HTTP/1.1 ${code} ${http.STATUS_CODES[code]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
      );
    };
    if (req.headers.authorization !== `Bearer ${this.token}`)
      return refuse([401, status(401, 'Unauthorized', 'Unauthorized')]);
    const [, namespace = '', name = ''] =
      /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/portforward$/.exec(url.pathname) ?? [];
    if (!name || req.method !== 'GET')
      return refuse([404, status(404, 'NotFound', 'the server could not find the requested resource')]);
    // Kubernetes 1.31+ authorizes a WebSocket port-forward as "create" (older versions as "get").
    const verb = ['create', 'get'].find((v) => this.forbidden.has(`${v} pods/portforward`));
    if (verb) {
      const message = `pods "${name}" is forbidden: User "tester" cannot ${verb} resource "pods/portforward" in API group "" in the namespace "${namespace}"`;
      return refuse([403, status(403, 'Forbidden', message, { name, kind: 'pods' })]);
    }
    const pod = this.store.get(`pods/${namespace}/${name}`) as Pod | undefined;
    if (!pod) return refuse([404, status(404, 'NotFound', `pods "${name}" not found`, { name, kind: 'pods' })]);
    const ports = parsePortForwardPorts(url.searchParams);
    if (typeof ports === 'string') return refuse([400, status(400, 'BadRequest', ports)]);
    const protocol = choosePortForwardProtocol(req.headers['sec-websocket-protocol']);
    if (protocol === undefined) return refuse([403, undefined]); // x/net/websocket: no body
    Object.assign(entry, { status: 101, protocol });
    this.portForwards.handleUpgrade(req, socket, head, (ws) => this.forwardPorts(ws, clone(pod), ports));
  }

  /** The kubelet's side: per port, connect inside the pod and relay until either side closes. */
  private forwardPorts(ws: WebSocket, pod: Pod, ports: number[]): void {
    const conns: (net.Socket | undefined)[] = [];
    let openPorts = ports.length;
    const portDone = () => {
      if (--openPorts === 0) ws.close(1000); // the kubelet closes the connection once every port is done
    };
    ports.forEach((port, i) => {
      ws.send(channelMessage(2 * i, portPrefix(port)));
      ws.send(channelMessage(2 * i + 1, portPrefix(port)));
      const fail = (why: string) => {
        const { name, namespace, uid } = pod.metadata;
        ws.send(
          channelMessage(
            2 * i + 1,
            Buffer.from(`error forwarding port ${port} to pod ${name}_${namespace}, uid ${uid}: ${why}`),
          ),
        );
        portDone();
      };
      if (pod.status.phase !== 'Running')
        return fail(`the pod's containers are not running (phase ${pod.status.phase})`);
      const target = this.options.podPorts?.(pod.metadata.name, port);
      if (!target) return fail(`failed to connect to localhost:${port} inside the pod: connect: connection refused`);
      const conn = net.connect(target.port, target.host);
      conns[i] = conn;
      let failed = false;
      conn.on('data', (data: Buffer) => ws.send(channelMessage(2 * i, data)));
      conn.on('error', (err) => {
        failed = true;
        fail(`failed to connect to localhost:${port} inside the pod: ${err.message}`);
      });
      conn.on('close', () => {
        if (!failed) portDone();
      });
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const channel = Buffer.isBuffer(data) ? data[0] : undefined;
      // The client writes only data channels; writes before the connect completes are queued by net.
      if (isBinary && Buffer.isBuffer(data) && channel !== undefined && channel % 2 === 0)
        conns[channel / 2]?.write(data.subarray(1));
    });
    ws.on('close', () => conns.forEach((c) => c?.destroy()));
  }

  // ---- storage ----

  private newMeta(namespace: string, name: string, extra: Partial<Meta> = {}): Meta {
    return { name, namespace, uid: randomUUID(), resourceVersion: '', creationTimestamp: now(), ...extra };
  }

  /** Every write moves the one resourceVersion counter, as etcd's revision does. */
  private put<T extends Obj>(resource: string, object: T): T {
    object.metadata.resourceVersion = String(++this.revision);
    this.store.set(`${resource}/${object.metadata.namespace}/${object.metadata.name}`, object);
    return object;
  }

  private list(resource: string, namespace: string): Obj[] {
    const prefix = `${resource}/${namespace}/`;
    return [...this.store].filter(([key]) => key.startsWith(prefix)).map(([, object]) => object);
  }

  private writeStatefulSet(sts: StatefulSet, specChanged: boolean): StatefulSet {
    if (specChanged) sts.metadata.generation = (sts.metadata.generation ?? 1) + 1;
    this.put('statefulsets', sts);
    // The controller reacts after the write has been answered, as the real one does.
    if (specChanged) setImmediate(() => this.reconcile(sts));
    return sts;
  }

  private putPod(pod: Pod, type: 'ADDED' | 'MODIFIED' | 'DELETED'): void {
    if (type === 'DELETED') {
      this.store.delete(`pods/${pod.metadata.namespace}/${pod.metadata.name}`);
      pod.metadata.resourceVersion = String(++this.revision);
    } else {
      this.put('pods', pod);
    }
    const event = { revision: this.revision, type, object: clone(pod) };
    this.podEvents.push(event);
    if (this.podEvents.length > 500) this.forgottenUpTo = this.podEvents.shift()?.revision ?? 0;
    for (const w of this.watchers) {
      if (w.namespace === pod.metadata.namespace && w.matches(pod.metadata.labels ?? {}))
        w.res.write(`${JSON.stringify({ type, object: event.object })}\n`);
    }
  }

  // ---- the StatefulSet controller ----

  private podsOf(sts: StatefulSet): Pod[] {
    return (this.list('pods', sts.metadata.namespace) as Pod[]).filter(
      (p) => p.metadata.ownerReferences?.[0]?.uid === sts.metadata.uid,
    );
  }

  /** One step towards spec.replicas, OrderedReady: nothing moves while a pod terminates or a kept pod is not Ready. */
  private reconcile(sts: StatefulSet): void {
    if (this.closed) return;
    const current = this.store.get(`statefulsets/${sts.metadata.namespace}/${sts.metadata.name}`) as
      StatefulSet | undefined;
    if (!current || current.metadata.uid !== sts.metadata.uid) return;
    const pods = this.podsOf(current);
    this.updateStatus(current, pods);
    if (pods.some((p) => p.metadata.deletionTimestamp)) return;
    const byOrdinal = new Map(pods.map((p) => [ordinalOf(p), p]));
    for (let ordinal = 0; ordinal < current.spec.replicas; ordinal++) {
      const pod = byOrdinal.get(ordinal);
      if (!pod) return this.createPod(current, ordinal);
      if (!isReady(pod)) return;
    }
    const condemned = pods
      .filter((p) => ordinalOf(p) >= current.spec.replicas)
      .sort((a, b) => ordinalOf(b) - ordinalOf(a));
    if (condemned[0]) this.beginTermination(condemned[0]);
  }

  private updateStatus(sts: StatefulSet, pods: Pod[]): void {
    const live = pods.filter((p) => !p.metadata.deletionTimestamp);
    const ready = live.filter(isReady).length;
    // Zero counts are omitted, as the real API's omitempty fields are (status.replicas is not).
    const next = {
      observedGeneration: sts.metadata.generation,
      replicas: live.length,
      ...(ready > 0 ? { readyReplicas: ready, availableReplicas: ready } : {}),
      ...(live.length > 0 ? { currentReplicas: live.length, updatedReplicas: live.length } : {}),
    };
    if (JSON.stringify(next) === JSON.stringify(sts.status)) return;
    sts.status = next;
    this.put('statefulsets', sts);
  }

  private createPod(sts: StatefulSet, ordinal: number): void {
    const { namespace } = sts.metadata;
    const name = `${sts.metadata.name}-${ordinal}`;
    const volumes = sts.spec.volumeClaimTemplates.map((t) => ({
      name: t.metadata.name,
      persistentVolumeClaim: { claimName: `${t.metadata.name}-${name}` },
    }));
    for (const {
      persistentVolumeClaim: { claimName },
    } of volumes) {
      if (this.store.has(`persistentvolumeclaims/${namespace}/${claimName}`)) continue; // kept across scale-downs
      const meta = this.newMeta(namespace, claimName, { labels: { ...sts.spec.selector.matchLabels } });
      const storage = { storage: '1Gi' };
      this.put('persistentvolumeclaims', {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: meta,
        spec: {
          accessModes: ['ReadWriteOnce'],
          resources: { requests: storage },
          volumeMode: 'Filesystem',
          volumeName: `pvc-${meta.uid}`,
        },
        status: { phase: 'Bound', accessModes: ['ReadWriteOnce'], capacity: storage },
      });
    }
    const labels = {
      ...sts.spec.selector.matchLabels,
      'statefulset.kubernetes.io/pod-name': name,
      'apps.kubernetes.io/pod-index': String(ordinal),
    };
    const ownerReferences = [
      { apiVersion: 'apps/v1', kind: 'StatefulSet', name: sts.metadata.name, uid: sts.metadata.uid, controller: true },
    ];
    const pod: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: this.newMeta(namespace, name, { labels, ownerReferences }),
      spec: {
        hostname: name,
        subdomain: sts.spec.serviceName,
        containers: [{ name: 'postgres', image: 'postgres:15' }],
        volumes,
      },
      status: { phase: 'Pending', conditions: [{ type: 'Ready', status: 'False', reason: 'ContainersNotReady' }] },
    };
    this.putPod(pod, 'ADDED');
    const start = (async () => {
      await this.options.hooks?.onPodStart?.(name);
      await delay(this.options.readyDelayMs ?? 0);
    })();
    this.starting.set(
      pod.metadata.uid,
      start.catch(() => undefined),
    );
    this.track(this.finishStart(sts, pod.metadata.uid, name, start));
  }

  private async finishStart(sts: StatefulSet, uid: string, name: string, start: Promise<void>): Promise<void> {
    let failure: string | undefined;
    try {
      await start;
    } catch (err) {
      failure = `start hook failed: ${err instanceof Error ? err.message : String(err)}`;
      this.hookErrors.push(`${name}: ${failure}`);
    }
    const pod = this.store.get(`pods/${sts.metadata.namespace}/${name}`) as Pod | undefined;
    if (this.closed || !pod || pod.metadata.uid !== uid || pod.metadata.deletionTimestamp) return;
    const updated = clone(pod);
    updated.status.phase = 'Running';
    updated.status.conditions = [
      failure
        ? { type: 'Ready', status: 'False', reason: 'ContainersNotReady', message: failure }
        : { type: 'Ready', status: 'True' },
    ];
    this.putPod(updated, 'MODIFIED');
    this.reconcile(sts);
  }

  /** Marks the pod terminating; after the stop hook and the termination delay it is gone, and the controller looks again. */
  private beginTermination(pod: Pod): void {
    if (pod.metadata.deletionTimestamp) return;
    pod.metadata.deletionTimestamp = now();
    this.putPod(pod, 'MODIFIED');
    const owner = this.store.get(
      `statefulsets/${pod.metadata.namespace}/${pod.metadata.ownerReferences?.[0]?.name ?? ''}`,
    ) as StatefulSet | undefined;
    this.track(
      (async () => {
        await this.starting.get(pod.metadata.uid); // a container is stopped only once it has started
        try {
          await this.options.hooks?.onPodStop?.(pod.metadata.name);
        } catch (err) {
          this.hookErrors.push(
            `${pod.metadata.name}: stop hook failed: ${err instanceof Error ? err.message : String(err)}`,
          );
        }
        await delay(this.options.terminateDelayMs ?? 0);
        if (this.closed) return;
        this.starting.delete(pod.metadata.uid);
        this.putPod(pod, 'DELETED');
        if (owner) this.reconcile(owner);
      })(),
    );
  }

  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }
}

export async function startKubeApiStandIn(options: StandInOptions = {}): Promise<KubeApiStandIn> {
  const api = new KubeApiStandIn(options);
  await api.listen();
  return api;
}

function isReady(pod: Pod): boolean {
  return pod.status.conditions.some((c) => c.type === 'Ready' && c.status === 'True');
}

function ordinalOf(pod: Pod): number {
  return Number(pod.metadata.labels?.['apps.kubernetes.io/pod-index'] ?? -1);
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
