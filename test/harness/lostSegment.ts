// Provokes a recovery that ends before its target once the restore's check has passed: the
// archived segment holding the target is taken away (and put back afterwards), as if the archive
// lost a file during the restore. The check refuses a target the archive does not hold, so a
// failed recovery cannot be provoked with a target alone.
import assert from 'node:assert/strict';
import { existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { listArchivedSegments } from '../../src/drivers/postgres/archive/walInspect';
import { compareLsn } from '../../src/common/lsn';
import { pollUntil } from '../../src/drivers/waiting';
import { progressQuery } from '../../src/contract/definitions';

/** The restore's result, with `timeline`'s segment holding `lsn` gone from the archive after its check. */
export async function resultLosingSegment(
  handle: WorkflowHandle,
  archiveDir: string,
  timeline: number,
  lsn: string,
): Promise<unknown> {
  const onTimeline = listArchivedSegments(archiveDir).filter((s) => s.timeline === timeline);
  const segment = onTimeline.find((s) => compareLsn(s.startLsn, lsn) <= 0 && compareLsn(lsn, s.endLsn) < 0);
  assert.ok(segment, `timeline ${timeline}'s segment holding ${lsn} is archived`);
  // Not the timeline's first: recovery would read the parent's file of that segment instead.
  assert.ok(segment.segmentNumber > onTimeline[0]!.segmentNumber, 'a later segment than the timeline began in');
  const path = join(archiveDir, segment.fileName);
  const aside = `${path}.aside`;
  try {
    await pollUntil(
      async () => {
        const step = (await handle.query(progressQuery).catch(() => undefined))?.step ?? 'starting';
        return ['starting', 'resolve', 'check'].includes(step) ? { waiting: step } : { done: undefined };
      },
      { intervalMs: 50, timeoutMs: 60_000, what: 'the restore to pass its check' },
    );
    renameSync(path, aside);
    return await handle.result();
  } finally {
    if (existsSync(aside) && !existsSync(path)) renameSync(aside, path);
  }
}
