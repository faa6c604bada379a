// What the WAL archive holds and what a prune removed: archiveStatusWorkflow's result and a backup's.

export interface NeededSegment {
  fileName: string;
  timeline: number;
  startLsn: string;
  /** What needs it. */
  neededBy: string[];
}

export interface ArchivePruneResult {
  archiveDir?: string;
  /** Why the archive was left alone: no walArchive, retention turned off, not reachable from the worker. */
  skipped?: string;
  removedSegments: number;
  /** Segments, `.partial` and `.backup` files. */
  removedFiles: number;
  removedBytes: number;
  firstRemoved?: string;
  lastRemoved?: string;
  /** Files of them that an interrupted earlier run had decided and this one finished. */
  finishedFromEarlierRun?: number;
  keptSegments: number;
  keptBytes: number;
  /** The oldest segment kept because something needs it, and what. */
  oldestNeeded?: NeededSegment;
  notes: string[];
}

export interface ArchiveStatus {
  cluster: string;
  archiveDir?: string;
  /** Why the archive could not be looked at. */
  skipped?: string;
  files: number;
  bytes: number;
  segments: number;
  oldestSegment?: string;
  newestSegment?: string;
  timelines?: string;
  oldestNeeded?: NeededSegment;
  /** What a prune would remove now. */
  removable: { files: number; bytes: number };
  /** An interrupted prune's list, finished by the next backup with `keep`. */
  pendingPrune?: { files: number; writtenBy: string; writtenAt: string };
  retention: { prune: boolean; keepExtra?: string };
  notes: string[];
}
