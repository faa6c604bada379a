import assert from 'node:assert/strict';
import { FRESH_GRANT_MS, grantIsFresh } from '../src/activities/lockGuard';

// The first mutating step after an immediate grant acts without asking the lock again, but only
// on its first attempt, scheduled and started within seconds of the grant.
describe('lock guard: when a grant stands for the confirmation', () => {
  const granted = Date.parse('2026-12-02T10:00:00.000Z');
  const at = (ms: number) => granted + ms;
  const grantedAt = new Date(granted).toISOString();

  it('trusts a first attempt scheduled and started right after the grant', () => {
    assert.equal(grantIsFresh({ attempt: 1, currentAttemptScheduledTimestampMs: at(40) }, grantedAt, at(60)), true);
  });

  it('asks the lock on a retry, however soon', () => {
    assert.equal(grantIsFresh({ attempt: 2, currentAttemptScheduledTimestampMs: at(40) }, grantedAt, at(60)), false);
  });

  it('asks the lock without a grant time (a later step, or a grant after a wait in the queue)', () => {
    assert.equal(grantIsFresh({ attempt: 1, currentAttemptScheduledTimestampMs: at(40) }, undefined, at(60)), false);
    assert.equal(grantIsFresh({ attempt: 1, currentAttemptScheduledTimestampMs: at(40) }, 'not a time', at(60)), false);
  });

  it('asks the lock when the step was scheduled, or started, too long after the grant', () => {
    const late = FRESH_GRANT_MS + 1;
    assert.equal(
      grantIsFresh({ attempt: 1, currentAttemptScheduledTimestampMs: at(late) }, grantedAt, at(late)),
      false,
    );
    assert.equal(
      grantIsFresh({ attempt: 1, currentAttemptScheduledTimestampMs: at(40) }, grantedAt, at(40 + late)),
      false,
    );
  });

  it('asks the lock when the clocks disagree by more than a second', () => {
    // Scheduled "before" the grant, or this worker's clock far behind the server's.
    assert.equal(
      grantIsFresh({ attempt: 1, currentAttemptScheduledTimestampMs: at(-5000) }, grantedAt, at(-4990)),
      false,
    );
    assert.equal(
      grantIsFresh({ attempt: 1, currentAttemptScheduledTimestampMs: at(40) }, grantedAt, at(-600_000)),
      false,
    );
  });
});
