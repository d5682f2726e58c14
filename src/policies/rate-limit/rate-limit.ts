/**
 * The rate-limit layer (SPEC §4.5): one token per request (never per retry —
 * the layer sits outside the retry loop). Used twice in a route's stack:
 * once with the route's own bucket, once with the upstream's.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { PolicyMode } from '../../config/types.ts';
import { failure, type Failure } from '../../errors.ts';
import type { Exchange } from '../../pipeline/exchange.ts';
import type { Handler, Layer, Reply } from '../../pipeline/handler.ts';
import type { Permit } from '../permit.ts';

/** The local TokenBucket or a GlobalLimiter: the same answers; only a global one may answer later (its Redis call in flight). */
export interface RateLimiter {
  acquire(maxWaitMs: number, observe: boolean): Permit | number | Failure | Promise<Permit | number | Failure>;
  /** True for a limiter whose answer may be a promise (decided once, at build: a local bucket's step never checks). */
  readonly deferred?: boolean;
}

export interface RateLimitParams {
  readonly bucket: RateLimiter;
  readonly mode: PolicyMode;
  readonly maxWait: number;
  readonly onReject: () => void;
}

export function rateLimitLayer(p: RateLimitParams): Layer {
  const { bucket, mode, maxWait, onReject } = p;
  const observe = mode === 'observe';
  const waitThenNext = async (ex: Exchange, next: Handler, wait: number): Promise<Reply> => {
    try {
      await sleep(wait, undefined, { signal: ex.signal });
    } catch {
      return failure('rate_limited', 0); // the client went away while waiting; nobody reads this
    }
    return next(ex);
  };
  const settle = (ex: Exchange, next: Handler, p: Permit | number | Failure): Promise<Reply> => {
    if (typeof p === 'number') return waitThenNext(ex, next, p);
    if (p.type === 'failure') {
      onReject();
      return Promise.resolve(p);
    }
    if (p.observed !== null) ex.flag(p.observed);
    return next(ex);
  };
  if (bucket.deferred !== true) return (next: Handler): Handler => (ex: Exchange) => settle(ex, next, bucket.acquire(maxWait, observe) as Permit | number | Failure);
  return (next: Handler): Handler =>
    (ex: Exchange) => {
      const p = bucket.acquire(maxWait, observe);
      // A global limit's rare answer-to-come (bounded by redis.timeout).
      if (p instanceof Promise) return p.then((a) => settle(ex, next, a));
      return settle(ex, next, p);
    };
}
