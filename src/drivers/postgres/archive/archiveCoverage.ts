// Whether the WAL archive still holds everything a backup needs to be restored to any target
// after it: every segment from the backup's start along its timelines to the newest WAL. One
// missing segment makes every later target unreachable from that backup (listBackupsWorkflow).
import { listArchivedSegments } from './walInspect';
import { pathFromBackup, readTimelines, timelinesFrom } from './timelines';
import { missingSegment } from '../restore/targetTimeline';
import { archiveFilesOf, type ArchiveSource } from './archiveFiles';
import type { BackupCoverage } from '../../../contract/backups';

export function archiveCoverage(
  source: ArchiveSource,
  backups: readonly { id: string; timeline: number; startLsn: string; stopLsn: string }[],
): BackupCoverage[] {
  const archive = archiveFilesOf(source);
  const timelines = readTimelines(archive);
  const present = new Set(listArchivedSegments(archive).map((s) => s.fileName));
  const newest = Math.max(...timelines.keys());
  return backups.map((backup) => {
    const reachable = timelinesFrom(timelines, backup);
    const follows = Math.max(...reachable);
    const path = pathFromBackup(timelines, backup, follows);
    const missing = missingSegment(archive, timelines, path, undefined, present);
    const off = reachable.includes(newest) ? undefined : newest;
    const along = `timeline${reachable.length > 1 ? 's' : ''} ${reachable.join(', ')}`;
    const note = missing
      ? `segment ${missing} is missing from the WAL archive: this backup restores only to targets before it`
      : `the archive holds every segment from this backup's start along ${along}`;
    return {
      id: backup.id,
      timeline: backup.timeline,
      wal: missing ? 'gap' : 'complete',
      missingSegment: missing,
      timelines: reachable,
      notOnCurrentTimeline: off,
      note: off
        ? `${note}; the newest timeline (${off}) forked off before this backup was consistent, so it cannot reach today's history`
        : note,
    };
  });
}
