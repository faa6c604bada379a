// What a delayed replica can still do about a DROP DATABASE or DROP TABLESPACE (dropRecords.ts):
// the drop record is replayed at once, so a stop point between it and its commit is worthless
// once replay has passed the drop record, and must be moved before the drop record otherwise.
import { compareLsn } from '../../../common/lsn';
import { dropsPendingAt, type PendingDrop } from '../archive/dropRecords';
import { withSession, type PgEndpoint } from '../session';
import type { WalDumpOptions } from '../archive/walInspect';
import type { DroppedKind, Incident } from '../../../contract/operations/pitrSteps';

export interface NamedDrop extends PendingDrop {
  /** From pg_database / pg_tablespace of a server that still has the row; absent when none has. */
  name?: string;
}

const key = (kind: DroppedKind, oid: number) => `${kind}/${oid}`;

/**
 * Names of dropped databases and tablespaces by OID. The delayed replica still has the row while
 * the drop's commit waits (the row is deleted, not committed). The catalog's database may be the
 * dropped one (PostgreSQL then refuses the login: "cannot connect to invalid database"), so each
 * server is also asked through its "postgres" database. An OID nobody knows stays unnamed.
 */
export async function namesOfDropped(
  endpoints: PgEndpoint[],
  drops: Array<{ kind: DroppedKind; oid: number }>,
): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  const databases = drops.filter((d) => d.kind === 'database').map((d) => d.oid);
  const tablespaces = drops.filter((d) => d.kind === 'tablespace').map((d) => d.oid);
  if (databases.length + tablespaces.length === 0) return names;
  const tries = endpoints.flatMap((e) => (e.database === 'postgres' ? [e] : [e, { ...e, database: 'postgres' }]));
  for (const endpoint of tries) {
    try {
      await withSession(endpoint, async (c) => {
        const rows = (
          await c.query<{ kind: DroppedKind; oid: string; name: string }>(
            `SELECT 'database' AS kind, oid::int8::text AS oid, datname::text AS name FROM pg_database WHERE oid = ANY($1::oid[])
             UNION ALL
             SELECT 'tablespace', oid::int8::text, spcname::text FROM pg_tablespace WHERE oid = ANY($2::oid[])`,
            [databases, tablespaces],
          )
        ).rows;
        for (const r of rows) if (!names.has(key(r.kind, Number(r.oid)))) names.set(key(r.kind, Number(r.oid)), r.name);
      });
    } catch {
      // down, refusing this database, or the dropped database itself: ask the next one
    }
    if (drops.every((d) => names.has(key(d.kind, d.oid)))) break;
  }
  return names;
}

export function withNames<T extends { kind: DroppedKind; oid: number }>(
  drops: T[],
  names: Map<string, string>,
): Array<T & { name?: string }> {
  return drops.map((d) => {
    const name = names.get(key(d.kind, d.oid));
    return name === undefined ? d : { ...d, name };
  });
}

/** 'database "appdb" (OID 16385)' or 'database with OID 16385 (its name is no longer known)'. */
export function describeDropped(drop: { kind: DroppedKind; oid: number; name?: string }): string {
  return drop.name !== undefined
    ? `${drop.kind} "${drop.name}" (OID ${drop.oid})`
    : `${drop.kind} with OID ${drop.oid} (no server still knows its name)`;
}

export type DropVerdict =
  /** Replay has passed a drop record whose commit is at or after the stop point: refuse. */
  | { ok: false; reason: string; drops: NamedDrop[] }
  /** `stopBeforeLsn`: a stop point moved before the drops (not yet replayed); `note` says why. */
  | { ok: true; stopBeforeLsn?: string; note?: string; drops: NamedDrop[] };

/**
 * Judges a stop point `stopLsn` (where replay will stop, before the record there) against the
 * drops pending at it, for a replica whose replay has reached `replayLsn`.
 */
export async function judgeDropsAtStop(
  archiveDir: string,
  stopLsn: string,
  replayLsn: string,
  names: { endpoints: PgEndpoint[] },
  opts: WalDumpOptions = {},
): Promise<DropVerdict> {
  const pending = await dropsPendingAt(archiveDir, stopLsn, opts);
  if (pending.length === 0) return { ok: true, drops: [] };
  const drops = withNames(pending, await namesOfDropped(names.endpoints, pending));
  const replayed = drops.filter((d) => compareLsn(d.lsn, replayLsn) < 0);
  if (replayed.length > 0) return { ok: false, reason: replayedDropReason(replayed, replayLsn), drops };
  // Before the transaction's first record (a database's invalidation) if replay has not passed it.
  const stops = drops.map((d) => (compareLsn(d.beforeDropLsn, replayLsn) >= 0 ? d.beforeDropLsn : d.lsn));
  const stopBeforeLsn = stops.reduce((a, b) => (compareLsn(a, b) <= 0 ? a : b));
  return {
    ok: true,
    stopBeforeLsn,
    drops,
    note: `${drops.map((d) => `the drop of ${describeDropped(d)}, record at ${d.lsn} in transaction ${d.xid},`).join(' and ')} lies before the stop point but commits at or after it: PostgreSQL replays a drop record at once, without the delay, so the replica stops at ${stopBeforeLsn} instead, before it`,
  };
}

/** Why no recovery target on this replica brings the dropped objects back, and what can. */
export function replayedDropReason(drops: PendingDrop[], replayLsn: string): string {
  return drops
    .map((d) => {
      const what = describeDropped(d);
      const record = `${d.kind === 'database' ? 'Database' : 'Tablespace'}/DROP record at ${d.lsn}, transaction ${d.xid}${d.commitLsn ? `, commit at ${d.commitLsn}` : ''}`;
      const head = `the delayed replica has already replayed the drop of ${what} (${record}; replay is at ${replayLsn}): PostgreSQL applies drop records at once, without recovery_min_apply_delay (only commits wait)`;
      const restore = `restore a backup taken before it onto a spare server (never a rollback of the primary) with recovery_target_lsn = '${d.beforeDropLsn}' and recovery_target_inclusive = off${d.beforeDropLsn === d.lsn ? '' : d.beforeInvalidation ? ` (before the in-place update that marked the database invalid; the drop record itself is at ${d.lsn})` : ` (before the dropping transaction's first record; the drop record itself is at ${d.lsn})`}`;
      if (d.kind === 'database')
        return `${head}, so the database's files are gone on this replica and the delayed replica cannot bring that database back, whatever the target. To recover it, ${restore}, then pg_dump the database from that server`;
      return `${head}, so the tablespace's directory is gone on this replica: stopped before the drop's commit, pg_tablespace would name a tablespace with no directory. No rows were lost with it: PostgreSQL refuses to drop a tablespace that still holds files, and the replica emptied it the same way, in WAL order. To undo the drop, CREATE TABLESPACE again on the primary; to see the cluster as it was, ${restore}. To recover a table or database that was in it, target the DROP that emptied it`;
    })
    .join('; ');
}

/**
 * A warning when the replica, at `replayLsn`, has replayed a drop record whose commit it still
 * holds back: within the delay window the object is already gone on the replica.
 */
export async function replayedDropsWarning(
  archiveDir: string,
  replayLsn: string,
  names: { endpoints: PgEndpoint[] },
  opts: WalDumpOptions = {},
): Promise<{ warning?: string; drops: NamedDrop[] }> {
  const pending = (await dropsPendingAt(archiveDir, replayLsn, opts)).filter((d) => compareLsn(d.lsn, replayLsn) < 0);
  if (pending.length === 0) return { drops: [] };
  const drops = withNames(pending, await namesOfDropped(names.endpoints, pending));
  return {
    drops,
    warning: `warning: the delayed replica has already replayed ${drops.map((d) => `the drop of ${describeDropped(d)} (record at ${d.lsn}, transaction ${d.xid})`).join(', ')} while it holds back the commit: drops are not delayed, so within the delay window this is gone on the replica too and no PITR on it can bring it back`,
  };
}

/**
 * Names the databases and tablespaces the incidents dropped, and warns on each drop the replica
 * (at `replayLsn`) has replayed while its commit is still held back by the delay.
 */
export async function annotateDroppedIncidents(
  incidents: Incident[],
  replayLsn: string | null,
  names: { endpoints: PgEndpoint[] },
): Promise<Incident[]> {
  const all = incidents.flatMap((i) => i.dropped ?? []);
  if (all.length === 0) return incidents;
  const known = await namesOfDropped(names.endpoints, all);
  return incidents.map((incident) => {
    if (!incident.dropped) return incident;
    const dropped = withNames(incident.dropped, known);
    const replayed =
      replayLsn === null
        ? []
        : dropped.filter((d) => compareLsn(d.dropLsn, replayLsn) < 0 && compareLsn(incident.commitLsn, replayLsn) >= 0);
    if (replayed.length === 0) return { ...incident, dropped };
    const warning = `warning: the delayed replica has already replayed the drop record of ${replayed.map((d) => `${describeDropped(d)} at ${d.dropLsn}`).join(', ')} (replay is at ${replayLsn}, the commit at ${incident.commitLsn} still waits): drops are not delayed, so the replica cannot bring ${replayed.length > 1 ? 'them' : 'it'} back; a backup restored to an LSN before the drop record can (a PITR with this target is refused and names it)`;
    return { ...incident, dropped, warning };
  });
}
