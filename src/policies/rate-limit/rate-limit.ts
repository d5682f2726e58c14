/**
 * The rate-limit layer (SPEC §4.5): one token per request (never per retry —
 * the layer sits outside the retry loop). Used twice in a route's stack:
 * once with the route's own bucket, once with the upstream's.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { PolicyMode } from '../../config/types.ts';
import { failure } from '../../errors.ts';
import type { Exchange } from '../../pipeline/exchange.ts';
import type { Handler, Layer, Reply } from '../../pipeline/handler.ts';
import type { TokenBucket } from './token-bucket.ts';

export interface RateLimitParams {
  readonly bucket: TokenBucket;
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
  return (next: Handler): Handler =>
    (ex: Exchange) => {
      const p = bucket.acquire(maxWait, observe);
      if (typeof p === 'number') return waitThenNext(ex, next, p);
      if (p.type === 'failure') {
        onReject();
        return Promise.resolve(p);
      }
      if (p.observed !== null) ex.flag(p.observed);
      return next(ex);
    };
}
