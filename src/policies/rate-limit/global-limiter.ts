/**
 * A rate limit shared by every breakwater on one Redis (SPEC §12,
 * `rateLimit.scope: global`). The guard answers like the local TokenBucket
 * — a permit, ms to wait, or `rate_limited` with Retry-After — and almost
 * always without asking Redis: it holds a small *lease* of tokens taken
 * from the shared bucket ahead of need.
 *
 * - A lease is ~50 ms of this process's observed traffic (at least 1, at
 *   most 50 ms of the global rate and the burst), refilled in the
 *   background when half used: one Redis round trip per ~25 ms of traffic,
 *   not per request. Tokens unused for 500 ms are given back.
 * - With the lease empty and the bucket not known to be empty, one request
 *   is admitted on credit and charged on the next call (the script charges
 *   debt whatever the bucket holds: every admission is counted once). The
 *   ones that come while that call is out wait for its answer, at most
 *   `redis.timeout`; what the new lease does not cover goes on credit too,
 *   unless the answer says the bucket is empty.
 * - Redis says the bucket is empty until T: requests are refused locally
 *   with Retry-After until T (or wait for a reserved token, within
 *   `maxWait`, spaced at this process's share of the rate), no round trip.
 * - A call that fails or takes longer than `redis.timeout` (counted in
 *   global_rate_limit_errors_total, logged once per outage) switches to the
 *   fallback: a local bucket of rate/peers (peers: processes Redis saw take
 *   from this bucket in the last 10 s; 1 before Redis ever answered), or,
 *   with `onRedisError: deny`, a refusal. Redis is probed from the request
 *   path 25 ms after the first failure, backing off to every 500 ms; the
 *   first answer ends the fallback.
 */
import type { RateLimitConfig } from '../../config/types.ts';
import { failure, type Failure } from '../../errors.ts';
import type { Logger } from '../../observability/logger.ts';
import type { RedisCallError, RedisErrorReason, RedisLink, TakeAnswer } from '../../redis/link.ts';
import { systemClock, type Clock } from '../../util/clock.ts';
import { freePermit, type Permit } from '../permit.ts';
import { TokenBucket } from './token-bucket.ts';

const TAKEN = freePermit(null);
const OBSERVED = freePermit('rate_limited_observed');
/** Admitted by the local share while Redis is out: the request's line says so. */
const BY_LOCAL_SHARE = freePermit('global_rate_limit_fallback');

/** A lease covers this much of the process's traffic. */
export const LEASE_MS = 50;
/** Leased tokens older than this are given back rather than used (they would add to bursts). */
export const LEASE_TTL_MS = 500;
/** How often a limiter in fallback asks Redis again: 25 ms after the first failure, doubling up to 500 ms. */
export const PROBE_MS = 500;
const FIRST_PROBE_MS = 25;

export type RateAnswer = Permit | number | Failure;

/** What a global limit reports (observability/metrics: global_rate_limit_*). */
export interface GlobalLimitMetrics {
  error(reason: RedisErrorReason): void;
  /** Tokens taken from Redis for this limit. */
  leased(n: number): void;
  /** A request admitted by the fallback's local share. */
  fallbackAdmitted(): void;
  /** 1 while the limit runs on its fallback. */
  fallback(on: boolean): void;
}

export interface GlobalLimiterDeps {
  readonly link: RedisLink;
  readonly metrics: GlobalLimitMetrics;
  readonly logger: Logger;
  readonly clock?: Clock;
}

interface Waiter {
  readonly maxWait: number;
  readonly resolve: (a: RateAnswer) => void;
}

export class GlobalLimiter {
  /** The bucket's name in Redis (without the prefix). */
  readonly key: string;
  /** `acquire` may answer with a promise (rate-limit.ts). */
  readonly deferred = true;
  readonly #clock: Clock;
  readonly #metrics: GlobalLimitMetrics;
  readonly #logger: Logger;
  #link: RedisLink;
  #perMs: number;
  #burst: number;

  #lease = 0;
  #leaseAt = 0;
  /** Admitted on credit or by reservation, not yet charged to Redis. */
  #debt = 0;
  /** Expired lease tokens to give back on the next call. */
  #give = 0;
  /** Redis said: no whole token before this time. */
  #emptyUntil = 0;
  /** Reservations of waiting requests (maxWait) while the bucket is empty. */
  #nextFree = 0;
  #calling = false;
  #waiters: Waiter[] = [];
  #peers = 1;
  #demand = 0;
  #demandSince: number;
  /** Requests per ms, smoothed. */
  #rate = 0;

  /** Non-null while Redis is failing: the local share (onRedisError allow). */
  #fallback: TokenBucket | null = null;
  #inFallback = false;
  /** The limit's own onRedisError, or null: the redis block's. */
  #onError: 'allow' | 'deny' | null = null;
  #nextProbe = 0;
  /** Failed calls in a row, for the probe's backoff. */
  #failures = 0;

  /** What `GET /upstreams` shows of this limit: where its tokens come from right now. */
  snapshot(): { key: string; source: 'redis' | 'fallback' | 'deny'; lease: number; peers: number; emptyForMs: number } {
    const now = this.#clock.now();
    return {
      key: this.key,
      source: !this.#inFallback ? 'redis' : this.#fallback === null ? 'deny' : 'fallback',
      lease: Math.floor(this.#lease),
      peers: this.#peers,
      emptyForMs: Math.max(0, Math.ceil(this.#emptyUntil - now)),
    };
  }

  constructor(key: string, cfg: RateLimitConfig, deps: GlobalLimiterDeps) {
    this.key = key;
    this.#clock = deps.clock ?? systemClock;
    this.#metrics = deps.metrics;
    this.#logger = deps.logger;
    this.#link = deps.link;
    this.#perMs = cfg.rate.perMs;
    this.#burst = cfg.burst;
    this.#onError = cfg.onRedisError;
    this.#demandSince = this.#clock.now();
  }

  /** The guard (policies/permit.ts): a permit, ms to wait for a reserved token, rate_limited, or — rarely — the answer after the Redis call in flight. */
  acquire(maxWaitMs: number, observe: boolean): RateAnswer | Promise<RateAnswer> {
    this.#demand++;
    return this.#decide(this.#clock.now(), observe ? 0 : maxWaitMs, observe, true);
  }

  /** The tunnels' guard: never waits; what would wait for Redis is refused. */
  acquireNow(observe: boolean): Permit | Failure {
    this.#demand++;
    const a = this.#decide(this.#clock.now(), 0, observe, false);
    if (typeof a === 'number' || a instanceof Promise) return failure('rate_limited', 1 / this.#perMs);
    return a;
  }

  /** acquireNow as the tunnels' TunnelBucket sees it. */
  readonly tunnel = { acquire: (_maxWaitMs: number, observe: boolean): Permit | Failure => this.acquireNow(observe) };

  /** A reload: new rate and burst (used from the next call on), perhaps a new Redis. */
  update(cfg: RateLimitConfig, link: RedisLink): void {
    // "Empty until T" was learnt at the old rate: ask again rather than refuse on stale news.
    if (cfg.rate.perMs !== this.#perMs || cfg.burst !== this.#burst) {
      this.#emptyUntil = 0;
      this.#nextFree = 0;
    }
    this.#perMs = cfg.rate.perMs;
    this.#burst = cfg.burst;
    this.#onError = cfg.onRedisError;
    this.#link = link;
    if (this.#fallback !== null) this.#fallback.update(this.#shareConfig());
  }

  /**
   * `fresh`: deciding for requests that waited for the answer Redis just gave. Those that the lease
   * cannot cover, while the bucket is not known to be empty, go on credit (charged by the next call,
   * made at once) rather than be refused for having been concurrent.
   */
  #decide(now: number, maxWait: number, observe: boolean, mayQueue: boolean, fresh = false): RateAnswer | Promise<RateAnswer> {
    if (this.#inFallback) return this.#fromFallback(now, maxWait, observe);
    if (this.#lease >= 1) {
      if (now - this.#leaseAt <= LEASE_TTL_MS) {
        this.#lease--;
        if (this.#lease < this.#want() / 2) this.#call(now);
        return TAKEN;
      }
      // Old tokens go back to Redis rather than into a late burst.
      this.#give += Math.floor(this.#lease);
      this.#lease = 0;
    }
    if (now >= this.#emptyUntil) {
      if (this.#debt < 1 || fresh) {
        this.#debt++;
        this.#call(now);
        return TAKEN;
      }
      this.#call(now);
      if (this.#calling && mayQueue && !observe) {
        return new Promise<RateAnswer>((resolve) => this.#waiters.push({ maxWait, resolve }));
      }
    }
    if (observe) return OBSERVED;
    const wait = this.#reserve(now, maxWait);
    if (wait >= 0) return wait === 0 ? TAKEN : wait;
    const retry = Math.max(this.#emptyUntil - now, 1 / this.#perMs);
    return failure('rate_limited', retry);
  }

  /** A token reserved within maxWait, at this process's share of the rate: ms to wait, or -1. */
  #reserve(now: number, maxWait: number): number {
    if (maxWait <= 0) return -1;
    const start = Math.max(this.#nextFree, this.#emptyUntil, now);
    const wait = start - now;
    if (wait > maxWait) return -1;
    this.#nextFree = start + this.#peers / this.#perMs;
    this.#debt++;
    return wait;
  }

  #fromFallback(now: number, maxWait: number, observe: boolean): RateAnswer {
    if (now >= this.#nextProbe && !this.#calling) this.#call(now);
    const fb = this.#fallback;
    if (fb === null) return observe ? OBSERVED : failure('rate_limited', Math.max(1, this.#nextProbe - now));
    const a = fb.acquire(maxWait, observe);
    if (typeof a === 'number') {
      this.#metrics.fallbackAdmitted();
      return a;
    }
    if (a.type === 'permit' && a.observed === null) {
      this.#metrics.fallbackAdmitted();
      return BY_LOCAL_SHARE;
    }
    return a;
  }

  /** Lease size: ~LEASE_MS of this process's demand, within [1, LEASE_MS of the global rate, burst]. */
  #want(): number {
    const cap = Math.max(1, Math.min(this.#burst, Math.ceil(this.#perMs * LEASE_MS)));
    const n = Math.ceil(this.#rate * LEASE_MS);
    return n < 1 ? 1 : n > cap ? cap : n;
  }

  #observeRate(now: number): void {
    const elapsed = now - this.#demandSince;
    if (elapsed < 10) return;
    const r = this.#demand / elapsed;
    this.#rate = this.#rate === 0 ? r : 0.7 * this.#rate + 0.3 * r;
    this.#demand = 0;
    this.#demandSince = now;
  }

  /** One call to Redis at a time; nothing to ask while the bucket is known empty and nothing is owed. */
  #call(now: number): void {
    if (this.#calling) return;
    if (!this.#inFallback && now < this.#emptyUntil && this.#debt === 0 && this.#give === 0) return;
    this.#observeRate(now);
    this.#calling = true;
    const owe = this.#debt;
    const give = this.#give;
    this.#link.take(this.key, { perMs: this.#perMs, burst: this.#burst, want: this.#want(), owe, give }).then(
      (a) => this.#answered(a, owe, give),
      (err: RedisCallError) => {
        if (err.late !== null) this.#settleLate(err.late, owe, give);
        this.#failed(err);
      },
    );
  }

  /**
   * A call that timed out here may still run in Redis. Until its answer,
   * what it carried counts as paid (never charged twice by the next call);
   * its answer settles it: a grant joins the lease (or, in fallback, goes
   * back with the next call); a refusal means it never ran: owed again.
   */
  #settleLate(late: Promise<TakeAnswer>, owe: number, give: number): void {
    this.#debt -= owe;
    this.#give -= give;
    late.then(
      (a) => {
        if (a.granted <= 0) return;
        if (this.#inFallback) this.#give += a.granted;
        else {
          this.#lease += a.granted;
          this.#leaseAt = this.#clock.now();
          this.#metrics.leased(a.granted);
        }
      },
      () => {
        this.#debt += owe;
        this.#give += give;
      },
    );
  }

  #answered(a: TakeAnswer, owe: number, give: number): void {
    this.#calling = false;
    this.#failures = 0;
    const now = this.#clock.now();
    this.#debt -= owe;
    this.#give -= give;
    this.#peers = a.peers;
    if (a.granted > 0) {
      this.#lease += a.granted;
      this.#leaseAt = now;
      this.#metrics.leased(a.granted);
    }
    this.#emptyUntil = a.nextMs > 0 ? now + a.nextMs : 0;
    if (this.#inFallback) {
      this.#inFallback = false;
      this.#fallback = null;
      this.#metrics.fallback(false);
      this.#logger.info({ limit: this.key, peers: a.peers }, 'global_rate_limit_recovered');
    }
    this.#flush(now);
  }

  #failed(err: RedisCallError): void {
    this.#calling = false;
    const now = this.#clock.now();
    this.#metrics.error(err.reason);
    // The next probe: soon after a first failure (one slow answer on a busy machine), backing off to PROBE_MS.
    this.#nextProbe = now + Math.min(PROBE_MS, FIRST_PROBE_MS * 2 ** this.#failures++);
    if (!this.#inFallback) {
      this.#inFallback = true;
      const onError = this.#onError ?? this.#link.config.onRedisError;
      this.#fallback = onError === 'allow' ? new TokenBucket(this.#shareConfig(), this.#clock) : null;
      this.#metrics.fallback(true);
      this.#logger.warn(
        { limit: this.key, reason: err.reason, error: err.message, onRedisError: onError, share: this.#fallback === null ? 0 : 1 / this.#peers },
        'global_rate_limit_fallback',
      );
    }
    this.#flush(now);
  }

  /** Requests that waited for the call: decided now, none queued again. */
  #flush(now: number): void {
    if (this.#waiters.length === 0) return;
    const ws = this.#waiters;
    this.#waiters = [];
    const fresh = !this.#inFallback;
    for (const w of ws) w.resolve(this.#decide(now, w.maxWait, false, false, fresh) as RateAnswer);
  }

  /** The fallback's local share: rate and burst divided among the peers Redis last saw. */
  #shareConfig(): RateLimitConfig {
    const perMs = this.#perMs / this.#peers;
    return {
      rate: { tokens: perMs * 1000, periodMs: 1000, perMs, source: `${Math.round(perMs * 1000 * 100) / 100}/s` },
      burst: Math.max(1, Math.ceil(this.#burst / this.#peers)),
      maxWait: 0,
      mode: 'enforce',
      scope: 'local',
      key: null,
      onRedisError: null,
    };
  }
}
