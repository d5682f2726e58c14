/**
 * The rate-limit layer (SPEC §4.5): one token per request (never per retry —
 * the layer sits outside the retry loop). Used twice in a route's pipeline:
 * once with the route's own bucket, once with the upstream's.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { PolicyMode } from '../../config/types.ts';
import { failure } from '../../errors.ts';
import type { Exchange, Handler, Layer } from '../../pipeline/exchange.ts';
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
  return (next: Handler): Handler =>
    async (ex: Exchange) => {
      const wait = bucket.take(observe ? 0 : maxWait);
      if (wait < 0) {
        if (observe) {
          ex.flag('rate_limited_observed');
          return next(ex);
        }
        onReject();
        return failure('rate_limited', bucket.msUntilToken());
      }
      if (wait > 0) {
        try {
          await sleep(wait, undefined, { signal: ex.signal });
        } catch {
          return failure('rate_limited', 0); // client gone while waiting; nobody reads this
        }
      }
      return next(ex);
    };
}
