import assert from 'node:assert/strict';
import { localClusterFixture, type LocalFixture } from './harness/fixtures';
import { endpointOf, startLocalCluster, stopLocalClusterIfRunning } from '../src/dev/localPostgres';
import { closeParkedSessions, parkedSessionCount, withParkedSession } from '../src/drivers/postgres/parkedSession';

// The worker keeps one idle session per standby for the pause: reused while it lives, forgotten
// when the server goes away, and replaced when it hangs.
describe('parked sessions: one kept session per server for the pause', () => {
  let fx: LocalFixture;
  const backendPid = () =>
    withParkedSession(endpointOf(fx.cluster), async (c) =>
      Number((await c.query('SELECT pg_backend_pid() AS p')).rows[0].p),
    );
  before(async () => {
    fx = await localClusterFixture('parked');
  });
  after(async () => {
    await closeParkedSessions();
    await fx?.teardown();
  });

  it('reuses the parked session, and opens a new one after the server restarted', async function () {
    this.timeout(60_000);
    const first = await backendPid();
    assert.equal(parkedSessionCount(), 1);
    assert.equal(await backendPid(), first, 'the second statement ran on the same backend');
    await stopLocalClusterIfRunning(fx.cluster);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(parkedSessionCount(), 0, 'the session ended with the server was forgotten');
    await startLocalCluster(fx.cluster);
    const after = await backendPid();
    assert.notEqual(after, first);
    assert.equal(await backendPid(), after);
  });

  it('gives up a parked session that hangs and runs the statement on a new one', async function () {
    this.timeout(60_000);
    const hung = await backendPid();
    process.kill(hung, 'SIGSTOP'); // the backend stops answering; its socket stays open
    try {
      const t0 = Date.now();
      const fresh = await backendPid();
      const waited = Date.now() - t0;
      assert.notEqual(fresh, hung);
      assert.ok(waited >= 900 && waited < 10_000, `gave the hung session about a second (${waited} ms)`);
      assert.equal(await backendPid(), fresh, 'the new session is the parked one now');
    } finally {
      process.kill(hung, 'SIGCONT');
    }
  });

  it("throws the statement's own error, from a new session, and parks nothing broken", async function () {
    this.timeout(60_000);
    await backendPid();
    await assert.rejects(
      withParkedSession(endpointOf(fx.cluster), (c) => c.query('SELECT no_such_function()')),
      /no_such_function/,
    );
    assert.equal(typeof (await backendPid()), 'number');
    assert.equal(parkedSessionCount(), 1);
  });
});
