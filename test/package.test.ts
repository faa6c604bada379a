import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

const root = resolve(__dirname, '..');

describe('the package as a library (npm run build)', () => {
  it('builds JavaScript, declarations and the workflow bundle, and resolves through its exports map', function () {
    this.timeout(240_000);
    execFileSync('npm', ['run', '-s', 'build'], { cwd: root, stdio: 'pipe' });
    for (const file of ['dist/index.js', 'dist/index.d.ts', 'dist/workflows/index.js', 'dist/workflow-bundle.js'])
      assert.ok(existsSync(resolve(root, file)), `${file} is built`);
    // As a user's project would load it: plain node, no tsx, by package name.
    const probe = `
      const lib = require('temporal-postgres-ops');
      const wf = require('temporal-postgres-ops/workflows');
      console.log(JSON.stringify({
        lib: ['createPgOpsWorker', 'createActivities', 'loadCatalog', 'progressQuery', 'resumeSignal'].filter((k) => typeof lib[k] !== 'undefined'),
        workflows: Object.keys(wf).sort(),
      }));`;
    const out = JSON.parse(
      execFileSync(process.execPath, ['-e', probe], { cwd: root, env: process.env }).toString(),
    ) as { lib: string[]; workflows: string[] };
    assert.deepEqual(out.lib, [
      'createPgOpsWorker',
      'createActivities',
      'loadCatalog',
      'progressQuery',
      'resumeSignal',
    ]);
    assert.deepEqual(out.workflows, [
      'archiveStatusWorkflow',
      'backupSlotsWorkflow',
      'clusterLockWorkflow',
      'delayedReplicaPitrWorkflow',
      'deleteBackupWorkflow',
      'flattenVolumesWorkflow',
      'listBackupsWorkflow',
      'listScratchWorkflow',
      'locateIncidentWorkflow',
      'openScratchWorkflow',
      'plannedStartWorkflow',
      'plannedStopWorkflow',
      'recoverRowsWorkflow',
      'rollbackRestoreWorkflow',
      'scratchGcWorkflow',
      'snapshotBackupWorkflow',
      'verifyBackupWorkflow',
    ]);
  });
});
