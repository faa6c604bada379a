// A PostgreSQL 15 StatefulSet on the real node for the Kubernetes backup/restore suites: one
// replica whose claim templates `pgdata` and `pgwal` (pg_wal on its own volume) are of the given StorageClass (the harness's CSI driver:
// plain directories, or RBD images of the test Ceph), archiving its WAL to a host directory
// mounted at /archive, with the `orders` sample table; plus the helpers those suites share.
import { chownSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { parseCatalog } from '../../src/config/catalog';
import { resolvePgEndpoint } from '../../src/drivers/postgres/endpoint';
import type { PgEndpoint } from '../../src/drivers/postgres/session';
import { withSession } from '../../src/drivers/postgres/session';
import type { SnapshotBackupResult } from '../../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../../src/workflows/rollbackRestore';
import type { KubeCluster } from './kubeCluster';
import { kubernetesTarget, testNamespace, writeCatalog } from './kubeObjects';
import { POSTGRES_GID, POSTGRES_UID } from './kube/realNode';
import { createRealNodePostgres, removeStatefulSet } from './kube/realNodePostgres';
import { commitStatements, createOrders, switchWalAndWaitForArchiver } from './sampleData';
import { runWorkflow } from './workers';

export interface KubeBackupFixture {
  ns: string;
  catalogPath: string;
  taskQueue: string;
  endpoint(): Promise<PgEndpoint>;
  sql<T = Record<string, unknown>>(text: string): Promise<T[]>;
  /** md5 of every row of `orders`, in order. */
  checksum(): Promise<string>;
  /** Switches to a new WAL segment and waits until the archive has the old one. */
  archiveNow(): Promise<void>;
  run<T>(type: string, input: Record<string, unknown>, catalogPath?: string): Promise<T>;
  backup(extra?: Record<string, unknown>): Promise<SnapshotBackupResult>;
  restore(extra: Record<string, unknown>): Promise<RollbackRestoreResult>;
  /** Helper pods left in the namespace. */
  helperPods(): Promise<number>;
  /**
   * The incident the restore exists for: a backup, good writes, then a damaging DELETE, archived;
   * then a restore of that backup to just before the DELETE's transaction.
   */
  restoreToJustBeforeDamage(): Promise<{ restored: RollbackRestoreResult; good: string; damaged: string }>;
  /** Deletes the StatefulSet and waits until its pods are gone: the real node is shared by the suites after. */
  teardown(): Promise<void>;
}

export async function kubeBackupFixture(
  cluster: KubeCluster,
  prefix: string,
  storageClass: string,
  storage: Record<string, unknown> | ((ns: string) => Record<string, unknown>),
  describeProblem: () => string,
): Promise<KubeBackupFixture> {
  const ns = await testNamespace(cluster, prefix);
  const archive = join(cluster.dir, 'archives', ns);
  mkdirSync(archive, { recursive: true });
  chownSync(archive, POSTGRES_UID, POSTGRES_GID);
  // PGDATA on one claim, pg_wal on another (initdb --waldir): both are the database's volumes.
  await createRealNodePostgres(cluster, {
    namespace: ns,
    name: 'pg',
    volumeClaimTemplates: ['pgdata', 'pgwal'],
    storageClass,
    init: 'initdb -D "$PGDATA" --waldir=/var/lib/pgwal/wal -U postgres --auth=trust >/dev/null',
    settings: {
      wal_level: 'replica',
      archive_mode: 'on',
      archive_command: 'cp %p /archive/%f',
      track_commit_timestamp: 'on',
    },
    extraMounts: [
      { name: 'pgwal', mountPath: '/var/lib/pgwal' },
      { name: 'archive', mountPath: '/archive' },
    ],
    volumes: [{ name: 'archive', hostPath: { path: archive, type: 'Directory' } }],
  }).catch((err: unknown) => {
    throw new Error(`${String(err)}\n${describeProblem()}`);
  });
  const catalogPath = await writeCatalog(`${prefix}-catalog`, {
    orders: {
      target: kubernetesTarget(cluster, ns, 'pg', { readyTimeoutSeconds: 180, stopTimeoutSeconds: 120 }),
      postgres: { user: 'postgres', portForward: {} },
      walArchive: '/archive',
      storage: typeof storage === 'function' ? storage(ns) : storage,
    },
  });
  const taskQueue = `pg-ops-${prefix}-${Math.random().toString(36).slice(2, 8)}`;
  const entry = () => parseCatalog(readFileSync(catalogPath, 'utf8'), catalogPath).clusters.orders!;
  const endpoint = () => resolvePgEndpoint('orders', entry());
  const sql = async <T = Record<string, unknown>>(text: string): Promise<T[]> =>
    withSession(await endpoint(), async (c) => (await c.query(text)).rows as T[]);
  await withSession(await endpoint(), (c) => createOrders(c, 3000));
  const run = <T>(type: string, input: Record<string, unknown>, catalog = catalogPath): Promise<T> =>
    runWorkflow(taskQueue, catalog, prefix, type, input);
  const checksum = async () => {
    const rows = await sql<{ h: string }>(
      `SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) AS h FROM orders t`,
    );
    return rows[0]!.h;
  };
  const archiveNow = async () => switchWalAndWaitForArchiver(await endpoint());
  const backup = (extra: Record<string, unknown> = {}) =>
    run<SnapshotBackupResult>('snapshotBackupWorkflow', { cluster: 'orders', ...extra });
  const restore = (extra: Record<string, unknown>) =>
    run<RollbackRestoreResult>('rollbackRestoreWorkflow', { cluster: 'orders', confirm: 'orders', ...extra });
  return {
    ns,
    catalogPath,
    taskQueue,
    endpoint,
    sql,
    checksum,
    archiveNow,
    run,
    backup,
    restore,
    async helperPods() {
      const core = cluster.admin().makeApiClient(CoreV1Api);
      return (await core.listNamespacedPod({ namespace: ns, labelSelector: 'pgops.temporal.io/helper-for' })).items
        .length;
    },
    teardown: () => removeStatefulSet(cluster, ns, 'pg'),
    async restoreToJustBeforeDamage() {
      const taken = await backup({ label: 'before the batch' });
      await commitStatements(await endpoint(), [
        "INSERT INTO orders SELECT g, 'late', 1 FROM generate_series(100001, 100050) g",
      ]);
      const good = await checksum();
      const bad = await commitStatements(await endpoint(), ['DELETE FROM orders WHERE id < 500']);
      const damaged = await checksum();
      await archiveNow();
      const restored = await restore({ backup: taken.backup.id, recoveryTarget: { xid: bad.xid } });
      return { restored, good, damaged };
    },
  };
}
