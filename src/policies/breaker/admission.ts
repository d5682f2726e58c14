/**
 * The breaker's admission layer (SPEC §4.3): the gate on the request path.
 * Recording outcomes happens per attempt in the attempt stage's observer; this
 * layer only decides whether the request may start.
 */
import { failure } from '../../errors.ts';
import type { Exchange, Handler, Layer } from '../../pipeline/exchange.ts';
import { ADMIT, type CircuitBreaker } from './breaker.ts';

export function breakerLayer(breaker: CircuitBreaker, onReject: () => void): Layer {
  return (next: Handler): Handler =>
    (ex: Exchange) => {
      switch (breaker.admit()) {
        case ADMIT.REJECT:
          onReject();
          return Promise.resolve(failure('circuit_open', breaker.retryAfterMs()));
        case ADMIT.OBSERVED_REJECT:
          ex.flag('circuit_open_observed');
          break;
        case ADMIT.PROBE:
          // Released by the first recorded attempt, or by finish() if none is made.
          ex.probe = breaker;
          break;
      }
      return next(ex);
    };
}
