/**
 * The circuit breaker as a guard (policies/permit.ts): `acquire()` answers a
 * request or a tunnel with a BreakerPermit or `circuit_open`. Built on the
 * breaker's public admission API (admit / record / cancelProbe), with the
 * permits preallocated per breaker.
 */
import type { OutcomeKind } from '../../config/types.ts';
import { failure, type Failure } from '../../errors.ts';
import type { Permit } from '../permit.ts';
import { ADMIT, type CircuitBreaker } from './breaker.ts';

export interface BreakerPermit extends Permit {
  /**
   * Records one attempt's outcome and returns the permit to record the
   * request's later attempts with: a half-open probe is one attempt, so a
   * probe permit hands over to an ordinary one.
   */
  record(kind: OutcomeKind, status: number, grpc?: number): BreakerPermit;
  /** A probe permit never recorded gives its probe slot back; any other is a no-op. */
  release(): void;
}

export class BreakerGuard {
  readonly breaker: CircuitBreaker;
  readonly #admitted: BreakerPermit;
  readonly #observed: BreakerPermit;
  readonly #probe: BreakerPermit;

  constructor(breaker: CircuitBreaker) {
    this.breaker = breaker;
    const admitted: BreakerPermit = {
      type: 'permit',
      observed: null,
      record(kind, status, grpc) {
        breaker.record(kind, status, false, grpc);
        return admitted;
      },
      release() {},
    };
    this.#admitted = Object.freeze(admitted);
    this.#observed = Object.freeze({ ...admitted, observed: 'circuit_open_observed' });
    this.#probe = Object.freeze({
      type: 'permit',
      observed: null,
      record(kind: OutcomeKind, status: number, grpc?: number): BreakerPermit {
        breaker.record(kind, status, true, grpc);
        return admitted;
      },
      release() {
        breaker.cancelProbe();
      },
    });
  }

  /** Admitted, admitted as the half-open probe, admitted in observe mode, or `circuit_open` with Retry-After. */
  acquire(): BreakerPermit | Failure {
    switch (this.breaker.admit()) {
      case ADMIT.ALLOW:
        return this.#admitted;
      case ADMIT.PROBE:
        return this.#probe;
      case ADMIT.OBSERVED_REJECT:
        return this.#observed;
      default:
        return failure('circuit_open', this.breaker.retryAfterMs());
    }
  }
}

const guards = new WeakMap<CircuitBreaker, BreakerGuard>();

/** The one guard of a breaker (its permits are shared by every route and tunnel to the upstream). */
export function breakerGuard(breaker: CircuitBreaker): BreakerGuard {
  let g = guards.get(breaker);
  if (g === undefined) guards.set(breaker, (g = new BreakerGuard(breaker)));
  return g;
}
