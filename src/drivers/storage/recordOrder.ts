// The order backups are listed and pruned in: newest first by when each started. Backup IDs
// carry the time only to the second, so two taken in the same second would otherwise be ordered
// by their random suffix.
import type { BackupRecord } from '../../contract/backups';

export function newestFirst(a: BackupRecord, b: BackupRecord): number {
  return Date.parse(b.startedAt) - Date.parse(a.startedAt) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}
