// Finds the transactions that deleted, truncated or dropped in a window of the WAL archive (the
// incident locator of docs/runbooks/delayed-replica-pitr.md step 2), from pg_waldump's text through scanArchive.
import { isoTimeMicros } from '../../../common/recoveryTarget';
import { parseDropRecord } from './dropRecords';
import {
  fileKey,
  parseTransactionEnd,
  scanArchive,
  type RelationInfo,
  type TransactionEnd,
  type WalDumpOptions,
  type WalRecord,
} from './walInspect';
import type { DroppedObject, Incident, IncidentRelation } from '../../../contract/operations/pitrSteps';

/** Segments archived this long before `from` are skipped: their records are all older. */
const ARCHIVE_CLOCK_MARGIN_MS = 10 * 60_000;
/** Relations below FirstNormalObjectId are system catalogs (initdb's relfilenodes). */
const FIRST_NORMAL_OBJECT_ID = 16384;

export interface LocateOptions extends WalDumpOptions {
  /** Commit time window, ISO 8601 with a zone. */
  from?: string;
  to?: string;
  /** Only transactions touching this table ('orders' or 'public.orders'); needs `relfilenodes`. */
  table?: string;
  /** From relationMap(): names files, and tells tables from indexes and catalogs. */
  relfilenodes?: ReadonlyMap<string, RelationInfo>;
}

interface PendingTransaction {
  deletes: Map<string, number>;
  created: Set<string>;
  truncatedInPlace: Set<string>;
  /** New files that received page images past block 0: data was copied (CLUSTER, VACUUM FULL, REINDEX). */
  filledFiles: Set<string>;
  dropped: DroppedObject[];
}

const BLOCK_REF = /blkref #\d+: rel \d+\/(\d+)\/(\d+)(?: fork \w+)? blk (\d+)/g;
/** Index, toast, sequence, catalog: losing these is not lost user data. */
const TABLE_KINDS = new Set(['r', 'p', 'm']);

function pendingFor(pending: Map<number, PendingTransaction>, xid: number): PendingTransaction {
  let entry = pending.get(xid);
  if (!entry)
    pending.set(
      xid,
      (entry = {
        deletes: new Map(),
        created: new Set(),
        truncatedInPlace: new Set(),
        filledFiles: new Set(),
        dropped: [],
      }),
    );
  return entry;
}

function recordWork(pending: Map<number, PendingTransaction>, record: WalRecord): void {
  if (record.xid === 0) return;
  if (record.rmgr === 'Heap' && record.desc.startsWith('DELETE ')) {
    for (const [, db, rel] of record.desc.matchAll(BLOCK_REF)) {
      const deletes = pendingFor(pending, record.xid).deletes;
      deletes.set(`${db}/${rel}`, (deletes.get(`${db}/${rel}`) ?? 0) + 1);
      break; // a DELETE record names one heap block
    }
  } else if (record.rmgr === 'Storage') {
    const create = /^CREATE (\S+)/.exec(record.desc);
    const truncate = /^TRUNCATE (\S+) to 0 blocks/.exec(record.desc);
    const key = fileKey((create ?? truncate)?.[1] ?? '');
    if (key && create) pendingFor(pending, record.xid).created.add(key);
    if (key && truncate) pendingFor(pending, record.xid).truncatedInPlace.add(key);
  } else if (record.rmgr === 'Database' || record.rmgr === 'Tablespace') {
    const drop = parseDropRecord(record);
    if (drop)
      pendingFor(pending, record.xid).dropped.push({
        kind: drop.kind,
        oid: drop.oid,
        dropLsn: drop.lsn,
        ...(drop.tablespaceOids ? { tablespaceOids: drop.tablespaceOids } : {}),
      });
  } else if (record.rmgr === 'XLOG' && record.desc.startsWith('FPI')) {
    const entry = pending.get(record.xid);
    for (const [, db, rel, block] of record.desc.matchAll(BLOCK_REF)) {
      if (entry?.created.has(`${db}/${rel}`) && Number(block) > 0) entry.filledFiles.add(`${db}/${rel}`);
    }
  }
}

/** What one committed transaction destroyed, or undefined when it lost no user data. */
function summarise(end: TransactionEnd, work: PendingTransaction[], opts: LocateOptions): Incident | undefined {
  const created = new Set(work.flatMap((w) => [...w.created]));
  const relNumber = (key: string) => Number(key.split('/')[1]);
  const createdNumbers = new Set([...created].map(relNumber));
  // make_new_heap's transient table (CLUSTER, VACUUM FULL, ALTER TABLE rewrite) has its stats dropped too.
  const realDrops = new Set(end.droppedStatsOids.filter((oid) => !createdNumbers.has(oid)));
  const rewrite =
    end.droppedStatsOids.some((oid) => createdNumbers.has(oid)) || work.some((w) => w.filledFiles.size > 0);
  const relations = new Map<string, IncidentRelation>();
  const relationFor = (key: string): IncidentRelation => {
    let relation = relations.get(key);
    if (!relation) {
      const [db, rel] = key.split('/').map(Number) as [number, number];
      relation = { databaseOid: db, relfilenode: rel, deletes: 0 };
      const name = opts.relfilenodes?.get(key)?.name;
      if (name) relation.name = name;
      relations.set(key, relation);
    }
    return relation;
  };
  for (const file of end.droppedFiles) {
    const info = opts.relfilenodes?.get(file);
    const dropped = realDrops.has(info?.oid ?? relNumber(file)) || (realDrops.size > 0 && created.size === 0);
    if (dropped) relationFor(file).dropped = true;
    else if (created.size > 0 && !rewrite) relationFor(file).truncated = true;
    else if (created.size === 0) relationFor(file).dropped = true;
  }
  for (const w of work) {
    for (const file of w.truncatedInPlace) relationFor(file).truncated = true;
    for (const [file, count] of w.deletes) relationFor(file).deletes += count;
  }
  const userRelations = [...relations.entries()]
    .filter(([key]) => {
      const info = opts.relfilenodes?.get(key);
      return info
        ? TABLE_KINDS.has(info.kind) && !/^(pg_catalog|pg_toast|information_schema)\./.test(info.name)
        : relNumber(key) >= FIRST_NORMAL_OBJECT_ID;
    })
    .map(([, relation]) => relation);
  const dropped = work.flatMap((w) => w.dropped);
  if (userRelations.length === 0 && dropped.length === 0) return undefined;
  if (opts.table) {
    const wanted = qualifiedTableName(opts.table);
    if (!userRelations.some((r) => r.name === wanted)) return undefined;
  }
  return {
    xid: String(end.xid),
    commitLsn: end.lsn,
    commitTime: end.time,
    relations: userRelations,
    rowsDeleted: userRelations.reduce((sum, r) => sum + r.deletes, 0),
    ...(dropped.length ? { dropped } : {}),
  };
}

/** 'orders' → 'public.orders'; a name with a schema stays as it is. */
export function qualifiedTableName(table: string): string {
  return table.includes('.') ? table : `public.${table}`;
}

/**
 * Whether the relation map (of the delayed replica, at its replay position) has this table. A
 * table the replica no longer has cannot be named in the WAL: its drop was replayed already, or it
 * never existed there.
 */
export function relationMapHasTable(relfilenodes: ReadonlyMap<string, RelationInfo>, table: string): boolean {
  const wanted = qualifiedTableName(table);
  for (const info of relfilenodes.values()) if (info.name === wanted && TABLE_KINDS.has(info.kind)) return true;
  return false;
}

/**
 * Transactions that DELETEd rows, TRUNCATEd or DROPped tables, databases or tablespaces, committed in [from, to], in
 * commit order. Only what the archive holds: a transaction whose first records lie in segments
 * archived more than ten minutes before `from` is seen with its commit but without its deletes.
 */
export async function locateIncidents(archiveDir: string, opts: LocateOptions = {}): Promise<Incident[]> {
  const from = opts.from === undefined ? undefined : isoTimeMicros(opts.from);
  const to = opts.to === undefined ? undefined : isoTimeMicros(opts.to);
  if ((opts.from !== undefined && from === undefined) || (opts.to !== undefined && to === undefined)) {
    throw new Error('locateIncidents: from and to must be ISO 8601 times with a zone, such as "2024-05-01T12:00:00Z"');
  }
  if (opts.table !== undefined && !opts.relfilenodes)
    throw new Error(
      'locateIncidents: a table filter needs relation names: pass relfilenodes from relationMap() of the delayed replica',
    );
  const pending = new Map<number, PendingTransaction>();
  const incidents: Incident[] = [];
  const notArchivedBefore = from === undefined ? undefined : Number(from / 1000n) - ARCHIVE_CLOCK_MARGIN_MS;
  await scanArchive(
    archiveDir,
    { rmgrs: ['Transaction', 'Heap', 'Storage', 'XLOG', 'Database', 'Tablespace'], notArchivedBefore },
    (record) => {
      const end = parseTransactionEnd(record);
      if (!end) {
        recordWork(pending, record);
        return false;
      }
      const xids = [...new Set([end.xid, record.xid, ...end.subxacts])];
      const work = xids.map((x) => pending.get(x)).filter((w): w is PendingTransaction => w !== undefined);
      for (const x of xids) pending.delete(x);
      const at = isoTimeMicros(end.time) ?? 0n;
      if (end.outcome !== 'commit' || (from !== undefined && at < from) || (to !== undefined && at > to)) return false;
      const incident = summarise(end, work, opts);
      if (incident) incidents.push(incident);
      return false;
    },
    opts,
  );
  return incidents.sort((a, b) => a.commitTime.localeCompare(b.commitTime));
}
