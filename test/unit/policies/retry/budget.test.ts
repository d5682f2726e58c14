import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { BudgetConfig } from '../../../../src/config/types.ts';
import { RetryBudget } from '../../../../src/policies/retry/budget.ts';
import { ManualClock } from '../../../../src/util/clock.ts';
import { activeTimeouts } from '../timers.ts';

const budget = (ratio: number, minPerSecond: number, window = 10_000): BudgetConfig => ({ ratio, minPerSecond, window });

/** Spends retries until the budget says no; returns how many went through. */
function drain(b: RetryBudget, limit = 10_000): number {
  let n = 0;
  while (n < limit && b.tryAcquire()) n++;
  return n;
}

describe('RetryBudget (SPEC §4.2 budget)', () => {
  let timers: number;
  before(() => {
    timers = activeTimeouts();
  });
  after(() => {
    assert.equal(activeTimeouts(), timers, 'the budget keeps no timer');
  });

  it('allows minPerSecond × window retries with no requests at all', () => {
    const b = new RetryBudget(budget(0.2, 1, 10_000), new ManualClock());
    assert.equal(b.remaining(), 10);
    assert.equal(drain(b), 10);
    assert.equal(b.remaining(), 0);
    assert.equal(b.tryAcquire(), false);
  });

  it('allows ratio × requests retries once that exceeds the floor', () => {
    const b = new RetryBudget(budget(0.5, 0.1, 10_000), new ManualClock());
    for (let i = 0; i < 40; i++) b.recordRequest();
    assert.equal(b.remaining(), 20);
    assert.equal(drain(b), 20);
    b.recordRequest();
    b.recordRequest();
    assert.equal(b.remaining(), 1, 'two more requests earn one more retry');
    assert.equal(drain(b), 1);
  });

  it('counts a fractional limit the way tryAcquire does (retries must stay below it)', () => {
    const b = new RetryBudget(budget(0.5, 0, 10_000), new ManualClock());
    for (let i = 0; i < 5; i++) b.recordRequest(); // limit 2.5: retries 0, 1 and 2 are below it
    assert.equal(b.remaining(), 3);
    assert.equal(drain(b), 3);
  });

  it('does not let a float product such as 0.1 × 30 admit an extra retry', () => {
    const b = new RetryBudget(budget(0.1, 0, 10_000), new ManualClock());
    for (let i = 0; i < 30; i++) b.recordRequest();
    assert.equal(b.remaining(), 3);
    assert.equal(drain(b), 3);
  });

  it('honours a fractional minPerSecond', () => {
    const b = new RetryBudget(budget(0, 0.25, 10_000), new ManualClock()); // 2.5 per window
    assert.equal(drain(b), 3);
  });

  it('denies every retry when both thresholds are zero', () => {
    const b = new RetryBudget(budget(0, 0, 10_000), new ManualClock());
    b.recordRequest();
    assert.equal(b.tryAcquire(), false);
    assert.equal(b.remaining(), 0);
  });

  it('forgets retries and requests once they roll out of the window', () => {
    const clock = new ManualClock(1_000_000);
    const b = new RetryBudget(budget(0, 0.5, 10_000), clock); // 5 per window
    assert.equal(drain(b), 5);
    clock.advance(5_000);
    assert.equal(b.tryAcquire(), false, 'half a window later the retries still count');
    clock.advance(4_999);
    assert.equal(b.tryAcquire(), false, 'just under a window later they still count');
    clock.advance(1_001);
    assert.equal(b.remaining(), 5, 'a full window later they are gone');
  });

  it('rolls off bucket by bucket, oldest first', () => {
    const clock = new ManualClock(0);
    const b = new RetryBudget(budget(1, 0, 10_000), clock);
    // 10 requests at t=0, 10 more at t=5s; retries allowed: below 20.
    for (let i = 0; i < 10; i++) b.recordRequest();
    clock.advance(5_000);
    for (let i = 0; i < 10; i++) b.recordRequest();
    assert.equal(b.remaining(), 20);
    clock.advance(5_000); // the t=0 requests have left the window
    assert.equal(b.remaining(), 10);
    assert.equal(drain(b), 10);
    clock.advance(5_000); // the t=5s requests are gone; the retries from t=10s are not
    assert.equal(b.remaining(), 0);
    clock.advance(5_000);
    assert.equal(b.remaining(), 0, 'no requests and no floor: nothing allowed');
    b.recordRequest();
    assert.equal(b.remaining(), 1, 'the t=10s retries have rolled off as well');
  });

  it('starts from empty after a gap longer than the window', () => {
    const clock = new ManualClock(0);
    const b = new RetryBudget(budget(0, 0.3, 10_000), clock);
    assert.equal(drain(b), 3);
    clock.advance(123_456_789);
    assert.equal(drain(b), 3);
  });

  it('update() applies new thresholds and keeps what was counted', () => {
    const clock = new ManualClock(0);
    const b = new RetryBudget(budget(0.2, 0, 10_000), clock);
    for (let i = 0; i < 50; i++) b.recordRequest();
    assert.equal(drain(b), 10);
    b.update(budget(0.5, 0, 10_000));
    assert.equal(b.remaining(), 15, '0.5 × 50 − 10 already spent');
    b.update(budget(0.1, 0, 10_000));
    assert.equal(b.remaining(), 0, 'lowering the ratio leaves the spent retries counted');
  });

  it('update() with a new window keeps the counts and expires them at the new pace', () => {
    const clock = new ManualClock(3_000);
    const b = new RetryBudget(budget(0, 0.5, 10_000), clock);
    assert.equal(drain(b), 5);
    b.update(budget(0, 0.5, 2_000)); // floor now 1 per window, 5 retries still counted
    assert.equal(b.remaining(), 0);
    assert.equal(b.tryAcquire(), false);
    clock.advance(2_000);
    assert.equal(b.remaining(), 1, 'one new window later the carried-over retries are gone');
    b.update(budget(0, 0.5, 20_000));
    assert.equal(b.remaining(), 10);
  });
});
