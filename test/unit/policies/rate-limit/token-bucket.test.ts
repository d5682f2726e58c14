import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { RateLimitConfig } from '../../../../src/config/types.ts';
import { TokenBucket } from '../../../../src/policies/rate-limit/token-bucket.ts';
import { ManualClock } from '../../../../src/util/clock.ts';
import { activeTimeouts } from '../timers.ts';

function limit(tokens: number, periodMs: number, burst: number): RateLimitConfig {
  return {
    rate: { tokens, periodMs, perMs: tokens / periodMs, source: `${tokens}/${periodMs}ms` },
    burst,
    maxWait: 0,
    mode: 'enforce',
    scope: 'local',
    key: null,
    onRedisError: null,
  };
}

describe('TokenBucket (SPEC §4.5)', () => {
  let timers: number;
  before(() => {
    timers = activeTimeouts();
  });
  after(() => {
    assert.equal(activeTimeouts(), timers, 'the bucket keeps no timer');
  });

  it('starts full and admits a burst at once, then denies', () => {
    const b = new TokenBucket(limit(5, 1000, 3), new ManualClock());
    assert.equal(b.tokens(), 3);
    assert.deepEqual([b.take(0), b.take(0), b.take(0)], [0, 0, 0]);
    assert.equal(b.take(0), -1);
    assert.equal(b.tokens(), 0, 'a denied take consumes nothing');
  });

  it('refills at the configured rate, never above burst', () => {
    const clock = new ManualClock();
    const b = new TokenBucket(limit(10, 1000, 5), clock);
    for (let i = 0; i < 5; i++) b.take(0);
    clock.advance(250);
    assert.ok(Math.abs(b.tokens() - 2.5) < 1e-9);
    assert.equal(b.take(0), 0);
    assert.equal(b.take(0), 0);
    assert.equal(b.take(0), -1);
    clock.advance(60_000);
    assert.equal(b.tokens(), 5);
  });

  it('admits rate × time + burst over 10 simulated seconds at 100/s (within 2 %)', () => {
    const clock = new ManualClock(42);
    const burst = 100;
    const b = new TokenBucket(limit(100, 1000, burst), clock);
    let admitted = 0;
    // A request every 0.7 ms: far more than the limit, at an irregular phase.
    for (let t = 0; t < 10_000; t += 0.7) {
      if (b.take(0) === 0) admitted++;
      clock.advance(0.7);
    }
    const expected = 100 * 10 + burst;
    assert.ok(Math.abs(admitted - expected) <= expected * 0.02, `admitted ${admitted}, expected ≈ ${expected}`);
  });

  it('reserves tokens for waiters in arrival order, each waiting one token longer', () => {
    const clock = new ManualClock();
    const b = new TokenBucket(limit(10, 1000, 1), clock); // one token per 100 ms
    assert.equal(b.take(1000), 0);
    const waits = [b.take(1000), b.take(1000), b.take(1000)];
    assert.deepEqual(
      waits.map((w) => Math.round(w)),
      [100, 200, 300],
    );
    assert.ok(b.tokens() < -2.99 && b.tokens() > -3.01, 'tokens go negative while reserved');
    assert.equal(b.take(350), -1, 'a fifth request would wait 400 ms, more than its maxWait');
    assert.ok(b.tokens() < -2.99, 'and reserves nothing');
    clock.advance(100);
    assert.equal(Math.round(b.take(1000)), 300, 'time passing shortens the line');
  });

  it('never reserves when maxWait is 0', () => {
    const b = new TokenBucket(limit(1, 1000, 1), new ManualClock());
    b.take(0);
    assert.equal(b.take(0), -1);
    assert.equal(b.tokens(), 0);
  });

  it('reports how long until the next token', () => {
    const clock = new ManualClock();
    const b = new TokenBucket(limit(2, 1000, 1), clock); // one token per 500 ms
    assert.equal(b.msUntilToken(), 0);
    b.take(0);
    assert.equal(b.msUntilToken(), 500);
    clock.advance(200);
    assert.ok(Math.abs(b.msUntilToken() - 300) < 1e-9);
    b.take(10_000); // a reservation pushes the next token one period further
    assert.ok(Math.abs(b.msUntilToken() - 800) < 1e-9);
  });

  it('update() keeps the current tokens, clamped to the new burst, and uses the new rate from then on', () => {
    const clock = new ManualClock();
    const b = new TokenBucket(limit(10, 1000, 10), clock);
    b.take(0);
    b.update(limit(10, 1000, 20));
    assert.equal(b.tokens(), 9, 'a bigger burst does not refill the bucket');
    b.update(limit(10, 1000, 4));
    assert.equal(b.tokens(), 4, 'a smaller burst clamps it');
    for (let i = 0; i < 4; i++) b.take(0);
    clock.advance(100); // 1 token at 10/s, credited at the old rate...
    b.update(limit(100, 1000, 4));
    assert.ok(Math.abs(b.tokens() - 1) < 1e-9);
    clock.advance(10); // ...then 1 more at 100/s
    assert.ok(Math.abs(b.tokens() - 2) < 1e-9);
  });

  it('update() does not forgive reservations', () => {
    const b = new TokenBucket(limit(1, 1000, 1), new ManualClock());
    b.take(0);
    b.take(5_000);
    b.take(5_000);
    b.update(limit(1, 1000, 5));
    assert.ok(b.tokens() < -1.99);
  });

  it('never admits more than burst + rate × elapsed, whatever the arrival pattern', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 50 }),
        fc.array(fc.double({ min: 0, max: 50, noNaN: true }), { maxLength: 300 }),
        (perSecond, burst, gaps) => {
          const clock = new ManualClock();
          const b = new TokenBucket(limit(perSecond, 1000, burst), clock);
          let admitted = 0;
          let elapsed = 0;
          for (const g of gaps) {
            clock.advance(g);
            elapsed += g;
            if (b.take(0) === 0) admitted++;
          }
          return admitted <= burst + (perSecond / 1000) * elapsed + 1e-6;
        },
      ),
    );
  });
});
