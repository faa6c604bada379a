// Scratch instances of a local target's backups, on the worker: each in <dir>/<id>/ with its record
// (scratch.json, written before anything else), the clones of the backup's volumes (the storage
// driver's cloneSnapshots), its socket directory and server log; its PostgreSQL started with pg_ctl on
// a free port. The data directory is prepared like a restore's (backup_label, recovery settings) with
// the scratch settings on top, after every link into the cluster's volumes was moved to the clones.
import {
  chmodSync,
  chownSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import type { LocalTarget, ScratchConfig } from '../../config/schema';
import type { ScratchRecord, ScratchVolume } from '../../contract/scratch';
import { LocalClusterDriver } from '../cluster/local';
import { localDataDirectory } from '../cluster/dataDirectory';
import { PermanentDriverError, type WaitOptions } from '../cluster/types';
import { runCommand } from '../exec';
import { readArchiveFiles, type ArchiveFiles } from '../postgres/archive/archiveFiles';
import type { PgEndpoint } from '../postgres/session';
import {
  remapTablespaceMap,
  remapToClone,
  scratchAutoConf,
  scratchServerSettings,
} from '../postgres/scratch/scratchSettings';
import { removeTree } from '../storage/fileSystem';
import { databaseVolumes } from '../postgres/dataLayout';
import { isMountPoint } from '../storage/mounts';
import type { SnapshotDriver } from '../storage/types';
import { pauseForTests } from '../testPause';
import { freePort } from '../freePort';
import type { ScratchCommandResult, ScratchRequest, ScratchSpace } from './types';

const RECORD = 'scratch.json';
const PREPARED = 'prepared';

export class LocalScratchSpace implements ScratchSpace {
  constructor(
    private readonly cluster: string,
    private readonly target: LocalTarget,
    private readonly storage: () => SnapshotDriver,
    private readonly config: Pick<ScratchConfig, 'listenAddresses' | 'sharedBuffers'>,
    /** Where scratch instances go on the worker. */
    readonly where: string,
  ) {}

  private dirOf(id: string): string {
    return join(this.where, id);
  }

  async list(): Promise<ScratchRecord[]> {
    if (!existsSync(this.where)) return [];
    const records: ScratchRecord[] = [];
    for (const id of readdirSync(this.where)) {
      const record = readRecord(join(this.where, id, RECORD));
      if (record && record.cluster === this.cluster) records.push(record);
    }
    return records.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async find(id: string): Promise<ScratchRecord | undefined> {
    const record = readRecord(join(this.dirOf(id), RECORD));
    return record?.cluster === this.cluster ? record : undefined;
  }

  async create(request: ScratchRequest, opts: WaitOptions = {}): Promise<ScratchRecord> {
    const dir = this.dirOf(request.id);
    const existing = await this.find(request.id);
    if (existing && existsSync(join(dir, PREPARED))) return existing;
    this.refuseInsideTheDatabase();
    // PostgreSQL's OS user must pass through the scratch directory to its own instance's.
    mkdirSync(this.where, { recursive: true, mode: 0o711 });
    chmodSync(this.where, 0o711);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.giveToPostgres(dir);
    // The record first: a crash from here on leaves something the janitor finds and removes.
    let record: ScratchRecord = existing ?? {
      id: request.id,
      cluster: this.cluster,
      backup: request.backup.id,
      storage: request.backup.storage,
      owner: request.owner,
      createdAt: new Date().toISOString(),
      expiresAt: request.expiresAt,
      volumes: [],
      pgdata: '',
      port: await freePort(),
      methods: [],
    };
    writeRecord(dir, record);
    await pauseForTests('scratch-record-written', opts.signal);
    const cloned = await this.storage().cloneSnapshots(request.backup, { id: request.id, dir }, opts);
    for (const entry of readdirSync(dir, { withFileTypes: true }))
      if (entry.isDirectory() && !isMountPoint(join(dir, entry.name))) this.giveToPostgres(join(dir, entry.name));
    const pgdata = remapToClone(this.target.pgdata, cloned.volumes);
    if (!pgdata || !existsSync(join(pgdata, 'PG_VERSION')))
      throw new PermanentDriverError(
        `the clone of backup ${request.backup.id} holds no data directory where ${this.target.pgdata} would be (${pgdata ?? 'on no cloned volume'})`,
      );
    record = { ...record, volumes: cloned.volumes, pgdata, methods: cloned.methods };
    writeRecord(dir, record);
    await pauseForTests('scratch-cloned', opts.signal);
    await this.prepare(record, request, opts);
    writeFileSync(join(dir, PREPARED), '');
    return record;
  }

  /** The clone's data directory made a scratch instance's: links moved to the clones, recovery and scratch settings. */
  private async prepare(record: ScratchRecord, request: ScratchRequest, opts: WaitOptions): Promise<void> {
    const dir = this.dirOf(record.id);
    opts.onProgress?.(`preparing ${record.pgdata}: links to the clones, recovery settings, scratch settings`);
    moveLinksToClones(record.pgdata, record.volumes);
    // Every link must now stay inside this scratch instance: anything else could reach production.
    for (const link of dataDirectoryLinks(record.pgdata)) {
      const rel = relative(dir, readlinkSync(link));
      if (rel.startsWith('..') || isAbsolute(rel))
        throw new PermanentDriverError(`${link} still points outside the scratch instance (${readlinkSync(link)})`);
    }
    const files = localDataDirectory({ ...this.target, pgdata: record.pgdata }).files;
    if (request.recovery.write['recovery.signal'] !== undefined) await files.clearWal();
    for (const name of [...request.recovery.remove, 'postmaster.opts']) await files.remove(name);
    for (const [name, content] of Object.entries(request.recovery.write))
      await files.write(name, name === 'tablespace_map' ? remapTablespaceMap(content, record.volumes) : content);
    const settings = scratchServerSettings({
      port: record.port,
      listenAddresses: this.config.listenAddresses,
      sharedBuffers: this.config.sharedBuffers,
      // TCP only: a socket path below a deep scratch directory passes the 107-byte limit, and no
      // socket means none to collide with production's.
      socketDirectory: '',
      name: record.id,
      readOnly: request.recovery.settings.recovery_target_action !== 'promote',
    });
    const old = (await files.read('postgresql.auto.conf')) ?? '';
    await files.write('postgresql.auto.conf', scratchAutoConf(old, request.recovery.settings, settings));
  }

  private driver(record: ScratchRecord): LocalClusterDriver {
    return new LocalClusterDriver({
      ...this.target,
      pgdata: record.pgdata,
      port: record.port,
      logFile: join(this.dirOf(record.id), 'server.log'),
    });
  }

  async start(record: ScratchRecord, opts: WaitOptions = {}): Promise<void> {
    await this.driver(record).start(1, opts);
  }

  async running(record: ScratchRecord): Promise<boolean> {
    return record.pgdata !== '' && existsSync(record.pgdata) && this.driver(record).livePostmasterPid() !== undefined;
  }

  async stop(record: ScratchRecord, opts: WaitOptions = {}): Promise<void> {
    if (!(await this.running(record))) return;
    const driver = this.driver(record);
    await driver.stop({ ...opts, mode: 'fast' }).catch(() => driver.stop({ ...opts, mode: 'immediate' }));
  }

  async endpoint(record: ScratchRecord, base: PgEndpoint): Promise<PgEndpoint> {
    return { ...base, host: '127.0.0.1', port: record.port };
  }

  async runProgram(
    record: ScratchRecord,
    program: string,
    args: string[],
    opts: WaitOptions = {},
  ): Promise<ScratchCommandResult> {
    if (!/^[a-z_]+$/.test(program)) throw new Error(`refusing program name ${JSON.stringify(program)}`);
    return runCommand(join(this.target.binDir, program), ['-D', record.pgdata, ...args], {
      asUser: this.target.osUser,
      signal: opts.signal,
      timeoutMs: 6 * 3600_000,
    });
  }

  async archiveFiles(_record: ScratchRecord, walArchive: string): Promise<ArchiveFiles | string> {
    if (!existsSync(walArchive)) return `the WAL archive ${walArchive} does not exist on this worker`;
    return readArchiveFiles(walArchive);
  }

  portForward(): undefined {
    return undefined;
  }

  async serverLog(record: ScratchRecord): Promise<string[]> {
    try {
      return readFileSync(join(this.dirOf(record.id), 'server.log'), 'utf8')
        .trimEnd()
        .split('\n');
    } catch {
      return [];
    }
  }

  async remove(id: string, opts: WaitOptions = {}): Promise<void> {
    const dir = this.dirOf(id);
    if (!existsSync(dir)) return;
    const record = readRecord(join(dir, RECORD));
    if (record) await this.stop(record, opts);
    await pauseForTests('scratch-stopped-for-removal', opts.signal);
    await this.storage().removeClone({ id, dir }, opts);
    for (const entry of readdirSync(dir)) if (entry !== RECORD) await removeTree(join(dir, entry), opts.signal);
    // The record last: until here, a crash leaves it for the next removal to find.
    rmSync(join(dir, RECORD), { force: true });
    await removeTree(dir, opts.signal);
  }

  /** A scratch directory inside PGDATA, pg_wal or a tablespace would be snapshotted and rolled back with it. */
  private refuseInsideTheDatabase(): void {
    for (const volume of databaseVolumes(this.target.pgdata)) {
      const rel = relative(volume.path, this.where);
      if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel)))
        throw new PermanentDriverError(
          `the scratch directory ${this.where} lies inside the ${volume.role} directory ${volume.path}: set scratch.dir outside it`,
        );
    }
  }

  /** PostgreSQL runs as the target's OS user: the directories it must traverse become its own. */
  private giveToPostgres(path: string): void {
    if (process.getuid?.() !== 0) return;
    const owner = statSync(this.target.pgdata, { throwIfNoEntry: false }) ?? statSync(join(path, '..'));
    chownSync(path, owner.uid, owner.gid);
  }
}

/** pg_wal and pg_tblspc/<oid>: the links of a data directory. */
function dataDirectoryLinks(pgdata: string): string[] {
  const links = [join(pgdata, 'pg_wal')];
  const tblspc = join(pgdata, 'pg_tblspc');
  if (existsSync(tblspc)) links.push(...readdirSync(tblspc).map((oid) => join(tblspc, oid)));
  return links.filter((link) => existsSync(link) || isLink(link)).filter(isLink);
}

/** Each link of the cloned data directory moved from the cluster's volume to its clone. */
function moveLinksToClones(pgdata: string, volumes: readonly ScratchVolume[]): void {
  for (const link of dataDirectoryLinks(pgdata)) {
    const target = readlinkSync(link);
    const moved = remapToClone(target, volumes);
    if (!moved)
      throw new PermanentDriverError(
        `${link} points to ${target}, which is on no volume of the backup: the scratch server would reach into it`,
      );
    if (moved === target) continue;
    const temp = `${link}.pgops-tmp`;
    rmSync(temp, { force: true });
    symlinkSync(moved, temp);
    const owner = lstatSync(link);
    if (process.getuid?.() === 0) lchownSync(temp, owner.uid, owner.gid);
    renameSync(temp, link);
  }
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

function readRecord(path: string): ScratchRecord | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as ScratchRecord;
  } catch {
    return undefined;
  }
}

function writeRecord(dir: string, record: ScratchRecord): void {
  const path = join(dir, RECORD);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}
