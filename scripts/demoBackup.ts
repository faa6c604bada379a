// The demo's third act: an online snapshot backup of "demo", a damaging UPDATE after some good
// writes, and a rollback restore that replays the archived WAL to just before the damage: the
// good writes stay, the damage is gone, and the state before the restore is kept as a safety
// snapshot (the restore itself can be undone).
import type { Client } from '@temporalio/client';
import type { PgEndpoint } from '../src/drivers/postgres/session';
import { withSession } from '../src/drivers/postgres/session';
import type { SnapshotBackupResult } from '../src/workflows/snapshotBackup';
import type { RollbackRestoreResult } from '../src/workflows/rollbackRestore';
import { watchProgress } from './demoProgress';

async function checksum(endpoint: PgEndpoint): Promise<string> {
  return withSession(endpoint, async (c) => {
    const row = (
      await c.query(
        "SELECT count(*) AS n, md5(string_agg(id || ':' || customer || ':' || amount, ',' ORDER BY id)) AS h FROM orders",
      )
    ).rows[0] as { n: string; h: string };
    return `${row.n} orders, checksum ${row.h}`;
  });
}

export async function runBackupAct(
  client: Client,
  endpoint: PgEndpoint,
  say: (line: string) => void,
  uiUrl: string,
  namespace: string,
): Promise<void> {
  say('snapshotBackupWorkflow {"cluster": "demo"}: pg_backup_start, snapshot, pg_backup_stop in one session');
  const backup = (await client.workflow.execute('snapshotBackupWorkflow', {
    taskQueue: 'pg-ops',
    workflowId: `demo-backup-${Date.now()}`,
    args: [{ cluster: 'demo', label: 'demo act 3' }],
  })) as SnapshotBackupResult;
  say(
    `  backup ${backup.backup.id}: ${backup.took}, ${backup.volumes.join('; ')}; ${backup.backupModeMs} ms in backup mode (snapshot ${backup.snapshotMs} ms), stop LSN ${backup.backup.stopLsn}`,
  );

  await withSession(endpoint, (c) =>
    c.query(
      "INSERT INTO orders SELECT m + g, 'after-backup-' || g, 5 FROM generate_series(1, 5) g, (SELECT max(id) AS m FROM orders) x",
    ),
  );
  const good = await checksum(endpoint);
  say(`the application writes 5 more orders after the backup: ${good}`);
  const bad = await withSession(endpoint, async (c) => {
    await c.query('BEGIN');
    await c.query('UPDATE orders SET amount = 0 WHERE id % 2 = 0');
    const xid = (await c.query('SELECT pg_current_xact_id()::text AS x')).rows[0].x as string;
    await c.query('COMMIT');
    await c.query('SELECT pg_switch_wal()'); // so the damage reaches the archive now, not in a second
    return xid;
  });
  say(`the damage: UPDATE orders SET amount = 0 WHERE id % 2 = 0 (transaction ${bad}): ${await checksum(endpoint)}`);

  const input = { cluster: 'demo', backup: backup.backup.id, confirm: 'demo', recoveryTarget: { xid: bad } };
  say(`rollbackRestoreWorkflow ${JSON.stringify(input)}`);
  const handle = await client.workflow.start('rollbackRestoreWorkflow', {
    taskQueue: 'pg-ops',
    workflowId: `demo-restore-${Date.now()}`,
    args: [input],
  });
  const stopWatching = watchProgress(handle, say);
  const restored = (await handle.result().finally(stopWatching)) as RollbackRestoreResult;
  const after = await checksum(endpoint);
  say(`  recovery: ${restored.verified.lastRecoveryLog?.replace(/^.*?(LOG|FATAL):\s*/, '') ?? 'done'}`);
  say(
    `after the restore: ${after}: ${after === good ? 'the 5 good orders kept, the damage undone' : 'NOT AS EXPECTED'}`,
  );
  if (after !== good) throw new Error('the restore did not bring back the data as it was before the damage');
  say(
    `the state before the restore is kept as safety snapshot ${restored.safetySnapshot?.id}: to undo, ${restored.undo}`,
  );
  say(`see the run in the Temporal UI: ${uiUrl}/namespaces/${namespace}/workflows/${handle.workflowId}`);
}
