// A real PostgreSQL primary archiving its WAL, with sample data, on the storage a test asks for:
// a plain directory (copy), a btrfs subvolume (copy-on-write snapshots) or a real RBD image
// (Ceph). Optionally a separate WAL directory and a tablespace, each on its own volume.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import {
  initLocalCluster,
  localTargetOf,
  startLocalCluster,
  stopLocalClusterIfRunning,
  endpointOf,
  pgOsUser,
  type LocalCluster,
} from '../../src/dev/localPostgres';
import { archivingSettings, prepareArchiveDir } from '../../src/dev/delayedReplicaSet';
import { freePort } from '../../src/dev/ports';
import { runCommand } from '../../src/drivers/exec';
import { withSession } from '../../src/drivers/postgres/session';
import type { StorageConfig } from '../../src/config/schema';
import type { RbdLocalVolume } from '../../src/drivers/storage/rbdLocalAttach';
import { scratchDir } from './testEnv';
import { runWorkflow } from './workers';
import { commitStatements, createOrders, switchWalAndWaitForArchiver } from './sampleData';
import { btrfsSubvolume, testBtrfs } from './btrfs';
import { testCeph } from './ceph';

export type StorageUnderTest = 'copy' | 'btrfs' | 'rbd';

export interface BackupFixture {
  name: string;
  cluster: LocalCluster;
  archiveDir: string;
  catalogPath: string;
  taskQueue: string;
  storage: StorageConfig;
  sql<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  /** md5 of every row of every test table, in order. */
  checksum(): Promise<string>;
  /** Runs statements in one transaction; returns its xid, commit time and the LSN after it. */
  commit(statements: string[]): Promise<{ xid: string; commitTime: string; lsn: string }>;
  /** Switches to a new WAL segment and waits until the archive has the old one. */
  archiveNow(): Promise<void>;
  /** Rewrites the catalog with more entries (e.g. a second cluster on the same snapshots). */
  writeCatalog(extra?: Record<string, unknown>): void;
  /** Runs a workflow to its end with an in-process worker on the fixture's task queue and catalog. */
  run<T>(type: string, input: Record<string, unknown>): Promise<T>;
  teardown(): Promise<void>;
}

async function makeVolume(
  kind: StorageUnderTest,
  base: string,
  name: string,
  rbdVolumes: RbdLocalVolume[],
  sizeMB = 512,
): Promise<string> {
  if (kind === 'btrfs') {
    const path = join(base, name);
    await btrfsSubvolume(path);
    return path;
  }
  if (kind === 'rbd') {
    const ceph = await testCeph();
    const mountpoint = join(base, `${name}-rbd`);
    rbdVolumes.push(await ceph.createVolume(`${name}-${Math.random().toString(36).slice(2, 8)}`, sizeMB, mountpoint));
    return join(mountpoint, name);
  }
  return join(base, name);
}

export async function backupFixture(
  label: string,
  opts: {
    storage: StorageUnderTest;
    rows?: number;
    waldir?: boolean;
    tablespace?: boolean;
    name?: string;
    /** Size of the data volume's RBD image (default 512 MB). */
    dataVolumeMB?: number;
    /** initdb --data-checksums. */
    dataChecksums?: boolean;
  },
): Promise<BackupFixture> {
  const dir = await scratchDir(label);
  const osUser = pgOsUser();
  // Volumes live apart from the cluster's own directory, which initdb's helper chowns recursively
  // (a FUSE mount below it would refuse).
  const base =
    opts.storage === 'btrfs'
      ? join(await testBtrfs(), label + Math.random().toString(36).slice(2, 6))
      : opts.storage === 'rbd'
        ? await scratchDir(`${label}-volumes`)
        : dir;
  mkdirSync(base, { recursive: true, mode: 0o755 });
  const rbdVolumes: RbdLocalVolume[] = [];
  const pgdata = await makeVolume(opts.storage, base, 'data', rbdVolumes, opts.dataVolumeMB);
  const waldir = opts.waldir ? await makeVolume(opts.storage, base, 'wal', rbdVolumes) : undefined;
  const tablespaceDir = opts.tablespace ? await makeVolume(opts.storage, base, 'ts1', rbdVolumes) : undefined;
  const archiveDir = join(dir, 'archive');
  await prepareArchiveDir(archiveDir, osUser);
  if (tablespaceDir) {
    mkdirSync(tablespaceDir, { recursive: true, mode: 0o700 });
    await runCommand('chown', ['-R', `${osUser}:`, tablespaceDir]);
  }
  const cluster = await initLocalCluster({
    dir,
    pgdata,
    waldir,
    port: await freePort(),
    settings: archivingSettings(archiveDir),
    dataChecksums: opts.dataChecksums,
  });
  await startLocalCluster(cluster);
  const endpoint = endpointOf(cluster);
  await withSession(endpoint, async (c) => {
    await createOrders(c, opts.rows ?? 1000);
    if (tablespaceDir) {
      await c.query(`CREATE TABLESPACE ts1 LOCATION '${tablespaceDir}'`);
      await c.query('CREATE TABLE notes (id int PRIMARY KEY, body text) TABLESPACE ts1');
      await c.query("INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 200) g");
    }
  });
  const name = opts.name ?? 'shop';
  const storage: StorageConfig =
    opts.storage === 'rbd'
      ? (await testCeph()).storage(rbdVolumes)
      : {
          kind: 'local',
          method: opts.storage === 'btrfs' ? 'btrfs' : 'copy',
          snapshotDir: join(base, 'snapshots'),
          preRestoreRetentionDays: 7,
        };
  const catalogPath = join(dir, 'pgops.yaml');
  const writeCatalog = (extra: Record<string, unknown> = {}) =>
    writeFileSync(
      catalogPath,
      stringify({
        clusters: { [name]: { target: localTargetOf(cluster), storage, walArchive: archiveDir }, ...extra },
      }),
    );
  writeCatalog();
  const sql = <T>(text: string, params: unknown[] = []) =>
    withSession(endpoint, async (c) => (await c.query(text, params)).rows as T[]);
  const taskQueue = `pg-ops-${label}-${Math.random().toString(36).slice(2, 8)}`;
  return {
    name,
    cluster,
    archiveDir,
    catalogPath,
    taskQueue,
    storage,
    sql,
    async checksum() {
      const tables = tablespaceDir ? ['orders', 'notes'] : ['orders'];
      const sums: string[] = [];
      for (const table of tables) {
        const rows = await sql<{ h: string }>(
          `SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) AS h FROM ${table} t`,
        );
        sums.push(`${table}:${rows[0]?.h}`);
      }
      return sums.join(' ');
    },
    commit: (statements) => commitStatements(endpoint, statements),
    archiveNow: () => switchWalAndWaitForArchiver(endpoint),
    writeCatalog,
    run: (type, input) => runWorkflow(taskQueue, catalogPath, label, type, input),
    teardown: () => stopLocalClusterIfRunning(cluster),
  };
}
