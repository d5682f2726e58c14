import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { BackoffConfig, BackoffStrategy, Jitter } from '../../../../src/config/types.ts';
import { backoffDelay } from '../../../../src/policies/retry/backoff.ts';
import { activeTimeouts } from '../timers.ts';

const cfg = (strategy: BackoffStrategy, base: number, max: number, jitter: Jitter = 'none'): BackoffConfig => ({
  strategy,
  base,
  max,
  jitter,
});
const seq = (c: BackoffConfig, n: number): number[] => Array.from({ length: n }, (_, i) => backoffDelay(c, i + 1));
const STRATEGIES: BackoffStrategy[] = ['immediate', 'constant', 'linear', 'exponential', 'fibonacci'];

describe('backoffDelay (SPEC §4.2)', () => {
  let timers: number;
  before(() => {
    timers = activeTimeouts();
  });
  after(() => {
    assert.equal(activeTimeouts(), timers, 'computing delays starts no timer');
  });

  it('immediate retries without delay', () => {
    assert.deepEqual(seq(cfg('immediate', 25, 250), 5), [0, 0, 0, 0, 0]);
  });

  it('constant waits base every time, capped at max', () => {
    assert.deepEqual(seq(cfg('constant', 25, 250), 4), [25, 25, 25, 25]);
    assert.deepEqual(seq(cfg('constant', 300, 250), 2), [250, 250]);
  });

  it('linear waits base·n, capped at max', () => {
    assert.deepEqual(seq(cfg('linear', 25, 100), 6), [25, 50, 75, 100, 100, 100]);
  });

  it('exponential waits base·2^(n−1), capped at max', () => {
    assert.deepEqual(seq(cfg('exponential', 25, 250), 6), [25, 50, 100, 200, 250, 250]);
  });

  it('fibonacci waits base·fib(n) with fib 1, 1, 2, 3, 5, 8…, capped at max', () => {
    assert.deepEqual(seq(cfg('fibonacci', 10, 1000), 8), [10, 10, 20, 30, 50, 80, 130, 210]);
    assert.deepEqual(seq(cfg('fibonacci', 10, 60), 7), [10, 10, 20, 30, 50, 60, 60]);
  });

  it('stays finite and equal to max for huge retry numbers', () => {
    for (const s of ['linear', 'exponential', 'fibonacci'] as const) {
      for (const n of [1_000, 5_000, 1e9, Number.MAX_SAFE_INTEGER]) {
        assert.equal(backoffDelay(cfg(s, 25, 250), n), 250, `${s} n=${n}`);
      }
    }
    assert.equal(backoffDelay(cfg('exponential', 0, 250), 5_000), 0, 'base 0 never turns into NaN');
  });

  it('full jitter draws uniformly from [0, d]', () => {
    const c = cfg('exponential', 100, 1000, 'full');
    assert.equal(backoffDelay(c, 3, () => 0), 0);
    assert.equal(backoffDelay(c, 3, () => 0.5), 200);
    assert.ok(backoffDelay(c, 3, () => 0.999999) < 400);
    assert.ok(backoffDelay(c, 3, () => 0.999999) > 399);
  });

  it('equal jitter draws from [d/2, d]', () => {
    const c = cfg('exponential', 100, 1000, 'equal');
    assert.equal(backoffDelay(c, 3, () => 0), 200);
    assert.equal(backoffDelay(c, 3, () => 0.5), 300);
    assert.ok(backoffDelay(c, 3, () => 0.999999) < 400);
  });

  it('uses Math.random when no random source is given', () => {
    const c = cfg('constant', 100, 100, 'full');
    const draws = new Set(Array.from({ length: 20 }, () => backoffDelay(c, 1)));
    assert.ok(draws.size > 1, 'jitter varies between calls');
    for (const d of draws) assert.ok(d >= 0 && d <= 100);
  });

  describe('properties', () => {
    const arbCfg = fc.record({
      strategy: fc.constantFrom(...STRATEGIES),
      base: fc.double({ min: 0, max: 1e6, noNaN: true }),
      max: fc.double({ min: 0, max: 1e7, noNaN: true }),
      jitter: fc.constantFrom<Jitter>('none', 'full', 'equal'),
    });
    const arbN = fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 2 ** 31 }));
    const arbRandom = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

    it('every delay lies within [0, max]', () => {
      fc.assert(
        fc.property(arbCfg, arbN, arbRandom, (c, n, r) => {
          const d = backoffDelay(c, n, () => r);
          return Number.isFinite(d) && d >= 0 && d <= c.max;
        }),
      );
    });

    it('equal jitter never goes below half the un-jittered delay', () => {
      fc.assert(
        fc.property(arbCfg, arbN, arbRandom, (c, n, r) => {
          const d = backoffDelay({ ...c, jitter: 'none' }, n);
          return backoffDelay({ ...c, jitter: 'equal' }, n, () => r) >= d / 2;
        }),
      );
    });

    it('without jitter, delays never shrink as n grows', () => {
      fc.assert(
        fc.property(arbCfg, fc.integer({ min: 1, max: 200 }), (c, n) => {
          const none = { ...c, jitter: 'none' as const };
          return backoffDelay(none, n + 1) >= backoffDelay(none, n);
        }),
      );
    });
  });
});
