/**
 * The token bucket behind every rate limit (SPEC §4.5): `rate.perMs` tokens a
 * millisecond, at most `burst`, full at start. Refilled lazily from the clock
 * whenever it is read, so there is no timer and an idle bucket costs nothing.
 *
 * A request that may wait (`maxWait`) reserves its token at once and is told
 * how long to sleep: the count goes negative, and the next caller's wait is
 * computed from that debt, so waiters are served in arrival order without a
 * queue. A waiter that gives up keeps its token spent — the budget it
 * reserved simply goes unused, which errs on the side of the upstream.
 */
import type { RateLimitConfig } from '../../config/types.ts';
import { failure, type Failure } from '../../errors.ts';
import { systemClock, type Clock } from '../../util/clock.ts';
import { freePermit, type Permit } from '../permit.ts';

const TAKEN = freePermit(null);
const OBSERVED = freePermit('rate_limited_observed');

export class TokenBucket {
  readonly #clock: Clock;
  #perMs: number;
  #burst: number;
  #tokens: number;
  #last: number;

  constructor(cfg: RateLimitConfig, clock: Clock = systemClock) {
    this.#clock = clock;
    this.#perMs = cfg.rate.perMs;
    this.#burst = cfg.burst;
    this.#tokens = cfg.burst;
    this.#last = clock.now();
  }

  /**
   * Takes one token. 0: taken now. A positive number: a token was reserved and
   * the caller must wait that many ms before going on (only offered when the
   * wait is ≤ `maxWaitMs`). -1: denied, nothing consumed.
   */
  take(maxWaitMs: number): number {
    this.#refill();
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    const wait = (1 - this.#tokens) / this.#perMs;
    if (!(wait <= maxWaitMs)) return -1; // also denies when perMs is 0 (wait = Infinity)
    this.#tokens -= 1;
    return wait;
  }

  /**
   * The guard's answer (policies/permit.ts): a permit (a token was taken, or
   * observe mode let it through), a positive number of ms to wait for a
   * reserved token (at most `maxWaitMs`), or `rate_limited` with Retry-After.
   */
  acquire(maxWaitMs: number, observe: boolean): Permit | number | Failure {
    const wait = this.take(observe ? 0 : maxWaitMs);
    if (wait === 0) return TAKEN;
    if (wait > 0) return wait;
    if (observe) return OBSERVED;
    return failure('rate_limited', this.msUntilToken());
  }

  /** ms until one token would be available (0 if one is there now). */
  msUntilToken(): number {
    this.#refill();
    return this.#tokens >= 1 ? 0 : (1 - this.#tokens) / this.#perMs;
  }

  /** Current tokens: fractional between refills, negative while waiters hold reservations. */
  tokens(): number {
    this.#refill();
    return this.#tokens;
  }

  /**
   * New rate and burst from a reload. Time already elapsed is credited at the
   * old rate; the tokens are kept, clamped to the new burst, so a reload
   * neither refills the bucket nor forgives reservations.
   */
  update(cfg: RateLimitConfig): void {
    this.#refill();
    this.#perMs = cfg.rate.perMs;
    this.#burst = cfg.burst;
    if (this.#tokens > this.#burst) this.#tokens = this.#burst;
  }

  #refill(): void {
    const now = this.#clock.now();
    const elapsed = now - this.#last;
    if (elapsed <= 0) return;
    this.#last = now;
    const t = this.#tokens + elapsed * this.#perMs;
    this.#tokens = t < this.#burst ? t : this.#burst;
  }
}
