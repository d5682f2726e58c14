/**
 * Backoff delays between retries (SPEC §4.2). A pure function of the policy,
 * the retry number and a random source, so the retry layer stays the only
 * place that sleeps and tests can pin the randomness.
 */
import type { BackoffConfig } from '../../config/types.ts';

/**
 * Delay before retry `n` (n = 1 for the first retry), in ms: the strategy's
 * delay capped at `max`, then jittered. `random` must return [0, 1) like
 * Math.random; the result is always within [0, max].
 */
export function backoffDelay(cfg: BackoffConfig, n: number, random: () => number = Math.random): number {
  const d = cappedDelay(cfg, n);
  switch (cfg.jitter) {
    case 'none':
      return d;
    case 'full':
      return random() * d;
    case 'equal': {
      const half = d / 2;
      // min(): with subnormal delays, half + half can round above d.
      return Math.min(d, half + random() * half);
    }
  }
}

/** The un-jittered delay, capped at `max`; never NaN or Infinity, whatever `n`. */
function cappedDelay(cfg: BackoffConfig, n: number): number {
  const { base, max } = cfg;
  // base 0 would make `0 · Infinity` NaN below for a very large n.
  if (base <= 0 || max <= 0) return 0;
  if (!(n >= 1)) n = 1;
  switch (cfg.strategy) {
    case 'immediate':
      return 0;
    case 'constant':
      return Math.min(base, max);
    case 'linear':
      return Math.min(base * n, max);
    case 'exponential':
      // 2 ** 1100 is Infinity, and Math.min(Infinity, max) is max: no overflow to handle.
      return Math.min(base * 2 ** (n - 1), max);
    case 'fibonacci':
      return fibonacciDelay(base, max, n);
  }
}

/**
 * base · fib(n), fib = 1, 1, 2, 3, 5…; stops as soon as the cap is reached,
 * so a large n costs a few dozen iterations at most, not n.
 */
function fibonacciDelay(base: number, max: number, n: number): number {
  let prev = 0;
  let cur = 1;
  for (let i = 1; i < n; i++) {
    if (base * cur >= max) return max;
    const next = prev + cur;
    prev = cur;
    cur = next;
  }
  return Math.min(base * cur, max);
}
