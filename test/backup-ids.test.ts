// Backup ids must differ for two backups started in the same second: a backup that finds a
// snapshot with its own id takes it for its own (that is how a retried step stays idempotent).
import assert from 'node:assert/strict';
import { backupIdFor, isBackupId } from '../src/common/backupIds';

describe('backup ids', () => {
  it('differ for two runs started in the same second, whose UUIDv7 run ids share the time prefix', () => {
    const start = new Date('2026-11-22T09:48:44.120Z');
    // Two run ids the Temporal server gave one after the other (UUIDv7: 48 bits of milliseconds first).
    const first = backupIdFor(start, '019aa2a8-0c52-7a4e-9d3f-5c1e2b7f90a1');
    const second = backupIdFor(new Date(start.getTime() + 300), '019aa2a8-0d87-7b10-8e22-a94f03c6d5e7');
    assert.notEqual(first, second);
    assert.ok(isBackupId(first) && isBackupId(second));
    assert.equal(first, '20261122T094844Z-2b7f90a1');
    assert.equal(backupIdFor(start, '019aa2a8-0c52-7a4e-9d3f-5c1e2b7f90a1', true), '20261122T094844Z-2b7f90a1-pre');
  });

  it('are the same for the same run: a retried step finds its own snapshot', () => {
    const start = new Date('2026-11-22T09:48:44.120Z');
    const runId = '019aa2a8-0c52-7a4e-9d3f-5c1e2b7f90a1';
    assert.equal(backupIdFor(start, runId), backupIdFor(new Date(start), runId));
  });
});
