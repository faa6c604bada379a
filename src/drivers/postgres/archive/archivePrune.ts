// Removing files from the WAL archive so that a crash half way is finished by the next run: the
// list is written first to an intent file in the archive (`.pgops-prune.json`, atomically: a
// temporary file renamed over it), the files are removed in that order, and the intent goes
// last. A run that finds an intent finishes it before it decides anything new: what it lists was
// decided as not needed, and half an archive's tail removed is worse than all of it.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDirectory } from '../../syncDirectory';
import { pauseForTests } from '../../testPause';
import { isPrunableName, type ArchiveFile } from './archiveRetention';

export const PRUNE_INTENT_FILE = '.pgops-prune.json';

export interface PruneIntent {
  cluster: string;
  /** Who wrote it: the workflow and when. */
  writtenBy: string;
  writtenAt: string;
  files: ArchiveFile[];
}

export interface RemovedFiles {
  files: number;
  segments: number;
  bytes: number;
  first?: string;
  last?: string;
}

const isSegmentName = (name: string) => /^[0-9A-F]{24}$/.test(name);

/** The intent an interrupted run left, if any. One that cannot be read was never acted on (it is renamed into place whole). */
export function readPruneIntent(archiveDir: string): PruneIntent | undefined {
  let text: string;
  try {
    text = readFileSync(join(archiveDir, PRUNE_INTENT_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let intent: PruneIntent;
  try {
    intent = JSON.parse(text) as PruneIntent;
    if (!Array.isArray(intent.files)) throw new Error('no files');
  } catch {
    rmSync(join(archiveDir, PRUNE_INTENT_FILE), { force: true });
    return undefined;
  }
  // Only names retention may remove, in the archive itself: never a path, never a history file.
  intent.files = intent.files.filter(
    (f) => typeof f?.fileName === 'string' && isPrunableName(f.fileName) && typeof f.bytes === 'number',
  );
  return intent;
}

/** Writes the intent whole or not at all, and makes it durable before anything is removed. */
export function writePruneIntent(archiveDir: string, intent: PruneIntent): void {
  const path = join(archiveDir, PRUNE_INTENT_FILE);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(intent));
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  syncDirectory(archiveDir);
}

/**
 * Removes the intent's files in order (each one gone already counts as removed: an earlier
 * attempt did it), then the intent. Safe to run again at any point.
 */
export async function carryOutPruneIntent(
  archiveDir: string,
  intent: PruneIntent,
  opts: { onProgress?: (detail: string, numbers: Record<string, number>) => void; signal?: AbortSignal } = {},
): Promise<RemovedFiles> {
  const done: RemovedFiles = { files: 0, segments: 0, bytes: 0 };
  for (const [i, file] of intent.files.entries()) {
    opts.signal?.throwIfAborted();
    // One at a time and awaited: heartbeats and a cancel get through between files.
    await rm(join(archiveDir, file.fileName), { force: true });
    done.files++;
    done.bytes += file.bytes;
    if (isSegmentName(file.fileName)) {
      done.segments++;
      done.first ??= file.fileName;
      done.last = file.fileName;
    }
    if (i % 50 === 0 || i === intent.files.length - 1)
      opts.onProgress?.(`removing ${file.fileName} from the WAL archive`, {
        removedFiles: done.files,
        ofFiles: intent.files.length,
        removedBytes: done.bytes,
      });
    // Where a crash test kills the worker: some files removed, the intent still there.
    if (i === 0) await pauseForTests('archive-prune-removing', opts.signal);
  }
  syncDirectory(archiveDir);
  rmSync(join(archiveDir, PRUNE_INTENT_FILE), { force: true });
  return done;
}
