/**
 * The breaker's admission layer (SPEC §4.3): the gate on the request path.
 * The permit it takes is kept on the exchange: the attempt observer records
 * every attempt through it, and the exchange releases it when it is over.
 */
import type { Exchange } from '../../pipeline/exchange.ts';
import type { Handler, Layer } from '../../pipeline/handler.ts';
import type { BreakerGuard } from './permit.ts';

export function breakerLayer(guard: BreakerGuard, onReject: () => void): Layer {
  return (next: Handler): Handler =>
    (ex: Exchange) => {
      const p = guard.acquire();
      if (p.type === 'failure') {
        onReject();
        return Promise.resolve(p);
      }
      if (p.observed !== null) ex.flag(p.observed);
      // A fallback upstream's breaker replaces the primary's permit: an
      // unused half-open probe of the primary gives its slot back first.
      ex.breaker?.release();
      ex.breaker = p;
      return next(ex);
    };
}
