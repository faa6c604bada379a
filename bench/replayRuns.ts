// What the targeted-replay benchmarks (pitr.ts, pitr-kubernetes.ts) share: the WAL they replay,
// written in many commits, and the manual runbook's wait for the replica to pause at its target.
import { KeptSession, withSession, type PgEndpoint } from '../src/drivers/postgres/session';
import { lsnBytesBetween } from '../src/common/lsn';

const MB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const insertLsn = (endpoint: PgEndpoint) =>
  withSession(
    endpoint,
    async (c) => (await c.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]!.l,
  );

/**
 * Writes `walMB` of WAL into table `bulk` (id bigint, pad text) in at least `minCommits` commits
 * (a delayed replica then stays at the start of it: the delay holds each commit record).
 */
export async function generateWal(
  primary: PgEndpoint,
  walMB: number,
  minCommits: number,
  progress?: (line: string) => void,
): Promise<{ from: string; written: number; commits: number }> {
  const from = await insertLsn(primary);
  const commits = Math.max(minCommits, Math.ceil(walMB / 10));
  const perCommit = (walMB * MB) / commits;
  let nextId = 1;
  let rows = 2000; // calibrated after the first commit
  let written = 0;
  let made = 0;
  while (made < commits || written < walMB * MB) {
    const before = await insertLsn(primary);
    await withSession(primary, (c) =>
      c.query('INSERT INTO bulk SELECT g, repeat(md5(g::text), 25) FROM generate_series($1::bigint, $2::bigint) g', [
        nextId,
        nextId + rows - 1,
      ]),
    );
    const after = await insertLsn(primary);
    nextId += rows;
    written = Number(lsnBytesBetween(from, after));
    made++;
    rows = Math.max(100, Math.round((rows * perCommit) / Math.max(1, Number(lsnBytesBetween(before, after)))));
    if (made % 20 === 0) progress?.(`generated ${(written / MB).toFixed(0)} MB of WAL in ${made} commits`);
    if (made > commits * 3) throw new Error('WAL generation overshot: check the calibration');
  }
  return { from, written, commits: made };
}

/**
 * Polls the replica every 100 ms on one kept session (as psql's \watch would) until replay is
 * paused; returns when (performance.now()) and where. Connection errors (a restart) are retried.
 */
export async function untilPaused(endpoint: PgEndpoint, timeoutMs: number): Promise<{ at: number; lsn: string }> {
  const began = performance.now();
  const poll = new KeptSession(endpoint);
  for (;;) {
    const row = await poll
      .run(
        async (c) =>
          (
            await c.query<{ s: string; l: string }>(
              'SELECT pg_get_wal_replay_pause_state() AS s, pg_last_wal_replay_lsn()::text AS l',
            )
          ).rows[0],
      )
      .catch(() => undefined);
    if (row?.s === 'paused') {
      const at = performance.now();
      await poll.close();
      return { at, lsn: row.l };
    }
    if (performance.now() - began > timeoutMs)
      throw new Error(`the replica did not pause at the target within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}
