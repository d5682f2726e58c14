/**
 * The rate-limit layer (SPEC §4.5): one token per request (never per retry —
 * the layer sits outside the retry loop). Used twice in a route's pipeline:
 * once with the route's own bucket, once with the upstream's.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { PolicyMode } from '../../config/types.ts';
import { failure } from '../../errors.ts';
import type { Exchange, Handler, Layer, Reply } from '../../pipeline/exchange.ts';
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
  // Not an async function: the common case (a token is there) adds no
  // promise of its own, only the wait allocates.
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
      const wait = bucket.take(observe ? 0 : maxWait);
      if (wait === 0) return next(ex);
      if (wait < 0) {
        if (observe) {
          ex.flag('rate_limited_observed');
          return next(ex);
        }
        onReject();
        return Promise.resolve(failure('rate_limited', bucket.msUntilToken()));
      }
      return waitThenNext(ex, next, wait);
    };
}
