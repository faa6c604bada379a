// Reaches a pod's port through the API server's pods/portforward subresource, for catalog entries
// whose PostgreSQL no Service or route reaches from the worker (postgres.portForward). `pg` only
// knows host/port, so each forward is a local TCP listener on 127.0.0.1; every connection to it
// opens its own port-forward stream (client-node's PortForward, WebSocket `v4.channel.k8s.io`),
// so a pod that was restarted or moved is found again by the next connection.
import { createHash } from 'node:crypto';
import net from 'node:net';
import { Writable } from 'node:stream';
import { AuthorizationV1Api, PortForward, type KubeConfig } from '@kubernetes/client-node';
import { logger } from '../../logger';
import { PermanentDriverError } from '../cluster/types';
import { callKube } from './apiErrors';

interface LocalForwarder {
  server: net.Server;
  port: number;
  /** Ends each connection still open (for closeAllPortForwards). */
  open: Set<() => void>;
}

/** Process-wide: sessions are short and many, the listeners are few (one per pod and port). */
const forwarders = new Map<string, Promise<LocalForwarder>>();

/** The loopback port that leads to `pod`'s `port`; the listener is made on first use. */
function forwarderKey(kubeConfig: KubeConfig, namespace: string, pod: string, port: number): string {
  return `${kubeConfigIdentity(kubeConfig)}/${namespace}/${pod}/${port}`;
}

export function localPortFor(kubeConfig: KubeConfig, namespace: string, pod: string, port: number): Promise<number> {
  const key = forwarderKey(kubeConfig, namespace, pod, port);
  let forwarder = forwarders.get(key);
  if (!forwarder) {
    forwarder = listen(kubeConfig, namespace, pod, port);
    forwarders.set(key, forwarder);
    forwarder.catch(() => forwarders.delete(key)); // a failed listen may succeed next time
  }
  return forwarder.then((f) => f.port);
}

const PORT_FORWARD_RULE = 'grant a Role rule { apiGroups: [""], resources: ["pods/portforward"], verbs: ["get"] }';
const PORT_FORWARD_VERB_NOTE =
  ' (a WebSocket port-forward is a GET, which Kubernetes 1.33 authorizes as "get"; newer versions may also check "create")';

/**
 * Asks the API server (SelfSubjectAccessReview) whether this worker may open a port-forward to
 * `pod`. Without this, a missing rule shows only as connections that fail, which a step waiting
 * for PostgreSQL would wait out and a check for "PostgreSQL is down" would take for a yes.
 */
export async function requirePortForwardAccess(kubeConfig: KubeConfig, namespace: string, pod: string): Promise<void> {
  const authorization = kubeConfig.makeApiClient(AuthorizationV1Api);
  const review = await callKube(
    { verb: 'create', resource: 'selfsubjectaccessreviews', group: 'authorization.k8s.io', namespace },
    () =>
      authorization.createSelfSubjectAccessReview({
        body: {
          spec: {
            resourceAttributes: { namespace, verb: 'get', resource: 'pods', subresource: 'portforward', name: pod },
          },
        },
      }),
  );
  if (review.status?.allowed !== true) {
    throw new PermanentDriverError(
      `port-forward to pod ${namespace}/${pod}: missing permission: the worker may not "get" pods/portforward for pod ${pod}` +
        `${review.status?.reason ? ` (${review.status.reason})` : ''}; ${PORT_FORWARD_RULE} in namespace ${namespace}${PORT_FORWARD_VERB_NOTE}`,
    );
  }
}

/** Closes every listener and the connections through them (tests; a worker just exits). */
export async function closeAllPortForwards(): Promise<void> {
  const all = [...forwarders.values()];
  forwarders.clear();
  await closeForwarders(all);
}

/** Closes the listener to one pod's port, if there is one (a scratch pod that is removed for good). */
export async function closePortForward(
  kubeConfig: KubeConfig,
  namespace: string,
  pod: string,
  port: number,
): Promise<void> {
  const key = forwarderKey(kubeConfig, namespace, pod, port);
  const forwarder = forwarders.get(key);
  forwarders.delete(key);
  if (forwarder) await closeForwarders([forwarder]);
}

async function closeForwarders(forwarding: Promise<LocalForwarder>[]): Promise<void> {
  for (const result of await Promise.allSettled(forwarding)) {
    if (result.status !== 'fulfilled') continue;
    for (const end of result.value.open) end();
    await new Promise<void>((resolve) => result.value.server.close(() => resolve()));
  }
}

/** Same API server and same user: the same forward. The hash keeps tokens out of the map's keys. */
function kubeConfigIdentity(kubeConfig: KubeConfig): string {
  const who = JSON.stringify([kubeConfig.getCurrentCluster(), kubeConfig.getCurrentUser()]);
  return createHash('sha256').update(who).digest('hex').slice(0, 16);
}

async function listen(kubeConfig: KubeConfig, namespace: string, pod: string, port: number): Promise<LocalForwarder> {
  const portForward = new PortForward(kubeConfig);
  const open = new Set<() => void>();
  const server = net.createServer((socket) => relay(portForward, { namespace, pod, port }, socket, open));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  server.on('error', (err) => logger.warn({ err, namespace, pod, port }, 'port-forward listener failed'));
  server.unref(); // an idle listener must never keep the worker (or a test run) alive
  return { server, port: (server.address() as net.AddressInfo).port, open };
}

interface PodPort {
  namespace: string;
  pod: string;
  port: number;
}

/** One client connection: one port-forward stream, closed when either side closes. */
function relay(portForward: PortForward, to: PodPort, socket: net.Socket, open: Set<() => void>): void {
  const where = `pod ${to.namespace}/${to.pod} port ${to.port}`;
  let podAnswered = false;
  const errorText: Buffer[] = [];
  socket.on('error', () => undefined); // the client went away; 'close' below does the rest
  const toClient = new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (chunk.length > 0) podAnswered = true; // client-node passes on the empty rest of the port-number message
      if (!socket.destroyed) socket.write(chunk);
      done();
    },
  });
  const errorChannel = new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (chunk.length > 0) errorText.push(chunk);
      done();
    },
  });
  const fail = (message: string) => {
    logger.warn({ namespace: to.namespace, pod: to.pod, port: to.port }, message);
    // Every forward here carries PostgreSQL. Before the server has said anything, answer as
    // PostgreSQL answers a refused connection, so that `pg` reports why; otherwise the client
    // could only say "Connection terminated unexpectedly".
    if (!podAnswered && !socket.destroyed) socket.end(postgresFatalError(message));
    else socket.destroy();
  };
  const end = () => socket.destroy();
  open.add(end);
  socket.on('close', () => open.delete(end));

  portForward.portForward(to.namespace, to.pod, [to.port], toClient, errorChannel, socket).then(
    (opened) => {
      const ws = typeof opened === 'function' ? opened() : opened; // a function only when retrying, which we do not ask for
      if (!ws) return fail(`port-forward to ${where}: no stream was opened`);
      ws.on('close', () => {
        const text = Buffer.concat(errorText).toString('utf8').trim();
        if (text) fail(`port-forward to ${where} failed: ${text}`);
        else socket.end();
      });
      socket.on('close', () => ws.close());
      if (socket.destroyed) ws.close(); // the client gave up while the stream was opening
    },
    (err: unknown) => fail(describeOpenFailure(err, to)),
  );
}

/** client-node rejects with the WebSocket's error event; an HTTP refusal shows only as its status code. */
function describeOpenFailure(err: unknown, to: PodPort): string {
  const detail =
    err instanceof Error || (typeof err === 'object' && err !== null && 'message' in err)
      ? String((err as { message: unknown }).message)
      : String(err);
  const code = /Unexpected server response: (\d{3})/.exec(detail)?.[1];
  const what = `port-forward to pod ${to.namespace}/${to.pod} port ${to.port}`;
  switch (code) {
    case '404':
      return `${what}: pod ${to.namespace}/${to.pod} not found (404): check postgres.portForward.pod, or the pod is not there right now (stopped or being recreated)`;
    case '400':
      return `${what}: the API server refused it (400 Bad Request): the pod may not be scheduled to a node yet`;
    case '401':
      return `${what}: the Kubernetes API server refused the credentials (401 Unauthorized): check the user/token of the kubeconfig context the worker uses`;
    case '403':
      return (
        `${what}: missing permission (403 Forbidden): ${PORT_FORWARD_RULE} in namespace ${to.namespace}` +
        PORT_FORWARD_VERB_NOTE
      );
    default:
      return `${what} failed: ${detail}`;
  }
}

/** A PostgreSQL ErrorResponse, severity FATAL, SQLSTATE 08006 (connection_failure). */
function postgresFatalError(message: string): Buffer {
  const field = (type: string, value: string) =>
    Buffer.concat([Buffer.from(type), Buffer.from(value, 'utf8'), Buffer.from([0])]);
  const body = Buffer.concat([
    field('S', 'FATAL'),
    field('V', 'FATAL'),
    field('C', '08006'),
    field('M', message),
    Buffer.from([0]),
  ]);
  const header = Buffer.alloc(5);
  header.write('E', 0);
  header.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}
