// Watching archive recovery until it ends (promoted) or pauses at its target, with live numbers:
// the restore's server and a scratch instance alike. A server that stops during recovery fails the
// step with its own last words.
import { preconditionFailed } from './failures';
import type { ActivityProgress } from './heartbeat';
import { compareLsn, lsnBytesBetween } from '../common/lsn';
import { readReplayStatus } from '../drivers/postgres/replica/replayControl';
import { withSession, type PgEndpoint } from '../drivers/postgres/session';
import { startupFailure } from '../drivers/postgres/restore/startupFailure';
import { delay } from '../drivers/waiting';
import type { RecoveryWatched } from '../contract/operations/restoreSteps';

export interface WatchedServer {
  cluster: string;
  step: string;
  /** Names the log in messages ("the server log of cluster …"). */
  logName: string;
  endpoint: PgEndpoint;
  running(): Promise<boolean>;
  serverLog(): Promise<string[]>;
  targetLsn?: string;
}

export async function watchRecoveryOf(server: WatchedServer, progress: ActivityProgress): Promise<RecoveryWatched> {
  const started = Date.now();
  let last: { lsn: string; at: number } | undefined;
  for (;;) {
    let status;
    try {
      status = await withSession(server.endpoint, readReplayStatus);
    } catch (err) {
      if (!(await server.running())) {
        const lines = await server.serverLog();
        // Recovery itself ended with FATAL (say, before its target): the server's words at the top.
        const refused = startupFailure(lines, server.logName);
        if (refused) throw refused;
        throw preconditionFailed(
          server.cluster,
          server.step,
          `the server stopped during recovery: ${(err as Error).message}\n${lines.slice(-8).join('\n')}`,
        );
      }
      progress.report(`server not answering yet: ${(err as Error).message}`);
      await delay(250, progress.signal);
      continue;
    }
    const ms = Date.now() - started;
    if (!status.inRecovery) return { state: 'promoted' as const, replayLsn: status.replayLsn, ms };
    if (status.pauseState === 'paused') return { state: 'paused' as const, replayLsn: status.replayLsn, ms };
    const lsn = status.replayLsn ?? '0/0';
    const numbers: Record<string, number | string> = {
      replayLsn: lsn,
      replayTimestamp: status.replayTimestamp ?? 'none yet',
    };
    if (last && compareLsn(lsn, last.lsn) > 0) {
      const rate = Number(lsnBytesBetween(last.lsn, lsn)) / Math.max(0.001, (Date.now() - last.at) / 1000);
      numbers.rateMBps = Number((rate / 1e6).toFixed(2));
      if (server.targetLsn && compareLsn(server.targetLsn, lsn) > 0) {
        const left = Number(lsnBytesBetween(lsn, server.targetLsn));
        numbers.bytesLeft = left;
        numbers.etaSeconds = Math.round(left / Math.max(1, rate));
      }
    }
    if (!last || compareLsn(lsn, last.lsn) !== 0) last = { lsn, at: Date.now() };
    progress.report(`replaying archived WAL: at ${lsn}`, numbers);
    await delay(250, progress.signal);
  }
}

/** The server log's last word on recovery: where it stopped and why (from the latest recovery on). */
export function lastRecoveryLine(lines: string[]): string | undefined {
  const begin = lines.findLastIndex((l) =>
    /starting (archive|point-in-time) recovery|starting backup recovery/.test(l),
  );
  const recent = lines.slice(Math.max(0, begin));
  return (
    recent.findLast((l) => /recovery stopping|pausing at the end of recovery|recovery has paused/.test(l)) ??
    recent.findLast((l) => /archive recovery complete|consistent recovery state/.test(l))
  );
}
