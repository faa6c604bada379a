// Local snapshots of a data directory on the worker: a read-only btrfs snapshot where the volume
// is a btrfs subvolume (copy-on-write: near constant time whatever the size), else a copy (time
// and space grow with the data). Each backup is a directory <snapshotDir>/<id>/ holding one
// snapshot per volume and manifest.json, the backup record, written last. A deletion renames the
// record to manifest.json.deleting (with who began it) first and removes that file last.
import {
  closeSync,
  existsSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname, join, relative, isAbsolute } from 'node:path';
import type { LocalStorageConfig, LocalTarget } from '../../config/schema';
import { PermanentDriverError, type WaitOptions } from '../cluster/types';
import { nestedVolumeProblem } from '../postgres/dataLayout';
import { btrfsSnapshot, copyTree, isBtrfs, isBtrfsSubvolume, removeTree } from './fileSystem';
import { isMountPoint } from './mounts';
import { syncDirectory } from '../syncDirectory';
import { pauseForTests } from '../testPause';
import type {
  ClonedVolumes,
  ClonePlacement,
  DeleteOptions,
  SnapshotDriver,
  SnapshotOptions,
  SnapshotPlan,
  VolumeRestoreMethod,
} from './types';
import type { BackupBeingDeleted, BackupRecord, DatabaseVolume, SnapshotRef } from '../../contract/backups';
import { newestFirst } from './recordOrder';
import { beingDeleted, markForDeletion, type MarkedRecord } from './deletionMark';

const MANIFEST = 'manifest.json';
const DELETING = 'manifest.json.deleting';

export class LocalSnapshotDriver implements SnapshotDriver {
  readonly kind = 'local' as const;

  constructor(
    private readonly target: LocalTarget,
    private readonly storage: LocalStorageConfig,
  ) {}

  get snapshotRoot(): string {
    return this.storage.snapshotDir ?? `${this.target.pgdata}.pgops-snapshots`;
  }

  private backupDir(id: string): string {
    return join(this.snapshotRoot, id);
  }

  private methodFor(volume: DatabaseVolume): 'btrfs' | 'copy' {
    if (this.storage.method === 'copy') return 'copy';
    const rootOnBtrfs = isBtrfs(existingAncestor(this.snapshotRoot));
    if (isBtrfsSubvolume(volume.path) && rootOnBtrfs) return 'btrfs';
    if (this.storage.method === 'btrfs') {
      throw new PermanentDriverError(
        `storage method "btrfs" needs ${volume.path} to be a btrfs subvolume and the snapshot directory ${this.snapshotRoot} to be on the same btrfs file system (${volume.path} is ${isBtrfsSubvolume(volume.path) ? '' : 'not '}a subvolume; the snapshot directory is ${rootOnBtrfs ? '' : 'not '}on btrfs). Use method "auto" to fall back to a copy.`,
      );
    }
    return 'copy';
  }

  async plan(volumes: DatabaseVolume[]): Promise<SnapshotPlan> {
    const nested = nestedVolumeProblem(volumes);
    if (nested) throw new PermanentDriverError(`cannot snapshot the volumes consistently: ${nested}`);
    const methods: string[] = [];
    for (const volume of volumes) {
      if (!existsSync(volume.path))
        throw new PermanentDriverError(`${volume.role} directory ${volume.path} does not exist`);
      const rel = relative(volume.path, this.snapshotRoot);
      if (!rel.startsWith('..') && !isAbsolute(rel))
        throw new PermanentDriverError(
          `the snapshot directory ${this.snapshotRoot} lies inside the ${volume.role} directory ${volume.path}: it would be copied into itself and rolled back with it. Set storage.snapshotDir outside it.`,
        );
      if (isMountPoint(volume.path))
        throw new PermanentDriverError(
          `${volume.role} directory ${volume.path} is a mount point: a local rollback replaces the directory, which it cannot do to a mount point. Keep the data in a directory below the mount point, or use storage kind "rbd".`,
        );
      methods.push(`${volume.role} ${volume.path}: ${this.methodFor(volume) === 'btrfs' ? 'btrfs snapshot' : 'copy'}`);
    }
    return { volumes, methods };
  }

  async createSnapshots(id: string, volumes: DatabaseVolume[], opts: SnapshotOptions): Promise<SnapshotRef[]> {
    const dir = this.backupDir(id);
    if (existsSync(join(dir, MANIFEST)))
      throw new Error(`backup ${id} already exists with its record in ${dir}; refusing to overwrite it`);
    await this.discardSnapshots(id, opts.signal); // a half-made snapshot of an earlier attempt
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const refs: SnapshotRef[] = [];
    for (const [index, volume] of volumes.entries()) {
      const dest = join(dir, `${index}-${volume.role}${volume.oid ? `-${volume.oid}` : ''}`);
      const method = this.methodFor(volume);
      opts.onProgress?.(`${method === 'btrfs' ? 'btrfs snapshot' : 'copying'} ${volume.path} → ${dest}`);
      if (method === 'btrfs') await btrfsSnapshot(volume.path, dest, true, opts.signal);
      else await copyTree(volume.path, dest, opts.signal);
      refs.push({ role: volume.role, source: volume.path, method, ref: dest });
    }
    return refs;
  }

  async recoverFromCrash(): Promise<void> {
    // Nothing to undo: a half-made copy or snapshot is discarded by the next createSnapshots.
  }

  async saveRecord(record: BackupRecord): Promise<void> {
    const path = join(this.backupDir(record.id), MANIFEST);
    writeFileSync(`${path}.tmp`, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
  }

  private backupIds(): string[] {
    if (!existsSync(this.snapshotRoot)) return [];
    return readdirSync(this.snapshotRoot, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  }

  private has(id: string, file: string): boolean {
    return existsSync(join(this.backupDir(id), file));
  }

  async listRecords(): Promise<BackupRecord[]> {
    return this.backupIds()
      .filter((id) => this.has(id, MANIFEST) && !this.has(id, DELETING))
      .map((id) => JSON.parse(readFileSync(join(this.backupDir(id), MANIFEST), 'utf8')) as BackupRecord)
      .sort(newestFirst);
  }

  async listBeingDeleted(): Promise<BackupBeingDeleted[]> {
    return this.backupIds()
      .filter((id) => this.has(id, DELETING))
      .map((id) => {
        const path = join(this.backupDir(id), DELETING);
        return beingDeleted(JSON.parse(readFileSync(path, 'utf8')) as MarkedRecord, statSync(path).mtime.toISOString());
      })
      .sort(newestFirst);
  }

  async strayIds(): Promise<string[]> {
    return this.backupIds().filter(
      (id) => !this.has(id, MANIFEST) && !this.has(id, DELETING) && readdirSync(this.backupDir(id)).length > 0,
    );
  }

  private async discardSnapshots(id: string, signal?: AbortSignal): Promise<void> {
    const dir = this.backupDir(id);
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir)) await removeTree(join(dir, entry), signal);
    await removeTree(dir, signal);
  }

  async deleteBackup(id: string, opts: DeleteOptions = {}): Promise<void> {
    const dir = this.backupDir(id);
    const manifest = join(dir, MANIFEST);
    const mark = join(dir, DELETING);
    if (existsSync(manifest)) {
      // A mark already there (a crash between these two writes) keeps who began the deletion.
      if (!existsSync(mark)) {
        const record = JSON.parse(readFileSync(manifest, 'utf8')) as BackupRecord;
        writeDurably(mark, `${JSON.stringify(markForDeletion(record, opts.by), null, 2)}\n`);
      }
      rmSync(manifest);
      syncDirectory(dir);
    }
    await pauseForTests('delete-marked', opts.signal);
    if (!existsSync(dir)) return;
    let removed = 0;
    const removeOne = async (path: string) => {
      opts.onProgress?.(`removing ${path}`);
      await removeTree(path, opts.signal);
      // A crash test kills the worker here: the snapshots half removed, the mark still there.
      if (removed++ === 0) await pauseForTests('delete-partly-removed', opts.signal);
    };
    for (const entry of readdirSync(dir).filter((e) => e !== DELETING)) {
      const path = join(dir, entry);
      // A copy is removed a part at a time, so that progress (and a kill) can fall inside it.
      if (lstatSync(path).isDirectory() && !isBtrfsSubvolume(path))
        for (const part of readdirSync(path)) await removeOne(join(path, part));
      await removeOne(path);
    }
    rmSync(mark, { force: true });
    await removeTree(dir, opts.signal);
    this.removeEmptyBackupDirs();
  }

  /**
   * A crash between removing the mark and its directory leaves an empty directory: nothing to
   * list, removed by the next deletion. Only once it is a minute old: a backup being taken
   * makes its directory and fills it at once.
   */
  private removeEmptyBackupDirs(): void {
    for (const id of this.backupIds()) {
      const dir = this.backupDir(id);
      try {
        if (readdirSync(dir).length === 0 && Date.now() - statSync(dir).mtimeMs > 60_000)
          rmSync(dir, { recursive: true });
      } catch {
        // Gone meanwhile (another cluster's deletion on the same snapshot directory).
      }
    }
  }

  restoreMethodProblem(method: VolumeRestoreMethod): string | undefined {
    return method === 'clone-swap'
      ? `storage kind "local" restores by its own method (a btrfs snapshot or a copy put back in place): restoreMethod "clone-swap" is for storage kind "rbd" with runner "local"`
      : undefined;
  }

  async rollback(record: BackupRecord, opts: WaitOptions = {}): Promise<{ ms: number; methods: string[] }> {
    const started = Date.now();
    const methods: string[] = [];
    for (const snap of record.snapshots) {
      if (!existsSync(snap.ref))
        throw new PermanentDriverError(`the snapshot ${snap.ref} of backup ${record.id} is missing`);
      opts.onProgress?.(`rolling ${snap.source} back to ${snap.ref} (${snap.method})`);
      await replaceDirectory(snap.source, snap.ref, snap.method === 'btrfs', opts.signal);
      methods.push(
        `${snap.role} ${snap.source}: ${snap.method === 'btrfs' ? 'writable btrfs snapshot swapped in' : 'copied back'}`,
      );
    }
    return { ms: Date.now() - started, methods };
  }

  cloneSnapshots(record: BackupRecord, place: ClonePlacement, opts: WaitOptions = {}): Promise<ClonedVolumes> {
    return cloneLocalSnapshots(record, place, opts);
  }

  removeClone(place: ClonePlacement, opts: WaitOptions = {}): Promise<void> {
    return removeLocalClone(place, opts);
  }
}

/** Where the clones of a scratch instance go: below its directory, one per snapshot. */
function cloneDir(place: ClonePlacement): string {
  return join(place.dir, 'volumes');
}

/**
 * A writable copy of each snapshot of `record` below `place.dir`: a writable btrfs snapshot of the
 * read-only one where both are on the same btrfs (constant time), else `cp --reflink=auto` (a
 * reflink copy on XFS or btrfs, a full copy elsewhere). Each copy is marked ready when whole, so a
 * retry keeps the finished ones and redoes a half-made one.
 */
export async function cloneLocalSnapshots(
  record: BackupRecord,
  place: ClonePlacement,
  opts: WaitOptions = {},
): Promise<ClonedVolumes> {
  const dir = cloneDir(place);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const volumes: ClonedVolumes['volumes'] = [];
  const methods: string[] = [];
  for (const [index, snap] of record.snapshots.entries()) {
    if (!existsSync(snap.ref))
      throw new PermanentDriverError(`the snapshot ${snap.ref} of backup ${record.id} is missing`);
    const dest = join(dir, `${index}-${snap.role}`);
    const ready = `${dest}.ready`;
    let btrfs = snap.method === 'btrfs' && isBtrfsSubvolume(snap.ref) && isBtrfs(dir);
    if (!existsSync(ready) || !existsSync(dest)) {
      await removeTree(dest, opts.signal);
      opts.onProgress?.(`${btrfs ? 'writable btrfs snapshot of' : 'copying'} ${snap.ref} → ${dest}`);
      // Another btrfs file system than the snapshot's refuses a snapshot (cross-device): a copy then.
      if (btrfs)
        btrfs = await btrfsSnapshot(snap.ref, dest, false, opts.signal).then(
          () => true,
          () => false,
        );
      if (!btrfs) await copyTree(snap.ref, dest, opts.signal);
      writeFileSync(ready, btrfs ? 'btrfs' : 'copy');
    } else btrfs = readFileSync(ready, 'utf8') === 'btrfs';
    const oid = snap.role === 'tablespace' ? /-tablespace-(\d+)$/.exec(snap.ref)?.[1] : undefined;
    volumes.push({ role: snap.role, source: snap.source, clone: dest, path: dest, ...(oid && { oid }) });
    methods.push(
      `${snap.role} ${snap.source}: ${btrfs ? 'writable btrfs snapshot' : 'cp --reflink=auto'} of ${snap.ref}`,
    );
  }
  return { volumes, methods };
}

/** Removes the copies of a scratch instance. Idempotent. */
export async function removeLocalClone(place: ClonePlacement, opts: WaitOptions = {}): Promise<void> {
  const dir = cloneDir(place);
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir)) {
    opts.onProgress?.(`removing ${join(dir, entry)}`);
    await removeTree(join(dir, entry), opts.signal);
  }
  await removeTree(dir, opts.signal);
}

/**
 * Replaces `target` by a writable copy of `snapshot`, crash-safely: the copy is made beside the
 * target and marked ready, then the target is removed and the copy renamed into place. A retry
 * finds the ready copy (or makes it again) and finishes the swap.
 */
async function replaceDirectory(target: string, snapshot: string, btrfs: boolean, signal?: AbortSignal): Promise<void> {
  const staging = `${target}.pgops-restoring`;
  const ready = `${staging}.ready`;
  if (!existsSync(ready) || !existsSync(staging)) {
    await removeTree(staging, signal);
    if (btrfs) await btrfsSnapshot(snapshot, staging, false, signal);
    else await copyTree(snapshot, staging, signal);
    writeFileSync(ready, '');
  }
  await pauseForTests('rollback-swap', signal);
  await removeTree(target, signal);
  mkdirSync(dirname(target), { recursive: true });
  renameSync(staging, target);
  await removeTree(ready);
}

/** Written, flushed and renamed into place, then the directory flushed: the file survives a crash of the host. */
function writeDurably(path: string, text: string): void {
  const fd = openSync(`${path}.tmp`, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(`${path}.tmp`, path);
  syncDirectory(dirname(path));
}

function existingAncestor(path: string): string {
  let current = path;
  while (!existsSync(current) && dirname(current) !== current) current = dirname(current);
  return current;
}
