// Workflow code must replay the histories of workflows that are running when a worker is upgraded
// (a held planned stop can wait 8 h, a PITR replay hours). Each history in test/fixtures/histories
// was recorded from a real run of a released version (the demo, and a stop and a start on its
// cluster); the current workflow code must replay every one of them without a nondeterminism
// error. A change that cannot replay one needs `patched()` (see README, "Upgrading the worker").
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { dirname } from 'node:path';
import type { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';

const dir = resolve(__dirname, 'fixtures/histories');
const files = readdirSync(dir).filter((f) => f.endsWith('.json'));

/**
 * A history as `temporal workflow show -o json` prints it (proto3 JSON). The SDK's own
 * historyFromJSON fails here ("type must be a Type"): npm installs @temporalio/common and
 * @temporalio/proto each with their own copy of protobufjs 8 (the top level holds protobufjs 7 for
 * @grpc/proto-loader), and the parser of one rejects the types of the other. So the JSON is read
 * with the protobufjs that @temporalio/proto's types were made by.
 */
function historyFromCliJson(json: unknown): temporal.api.history.v1.IHistory {
  const protoDir = dirname(require.resolve('@temporalio/proto/package.json'));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { fromJson } = require(require.resolve('protobufjs/ext/protojson', { paths: [protoDir] })) as {
    fromJson: (type: unknown, json: unknown, opts?: object) => temporal.api.history.v1.IHistory;
  };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { patchProtobufRoot } = require('@temporalio/proto/lib/patch-protobuf-root') as {
    patchProtobufRoot: (root: unknown) => { lookupType: (name: string) => unknown };
  };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const root = patchProtobufRoot(require('@temporalio/proto'));
  return fromJson(root.lookupType('temporal.api.history.v1.History'), json, { ignoreUnknownFields: true });
}

describe('replay compatibility: recorded histories replay on the current workflow code', function () {
  this.timeout(120_000);

  it('has a recorded history of every workflow type', () => {
    const types = new Set(
      files.map((f) => {
        const history = JSON.parse(readFileSync(join(dir, f), 'utf8'));
        return history.events[0].workflowExecutionStartedEventAttributes.workflowType.name as string;
      }),
    );
    for (const type of [
      'plannedStopWorkflow',
      'plannedStartWorkflow',
      'snapshotBackupWorkflow',
      'rollbackRestoreWorkflow',
      'delayedReplicaPitrWorkflow',
      'locateIncidentWorkflow',
      'clusterLockWorkflow',
      'verifyBackupWorkflow',
      'recoverRowsWorkflow',
      'openScratchWorkflow',
      'listScratchWorkflow',
      'scratchGcWorkflow',
    ])
      assert.ok(types.has(type), `no recorded history of ${type} in ${dir}`);
  });

  it('replays every recorded history without a nondeterminism error', async () => {
    const histories = files.map((file) => ({
      workflowId: file,
      history: historyFromCliJson(JSON.parse(readFileSync(join(dir, file), 'utf8'))),
    }));
    const failed: string[] = [];
    let replayed = 0;
    for await (const result of Worker.runReplayHistories(
      { workflowsPath: require.resolve('../src/workflows') },
      histories,
    )) {
      replayed++;
      if (result.error) failed.push(`${result.workflowId}: ${result.error.message}`);
    }
    assert.equal(replayed, files.length);
    assert.deepEqual(failed, []);
  });
});
