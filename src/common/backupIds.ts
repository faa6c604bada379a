// Backup ids: made by the backup and restore workflows from their start time and run id, so a
// retried step finds its own snapshot; sortable by time. Pure code (used inside workflows).

const BACKUP_ID = /^\d{8}T\d{6}Z-[0-9a-f]{8}(-pre)?$/;

export function isBackupId(text: unknown): text is string {
  return typeof text === 'string' && BACKUP_ID.test(text);
}

/**
 * '2026-11-22T00:25:20.123Z' + run id → '20261122T002520Z-<8 hex>' (+ '-pre' for a safety snapshot).
 * The hex digits are the run id's last ones: Temporal's run ids are UUIDv7, whose first 48 bits
 * are the time in milliseconds, so two backups started within the same minute would share their
 * first 8 digits, and the second would take the first one's snapshot for its own.
 */
export function backupIdFor(startTime: Date, runId: string, preRestore = false): string {
  const stamp = startTime.toISOString().slice(0, 19).replace(/[-:]/g, '') + 'Z';
  const hex = runId
    .replace(/[^0-9a-f]/gi, '')
    .toLowerCase()
    .slice(-8)
    .padStart(8, '0');
  return `${stamp}-${hex}${preRestore ? '-pre' : ''}`;
}
