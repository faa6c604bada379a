// The local driver's deletion mark on its own (no Temporal, no PostgreSQL): what a crash at each
// point of a deletion leaves is listed as being deleted and finished by the next deletion, and a
// mark an older worker left (manifest.json.deleting holding the bare record) is read the same way.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalSnapshotDriver } from '../src/drivers/storage/local';
import type { LocalStorageConfig, LocalTarget } from '../src/config/schema';
import type { BackupRecord } from '../src/contract/backups';

describe('local snapshots: a deletion marks the record first and can always be finished', () => {
  let root: string;
  let driver: LocalSnapshotDriver;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'pgops-deletion-mark-'));
    driver = new LocalSnapshotDriver(
      { kind: 'local', pgdata: join(root, 'data'), port: 5432 } as LocalTarget,
      {
        kind: 'local',
        method: 'copy',
        snapshotDir: join(root, 'snapshots'),
      } as LocalStorageConfig,
    );
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  /** A backup directory as a backup leaves it: a copy with a few parts, and the given files. */
  function backupDir(id: string, files: Record<string, unknown>): BackupRecord {
    const dir = join(root, 'snapshots', id);
    for (const part of ['base/1', 'global', 'pg_wal']) mkdirSync(join(dir, '0-data', part), { recursive: true });
    writeFileSync(join(dir, '0-data', 'base', '1', '1259'), 'x'.repeat(8192));
    const record = {
      id,
      cluster: 'shop',
      kind: 'backup',
      mode: 'offline',
      label: id,
      systemIdentifier: '1',
      pgVersion: '15',
      timeline: 1,
      startLsn: '0/1',
      stopLsn: '0/2',
      startedAt: `2026-12-0${id.slice(-1)}T00:00:00.000Z`,
      stoppedAt: `2026-12-0${id.slice(-1)}T00:00:01.000Z`,
      storage: 'local',
      snapshots: [{ role: 'data', source: join(root, 'data'), method: 'copy', ref: join(dir, '0-data') }],
      workflowId: 'wf-backup',
    } as BackupRecord;
    for (const [name, extra] of Object.entries(files))
      writeFileSync(join(dir, name), JSON.stringify({ ...record, ...(extra as object) }));
    return record;
  }

  it('lists a backup marked by an older worker (the bare record) as being deleted, by "unknown", and finishes it', async () => {
    backupDir('20261201T000000Z-00000001', { 'manifest.json.deleting': {} });
    backupDir('20261202T000000Z-00000002', { 'manifest.json': {} });
    assert.deepEqual(
      (await driver.listRecords()).map((r) => r.id),
      ['20261202T000000Z-00000002'],
    );
    const deleting = await driver.listBeingDeleted();
    assert.deepEqual(
      deleting.map((r) => [r.id, r.state, r.deletion.by]),
      [['20261201T000000Z-00000001', 'being deleted', 'unknown']],
    );
    assert.deepEqual(await driver.strayIds(), [], 'a backup being deleted is not a stray');
    await driver.deleteBackup('20261201T000000Z-00000001', { by: 'wf-prune' });
    assert.equal(existsSync(join(root, 'snapshots', '20261201T000000Z-00000001')), false);
    assert.deepEqual(await driver.listBeingDeleted(), []);
  });

  it('a crash between writing the mark and removing the record: listed as being deleted only, and who began it is kept', async () => {
    const mark = { deletion: { since: '2026-12-06T10:00:00.000Z', by: 'wf-first' } };
    backupDir('20261203T000000Z-00000003', { 'manifest.json': {}, 'manifest.json.deleting': mark });
    assert.deepEqual(await driver.listRecords(), []);
    assert.deepEqual(
      (await driver.listBeingDeleted()).map((r) => r.deletion),
      [mark.deletion],
    );
    await driver.deleteBackup('20261203T000000Z-00000003', { by: 'wf-second' });
    assert.equal(existsSync(join(root, 'snapshots', '20261203T000000Z-00000003')), false);
  });

  it('a deletion after the copy was half removed finishes it; an empty directory a crash left after the mark is swept', async () => {
    const empty = join(root, 'snapshots', '20261206T000000Z-00000006');
    mkdirSync(empty, { recursive: true });
    utimesSync(empty, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
    const fresh = join(root, 'snapshots', '20261207T000000Z-00000007');
    mkdirSync(fresh);
    assert.deepEqual(await driver.strayIds(), [], 'an empty directory holds nothing to list');
    const half = '20261204T000000Z-00000004';
    backupDir(half, { 'manifest.json.deleting': { deletion: { since: '2026-12-06T10:00:00.000Z', by: 'wf-x' } } });
    rmSync(join(root, 'snapshots', half, '0-data', 'base'), { recursive: true });
    await driver.deleteBackup(half);
    assert.equal(existsSync(join(root, 'snapshots', half)), false);
    assert.equal(existsSync(empty), false, 'the old empty directory is removed');
    assert.equal(existsSync(fresh), true, 'a fresh one may be a backup starting: it stays');
    assert.deepEqual(await driver.strayIds(), []);
  });

  it('marks a complete backup with who deletes it before anything goes: stopped there, it is listed as being deleted', async () => {
    const whole = '20261205T000000Z-00000005';
    backupDir(whole, { 'manifest.json': {} });
    process.env.PGOPS_TEST_PAUSE_AT = 'delete-marked:60000';
    const stop = new AbortController();
    try {
      const deleting = driver.deleteBackup(whole, { by: 'wf-delete', signal: stop.signal });
      while (existsSync(join(root, 'snapshots', whole, 'manifest.json'))) await new Promise((r) => setTimeout(r, 20));
      stop.abort(new Error('the step is stopped at its mark'));
      await assert.rejects(deleting, /stopped at its mark/);
    } finally {
      delete process.env.PGOPS_TEST_PAUSE_AT;
    }
    assert.deepEqual(await driver.listRecords(), []);
    const listed = await driver.listBeingDeleted();
    assert.deepEqual(
      listed.map((r) => [r.id, r.deletion.by]),
      [[whole, 'wf-delete']],
    );
    assert.ok(existsSync(join(root, 'snapshots', whole, '0-data', 'base')), 'nothing is removed before the mark');
    await driver.deleteBackup(whole, { by: 'wf-next' });
    assert.equal(existsSync(join(root, 'snapshots', whole)), false);
  });
});
