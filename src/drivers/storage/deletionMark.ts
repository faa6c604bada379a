// A deletion that can always be finished: the backup's record is first marked as being deleted
// (in one write), then its snapshots go, and the mark goes last. Whatever a crash interrupts, the
// mark is still there and says what is left to delete; listings show the backup as being deleted.
import type { BackupBeingDeleted, BackupRecord, DeletionMark } from '../../contract/backups';

/** The record as stored while its deletion is under way. */
export type MarkedRecord = BackupRecord & { deletion?: DeletionMark; state?: string };

export function markForDeletion(record: BackupRecord, by: string | undefined): MarkedRecord {
  return { ...record, deletion: { since: new Date().toISOString(), by: by ?? 'unknown' } };
}

/** Reads a mark back; `since` stands in for a mark written without one (an older worker's). */
export function beingDeleted(stored: MarkedRecord, since?: string): BackupBeingDeleted {
  const { deletion, state: _state, ...record } = stored;
  return {
    ...record,
    state: 'being deleted',
    deletion: deletion ?? { since: since ?? record.stoppedAt, by: 'unknown' },
  };
}
