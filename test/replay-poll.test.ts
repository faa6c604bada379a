import { strict as assert } from 'node:assert';
import { nextPollMs } from '../src/activities/replayMonitor';

describe('the replay watch polls often only near the target', () => {
  it('waits a third of the time left at the current rate, between 50 ms and 1 s', () => {
    const rate = 100e6; // 100 MB/s
    assert.equal(nextPollMs(1_000_000_000n, rate), 1000, '10 s away: once a second');
    assert.equal(nextPollMs(60_000_000n, rate), 200, '600 ms away: a third of it');
    assert.equal(nextPollMs(1_000_000n, rate), 50, '10 ms away: every 50 ms');
  });

  it('polls every 50 ms without a byte target, before a rate is known, or once at the target', () => {
    assert.equal(nextPollMs(undefined, 100e6), 50);
    assert.equal(nextPollMs(1_000_000_000n, 0), 50);
    assert.equal(nextPollMs(0n, 100e6), 50);
    assert.equal(nextPollMs(-5n, 100e6), 50);
  });
});
