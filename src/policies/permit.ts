/**
 * Guards as permits (STYLE habit 3; the architecture step). Every stateful
 * guard — circuit breaker, bulkhead, rate limit — answers a request or a
 * tunnel the same way, synchronously: a Permit (go; give it back when done)
 * or a Failure (no; the code and Retry-After of the generated answer). The
 * HTTP layers and the tunnels (WebSocket now, CONNECT and gRPC streams next)
 * call the same `acquire()`, so observe mode, flags and gauges cannot drift
 * between protocols.
 *
 * Permits are preallocated per guard (one for "admitted", one for "admitted,
 * but observe mode would have refused"): acquiring allocates nothing.
 */

export interface Permit {
  readonly type: 'permit';
  /**
   * The access-log flag the admission raises, or null: a guard in observe
   * mode would have refused (`circuit_open_observed`,
   * `bulkhead_full_observed`, `rate_limited_observed`), or a global rate
   * limit admitted on its local share while Redis was out
   * (`global_rate_limit_fallback`).
   */
  readonly observed: string | null;
  /** Gives back what the permit holds (a bulkhead slot). Exactly once per acquisition; a no-op for guards that hold nothing. */
  release(): void;
}

/** A permit that holds nothing. */
export function freePermit(observed: string | null): Permit {
  return Object.freeze({ type: 'permit', observed, release() {} });
}
