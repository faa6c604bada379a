// One idle session per server, kept by the worker between short statements on a standby (the
// pause, the replay status): in an incident the pause should not wait for a login (a TCP
// connect, authentication and a backend fork: 15–25 ms on a small machine, more across a
// network). The session is parked after use and taken again by the next statement.
//
// A parked session that died (the replica restarted, the connection dropped) is forgotten as
// soon as its socket ends; one that hangs unnoticed is given PATIENCE_MS and then replaced by a
// new session. So `fn` must be safe to run twice, and must leave no state in the session (no
// SET, no open transaction): only plain statements such as SELECT pg_wal_replay_pause().
// Parked sessions do not keep the process alive (their sockets are unref'd while parked).
import type { Client } from 'pg';
import { openSession, type PgEndpoint } from './session';

/** How long a parked session may take before it is given up for a new one. */
const PATIENCE_MS = 1000;

const parked = new Map<string, Client>();

function keyOf(endpoint: PgEndpoint): string {
  return `${endpoint.user}@${endpoint.host}:${endpoint.port}/${endpoint.database}`;
}

/** The session's socket (pg keeps it on `connection.stream`). */
function socketOf(client: Client): { ref(): void; unref(): void } | undefined {
  return (client as unknown as { connection?: { stream?: { ref(): void; unref(): void } } }).connection?.stream;
}

function park(key: string, client: Client): void {
  if (parked.has(key)) {
    void client.end().catch(() => undefined);
    return;
  }
  socketOf(client)?.unref();
  parked.set(key, client);
}

function take(key: string): Client | undefined {
  const client = parked.get(key);
  if (!client) return undefined;
  parked.delete(key);
  socketOf(client)?.ref();
  return client;
}

function withPatience<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`a parked session gave no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

async function openParkable(key: string, endpoint: PgEndpoint): Promise<Client> {
  const client = await openSession(endpoint);
  // A server that shuts down or a dropped connection ends the socket: forget the session.
  client.once('end', () => {
    if (parked.get(key) === client) parked.delete(key);
  });
  return client;
}

/**
 * Runs `fn` on the parked session of this endpoint if there is one (else on a new session), and
 * parks the session again afterwards. A parked session that fails or hangs is closed and `fn`
 * runs again on a new one; an error from a new session is `fn`'s own and is thrown.
 */
export async function withParkedSession<T>(endpoint: PgEndpoint, fn: (client: Client) => Promise<T>): Promise<T> {
  const key = keyOf(endpoint);
  const kept = take(key);
  if (kept) {
    try {
      const result = await withPatience(fn(kept), PATIENCE_MS);
      park(key, kept);
      return result;
    } catch {
      // Dead, hung, or fn's own error: a new session tells which (fn is safe to run again).
      void kept.end().catch(() => undefined);
    }
  }
  const client = await openParkable(key, endpoint);
  try {
    const result = await fn(client);
    park(key, client);
    return result;
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
}

/** Closes every parked session (worker shutdown, tests). */
export async function closeParkedSessions(): Promise<void> {
  const all = [...parked.values()];
  parked.clear();
  await Promise.all(all.map((c) => c.end().catch(() => undefined)));
}

/** How many sessions are parked (tests). */
export function parkedSessionCount(): number {
  return parked.size;
}
