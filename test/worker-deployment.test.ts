// Worker Versioning settings of the standalone worker: both names or neither, validated before the
// worker connects (the upgrade itself runs in the temporal-cluster suite).
import assert from 'node:assert/strict';
import { workerDeploymentFromEnv } from '../src/config/workerDeployment';
import { workerSizingFromEnv } from '../src/config/workerSizing';

describe('Worker Versioning settings (PGOPS_WORKER_DEPLOYMENT, PGOPS_BUILD_ID, PGOPS_PROMOTE)', () => {
  it('is off with neither, and promotes only the first build by default', () => {
    assert.equal(workerDeploymentFromEnv({}), undefined);
    assert.equal(workerDeploymentFromEnv({ PGOPS_WORKER_DEPLOYMENT: ' ', PGOPS_BUILD_ID: '' }), undefined);
    assert.deepEqual(workerDeploymentFromEnv({ PGOPS_WORKER_DEPLOYMENT: 'pgops', PGOPS_BUILD_ID: '1.8.0+abc' }), {
      deploymentName: 'pgops',
      buildId: '1.8.0+abc',
      promote: 'if-none',
    });
    assert.equal(
      workerDeploymentFromEnv({ PGOPS_WORKER_DEPLOYMENT: 'pgops', PGOPS_BUILD_ID: 'b2', PGOPS_PROMOTE: 'always' })
        ?.promote,
      'always',
    );
  });

  it('refuses one without the other, names with a dot or a shell character, and an unknown promote', () => {
    assert.throws(
      () => workerDeploymentFromEnv({ PGOPS_BUILD_ID: 'b1' }),
      /both PGOPS_WORKER_DEPLOYMENT and PGOPS_BUILD_ID/,
    );
    assert.throws(() => workerDeploymentFromEnv({ PGOPS_WORKER_DEPLOYMENT: 'pgops' }), /both/);
    assert.throws(
      () => workerDeploymentFromEnv({ PGOPS_WORKER_DEPLOYMENT: 'pg.ops', PGOPS_BUILD_ID: 'b1' }),
      /PGOPS_WORKER_DEPLOYMENT must be letters, digits, "-" or "_" \(no "\."\)/,
    );
    assert.throws(
      () => workerDeploymentFromEnv({ PGOPS_WORKER_DEPLOYMENT: 'pgops', PGOPS_BUILD_ID: 'b1;rm -rf /' }),
      /PGOPS_BUILD_ID must be/,
    );
    assert.throws(
      () => workerDeploymentFromEnv({ PGOPS_WORKER_DEPLOYMENT: 'pgops', PGOPS_BUILD_ID: 'b1', PGOPS_PROMOTE: 'now' }),
      /PGOPS_PROMOTE must be one of if-none, always, never/,
    );
  });
});

describe('worker sizing (PGOPS_MAX_CONCURRENT_ACTIVITIES, PGOPS_MAX_CACHED_WORKFLOWS)', () => {
  it('takes whole numbers in range, and leaves the SDK defaults when unset', () => {
    assert.deepEqual(workerSizingFromEnv({}), {});
    assert.deepEqual(workerSizingFromEnv({ PGOPS_MAX_CONCURRENT_ACTIVITIES: '8', PGOPS_MAX_CACHED_WORKFLOWS: '500' }), {
      maxConcurrentActivityTaskExecutions: 8,
      maxCachedWorkflows: 500,
    });
    assert.throws(() => workerSizingFromEnv({ PGOPS_MAX_CONCURRENT_ACTIVITIES: '0' }), /from 1 to 1000, got "0"/);
    assert.throws(() => workerSizingFromEnv({ PGOPS_MAX_CACHED_WORKFLOWS: 'lots' }), /PGOPS_MAX_CACHED_WORKFLOWS/);
  });
});
