// A WAL archive's file list with the history files' text: what the coverage and timeline checks read.
// Read from a directory the worker sees (readArchiveFiles), or from a listing made elsewhere, such as
// inside a pod that mounts the archive (parseArchiveListing): the same checks then run on either.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface ArchiveFile {
  name: string;
  size: number;
  /** Modification time: when the file was archived. */
  mtime: Date;
}

export interface ArchiveFiles {
  /** Where the archive is, for messages. */
  dir: string;
  files: ArchiveFile[];
  /** The text of each timeline history file (NNNNNNNN.history), by file name. */
  histories: ReadonlyMap<string, string>;
}

/** An archive directory or its files as read elsewhere. */
export type ArchiveSource = string | ArchiveFiles;

export const HISTORY_FILE = /^([0-9A-F]{8})\.history$/;

/**
 * The files of an archive directory the worker reads itself; `histories: false` leaves the history
 * files unread (listing segments needs only names, sizes and times).
 */
export function readArchiveFiles(dir: string, opts: { histories?: boolean } = {}): ArchiveFiles {
  const files: ArchiveFile[] = [];
  const histories = new Map<string, string>();
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stat = statSync(path, { throwIfNoEntry: false });
    if (!stat?.isFile()) continue;
    files.push({ name, size: stat.size, mtime: stat.mtime });
    if (opts.histories !== false && HISTORY_FILE.test(name)) histories.set(name, readFileSync(path, 'utf8'));
  }
  return { dir, files, histories };
}

export function archiveFilesOf(source: ArchiveSource, opts: { histories?: boolean } = {}): ArchiveFiles {
  return typeof source === 'string' ? readArchiveFiles(source, opts) : source;
}

/**
 * Parses `find DIR -maxdepth 1 -type f -printf '%f\t%s\t%T@\n'` (name, size, seconds since the epoch);
 * the history files' text is read separately.
 */
export function parseArchiveListing(listing: string): ArchiveFile[] {
  const files: ArchiveFile[] = [];
  for (const line of listing.split('\n')) {
    const [name, size, seconds] = line.split('\t');
    if (!name || !/^\d+$/.test(size ?? '') || !/^\d+(\.\d+)?$/.test(seconds ?? '')) continue;
    files.push({ name, size: Number(size), mtime: new Date(Math.round(Number(seconds) * 1000)) });
  }
  return files;
}

/** The command that lists an archive directory in a pod for parseArchiveListing (GNU find). */
export function archiveListingCommand(dir: string): string[] {
  return ['find', dir, '-maxdepth', '1', '-type', 'f', '-printf', '%f\\t%s\\t%T@\\n'];
}
