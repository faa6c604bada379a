// The demo's fourth act, on "demo" and its WAL archive: the nightly backup and its restore drill
// (the backup cloned onto a scratch server, recovered, checked, removed), then an accidental DELETE
// on the primary whose rows come back from that backup through a scratch server, while the
// application keeps writing: the deleted rows are back, and every row the application wrote stays.
// No replica, no stop: production only sees the insert of the missing rows.
import type { Client } from '@temporalio/client';
import { withSession, type PgEndpoint } from '../src/drivers/postgres/session';
import { pollUntil } from '../src/drivers/waiting';
import { watchProgress } from './demoProgress';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RecoverRowsResult, VerifyBackupResult } from '../src/contract/operations/scratchRestores';
import type { DrillChecks } from '../src/contract/scratch';

/** The rows of one customer: how many, and their checksum. */
async function customerRows(endpoint: PgEndpoint, customer: string): Promise<{ n: number; h: string }> {
  return withSession(endpoint, async (c) => {
    const row = (
      await c.query(
        "SELECT count(*) AS n, md5(coalesce(string_agg(id || ':' || amount, ',' ORDER BY id), '')) AS h FROM orders WHERE customer = $1",
        [customer],
      )
    ).rows[0] as { n: string; h: string };
    return { n: Number(row.n), h: row.h };
  });
}

function describeChecks(checks: DrillChecks): string {
  const parts: string[] = [];
  if (checks.amcheck)
    parts.push(
      `pg_amcheck ${checks.amcheck.ok ? 'clean' : 'FOUND CORRUPTION'} over ${checks.amcheck.databases} databases`,
    );
  if (checks.checksums)
    parts.push(
      checks.checksums.enabled
        ? `pg_checksums ${checks.checksums.badBlocks} bad blocks`
        : 'pg_checksums skipped (data checksums are off on "demo")',
    );
  if (checks.archive)
    parts.push(`WAL archive ${checks.archive.ok ? 'complete' : 'INCOMPLETE'}: ${checks.archive.note}`);
  return parts.join('; ');
}

/**
 * The application: one order every ~100 ms, each in its own transaction, until stopped. Returns
 * the ids it saw committed.
 */
function startApplication(endpoint: PgEndpoint, firstId: number): { stop: () => Promise<number[]> } {
  const written: number[] = [];
  let running = true;
  let failed: unknown;
  const loop = withSession(endpoint, async (c) => {
    for (let id = firstId; running; id++) {
      await c.query("INSERT INTO orders VALUES ($1, 'app-live', 9.99)", [id]);
      written.push(id);
      await new Promise((r) => setTimeout(r, 100));
    }
  }).catch((err: unknown) => (failed = err)); // reported at stop(), not as an unhandled rejection
  return {
    stop: async () => {
      running = false;
      await loop;
      if (failed) throw new Error(`the application's writes failed: ${(failed as Error).message}`);
      return written;
    },
  };
}

export async function runScratchAct(
  client: Client,
  endpoint: PgEndpoint,
  say: (line: string) => void,
  uiUrl: string,
  namespace: string,
): Promise<void> {
  const link = (workflowId: string) => `${uiUrl}/namespaces/${namespace}/workflows/${workflowId}`;

  say('the nightly backup: snapshotBackupWorkflow {"cluster": "demo", "label": "nightly"}');
  const nightly = (await client.workflow.execute('snapshotBackupWorkflow', {
    taskQueue: 'pg-ops',
    workflowId: `demo-nightly-backup-${Date.now()}`,
    args: [{ cluster: 'demo', label: 'nightly' }],
  })) as SnapshotBackupResult;
  say(
    `  backup ${nightly.backup.id}: ${nightly.took}, ${nightly.backupModeMs} ms in backup mode, stop LSN ${nightly.backup.stopLsn}`,
  );

  say(
    'the nightly drill: verifyBackupWorkflow {"cluster": "demo"} clones that backup onto a scratch server, recovers it and checks it',
  );
  const drillHandle = await client.workflow.start('verifyBackupWorkflow', {
    taskQueue: 'pg-ops',
    workflowId: `demo-drill-${Date.now()}`,
    args: [{ cluster: 'demo' }],
  });
  const stopDrillWatch = watchProgress(drillHandle, say);
  const drill = (await drillHandle.result().finally(stopDrillWatch)) as VerifyBackupResult;
  say(
    `drill of backup ${drill.backup}: ${drill.verification.ok ? 'passed' : 'FAILED'}, usable on a scratch server after ${drill.verification.timeToUsableMs} ms (recovery ${drill.verification.recoveryMs} ms)`,
  );
  say(`  checks: ${describeChecks(drill.checks)}`);
  say(
    `  cloned with ${drill.scratch.methods.join('; ')}; scratch server ${drill.scratch.removed ? 'removed' : 'NOT REMOVED'}; the verdict is kept in the backup's record (pgops backups demo)`,
  );
  if (!drill.verification.ok || !drill.scratch.removed) throw new Error('the nightly drill did not pass');
  say(`see the drill in the Temporal UI: ${link(drillHandle.workflowId)}`);

  const customer = 'customer-13';
  const good = await customerRows(endpoint, customer);
  const firstAppId = 2_000_000 + (Date.now() % 1_000_000) * 10;
  say('the application starts writing: one new order every 100 ms, and keeps going during everything below');
  const app = startApplication(endpoint, firstAppId);
  await new Promise((r) => setTimeout(r, 1000));
  const bad = await withSession(endpoint, async (c) => {
    await c.query('BEGIN');
    const deleted = await c.query('DELETE FROM orders WHERE customer = $1', [customer]);
    const xid = (await c.query('SELECT pg_current_xact_id()::text AS x')).rows[0].x as string;
    await c.query('COMMIT');
    return { xid, rows: deleted.rowCount ?? 0 };
  });
  say(
    `the accident: DELETE FROM orders WHERE customer = '${customer}' (transaction ${bad.xid}): ${bad.rows} rows gone from the primary, no delayed replica to help`,
  );
  // The DELETE's segment switched out now: the scratch replay must find it in the archive.
  const lsn = await withSession(
    endpoint,
    async (c) => (await c.query('SELECT pg_switch_wal()::text AS l')).rows[0].l as string,
  );
  await pollUntil(
    async () =>
      withSession(endpoint, async (c) =>
        (await c.query('SELECT last_archived_wal >= pg_walfile_name($1) AS ok FROM pg_stat_archiver', [lsn])).rows[0].ok
          ? { done: undefined }
          : { waiting: 'archiving' },
      ),
    { intervalMs: 200, timeoutMs: 60_000, what: 'the WAL archive to hold the DELETE' },
  );

  const input = { cluster: 'demo', target: { xid: bad.xid }, tables: ['orders'], insertMissing: true };
  say(
    `recoverRowsWorkflow ${JSON.stringify(input)}: the backup on a scratch server, replayed to just before the DELETE, orders exported, the missing rows inserted`,
  );
  const handle = await client.workflow.start('recoverRowsWorkflow', {
    taskQueue: 'pg-ops',
    workflowId: `demo-recover-rows-${Date.now()}`,
    args: [input],
  });
  const stopWatching = watchProgress(handle, say);
  let recovered: RecoverRowsResult;
  let written: number[];
  try {
    recovered = (await handle.result().finally(stopWatching)) as RecoverRowsResult;
  } finally {
    written = await app.stop();
  }
  say(
    `scratch replay stopped at ${recovered.stopped.replayLsn} from backup ${recovered.backup}; exported ${recovered.exported?.[0]?.rows} rows as of the target to ${recovered.exported?.[0]?.file}`,
  );
  say(
    `inserted ${recovered.inserted?.[0]?.inserted} missing rows into the primary in one transaction; scratch server ${recovered.scratch.removed ? 'removed' : 'NOT REMOVED'}`,
  );

  const after = await customerRows(endpoint, customer);
  const back = after.n === good.n && after.h === good.h;
  say(
    `${customer}: ${good.n} orders before the accident, ${after.n} now: ${back ? 'the deleted rows are back, unchanged' : 'NOT AS EXPECTED'}`,
  );
  const kept = await withSession(endpoint, async (c) =>
    Number(
      (await c.query('SELECT count(*) AS n FROM orders WHERE id = ANY($1::bigint[])', [written])).rows[0].n as string,
    ),
  );
  const allKept = kept === written.length && written.length > 0;
  say(
    `the application wrote ${written.length} orders from just before the accident to the end of the recovery, ${kept} of them on the primary: ${allKept ? 'every row the application wrote is kept' : 'ROWS LOST'}`,
  );
  if (!back || !allKept) throw new Error('the rows did not come back as expected');
  say(`see the recovery in the Temporal UI: ${link(handle.workflowId)}`);
}
