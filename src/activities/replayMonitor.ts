// Step 5: watch replay move towards the target and stop there. Polls the replica on one kept
// session, 20 times a second near the target (a pause there is seen within 50 ms) and less often
// while the target is far (at most once a second, so the watch takes little CPU from the startup
// process that replays). Reports replay LSN and timestamp, bytes and time left, rate and ETA
// (heartbeats + progress signal), and ends when replay is paused at the target. A retry after a
// worker crash only resumes watching: nothing here restarts recovery.
import { archiveEndLsn } from '../drivers/postgres/archive/walInspect';
import { readReplayPosition, type ReplayPosition } from '../drivers/postgres/replica/replayControl';
import { KeptSession } from '../drivers/postgres/session';
import { compareLsn, lsnBytesBetween } from '../common/lsn';
import { delay } from '../drivers/waiting';
import type { ClusterServices } from '../drivers/clusterServices';
import type { ActivityProgress } from './heartbeat';
import { preconditionFailed } from './failures';
import type { ReplayTargetReached } from '../contract/operations/pitrSteps';

/** Replay stops just before the target's commit record: its end can sit a page header short of it. */
const STOP_SLACK_BYTES = 128n;
/** One cheap query per poll on a kept session: the pause at the target is seen within this. */
const POLL_MS = 50;
/** The longest wait between polls while the target is far: progress stays a second fresh. */
const FAR_POLL_MS = 1000;

/**
 * How long to wait before the next poll: a third of the time the target is still away at the
 * current rate, so a rate that doubles is still caught before the target, and never less than
 * POLL_MS. Without a byte target or a rate yet, POLL_MS.
 */
export function nextPollMs(bytesLeft: bigint | undefined, rateBytesPerSecond: number): number {
  if (bytesLeft === undefined || rateBytesPerSecond <= 0 || bytesLeft <= 0n) return POLL_MS;
  const etaMs = (Number(bytesLeft) / rateBytesPerSecond) * 1000;
  return Math.round(Math.min(FAR_POLL_MS, Math.max(POLL_MS, etaMs / 3)));
}

export async function waitForReplayTarget(
  services: ClusterServices,
  input: { cluster: string; targetLsn?: string; targetTime?: string; stallTimeoutMs: number },
  progress: ActivityProgress,
  /** Told every replay position the watch reads. */
  onPosition?: (lsn: string) => void,
): Promise<ReplayTargetReached> {
  const session = new KeptSession(await services.endpoint());
  try {
    return await watchReplay(session, services.archive.walArchive, input, progress, onPosition);
  } finally {
    await session.close();
  }
}

async function watchReplay(
  session: KeptSession,
  archive: string | undefined,
  input: { cluster: string; targetLsn?: string; targetTime?: string; stallTimeoutMs: number },
  progress: ActivityProgress,
  onPosition?: (lsn: string) => void,
): Promise<ReplayTargetReached> {
  const { cluster, targetLsn, targetTime } = input;
  const started = Date.now();
  let firstLsn: string | undefined;
  let last: { lsn: string; at: number } | undefined;
  let lastMovedAt = Date.now();
  let rate = 0;
  for (;;) {
    let status: ReplayPosition;
    try {
      status = await session.run(readReplayPosition);
    } catch (err) {
      progress.report(`replica not answering yet (starting up?): ${(err as Error).message}`);
      await delay(POLL_MS, progress.signal);
      continue;
    }
    const lsn = status.replayLsn ?? '0/0';
    if (status.replayLsn) onPosition?.(status.replayLsn);
    firstLsn ??= lsn;
    const now = Date.now();
    if (last && compareLsn(lsn, last.lsn) > 0) {
      const instant = Number(lsnBytesBetween(last.lsn, lsn)) / Math.max(0.001, (now - last.at) / 1000);
      rate = rate === 0 ? instant : 0.7 * rate + 0.3 * instant;
      lastMovedAt = now;
    }
    if (!last || compareLsn(lsn, last.lsn) !== 0) last = { lsn, at: now };

    const bytesLeft = targetLsn ? lsnBytesBetween(lsn, targetLsn) : undefined;
    const secondsLeft =
      targetTime && status.replayTimestamp
        ? (Date.parse(targetTime) - Date.parse(status.replayTimestamp)) / 1000
        : undefined;
    const numbers: Record<string, number | string> = {
      replayLsn: lsn,
      replayTimestamp: status.replayTimestamp ?? 'none yet',
      pauseState: status.pauseState,
      rateMBps: Number((rate / 1e6).toFixed(2)),
    };
    if (bytesLeft !== undefined) numbers.bytesLeft = Number(bytesLeft > 0n ? bytesLeft : 0n);
    if (secondsLeft !== undefined) numbers.replayTimeLeftSeconds = Math.max(0, Math.round(secondsLeft));
    if (bytesLeft !== undefined && rate > 0) numbers.etaSeconds = Math.max(0, Math.round(Number(bytesLeft) / rate));

    if (status.pauseState === 'paused') {
      if (!targetLsn || lsnBytesBetween(lsn, targetLsn) <= STOP_SLACK_BYTES) {
        const seconds = (now - started) / 1000;
        const bytesReplayed = Number(lsnBytesBetween(firstLsn, lsn));
        return {
          replayLsn: lsn,
          replayTimestamp: status.replayTimestamp,
          pauseState: status.pauseState,
          bytesReplayed,
          ms: now - started,
          averageRateBytesPerSecond: seconds > 0 ? Math.round(bytesReplayed / seconds) : 0,
        };
      }
      throw preconditionFailed(
        cluster,
        'replay',
        `replay is paused at ${lsn}, ${bytesLeft} bytes before the target ${targetLsn}: someone paused it by hand? Resume with pg_wal_replay_resume() only after checking; this workflow stops here`,
      );
    }
    if (!status.inRecovery)
      throw preconditionFailed(
        cluster,
        'replay',
        'the replica left recovery (it was promoted) before reaching the target',
      );
    progress.report(
      `replaying: at ${lsn}${bytesLeft !== undefined ? `, ${numbers.bytesLeft} bytes to the target` : ''}${secondsLeft !== undefined ? `, ${numbers.replayTimeLeftSeconds}s of primary time to the target` : ''}`,
      numbers,
    );

    if (now - lastMovedAt > input.stallTimeoutMs) {
      const end = archive ? archiveEndLsn(archive) : undefined;
      throw preconditionFailed(
        cluster,
        'replay',
        `replay has not moved from ${lsn} for ${Math.round(input.stallTimeoutMs / 1000)}s${end ? ` and the archive ends at ${end}` : ''}: the target is not in the WAL the replica can read (beyond the archive's end?). The replica has the target set with delay 0 and will pause there if that WAL arrives; run the workflow again with "returnToDelay" to undo, or choose an earlier target.`,
      );
    }
    await delay(nextPollMs(bytesLeft, rate), progress.signal);
  }
}
