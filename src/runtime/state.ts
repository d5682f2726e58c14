/**
 * Stateful guards, keyed by name, outside any pipeline (STYLE habit 3).
 *
 * Breakers, bulkheads, token buckets and retry budgets belong to an upstream
 * (or a route) *name*, not to a config load: a reload builds new pipelines and
 * points them at the same objects, updating thresholds in place, so an open
 * breaker stays open and a full bulkhead stays full across a reload. Old and
 * new pipelines share one bulkhead, so concurrency never overshoots.
 *
 * Connection pools live here too, keyed by origin and pool options, so a
 * reload that keeps an endpoint keeps its warm connections.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Pool } from 'undici';
import type { BudgetConfig, BulkheadConfig, CircuitBreakerConfig, RateLimitConfig } from '../config/types.ts';
import { CircuitBreaker, SharedRotation, type BreakerState } from '../policies/breaker/breaker.ts';
import { Bulkhead } from '../policies/bulkhead/bulkhead.ts';
import type { GlobalLimiter } from '../policies/rate-limit/global-limiter.ts';
import type { RedisLink } from '../redis/link.ts';
import { TokenBucket } from '../policies/rate-limit/token-bucket.ts';
import { RetryBudget } from '../policies/retry/budget.ts';
import { ResponseCache } from '../policies/cache/store.ts';
import { createPool, poolKey, type PoolOptions } from '../upstream/pool.ts';
import { systemClock, type Clock } from '../util/clock.ts';

export type TransitionListener = (upstream: string, from: BreakerState, to: BreakerState) => void;

/** What a config load asked for: whatever the registry holds beyond it is dropped by `retain`. */
export interface Claims {
  readonly breakers: Set<string>;
  readonly bulkheads: Set<string>;
  readonly buckets: Set<string>;
  readonly budgets: Set<string>;
  readonly pools: Set<string>;
  /** `route:NAME` of every route with a stale-if-error cache. */
  readonly caches: Set<string>;
  readonly globals: Set<string>;
}

export function newClaims(): Claims {
  return { breakers: new Set(), bulkheads: new Set(), buckets: new Set(), budgets: new Set(), pools: new Set(), caches: new Set(), globals: new Set() };
}

export class StateRegistry {
  readonly clock: Clock;
  readonly rotation: SharedRotation;
  readonly breakers = new Map<string, CircuitBreaker>();
  readonly bulkheads = new Map<string, Bulkhead>();
  readonly buckets = new Map<string, TokenBucket>();
  readonly budgets = new Map<string, RetryBudget>();
  readonly pools = new Map<string, Pool>();
  /** Stale-if-error caches by `route:NAME` (policies/cache/store.ts): a reload keeps what they hold. */
  readonly caches = new Map<string, ResponseCache>();
  /** Global rate limits (SPEC §12) by key, and the one Redis connection they share. */
  readonly globals = new Map<string, GlobalLimiter>();
  redis: RedisLink | null = null;
  /** This process among a global bucket's peers. */
  readonly peerId = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  readonly #onTransition: TransitionListener;
  readonly #unsubscribe = new Map<string, () => void>();

  constructor(onTransition: TransitionListener = () => {}, clock: Clock = systemClock) {
    this.#onTransition = onTransition;
    this.clock = clock;
    this.rotation = new SharedRotation({ clock });
  }

  breaker(name: string, cfg: CircuitBreakerConfig, claims: Claims): CircuitBreaker {
    claims.breakers.add(name);
    let b = this.breakers.get(name);
    if (b === undefined) this.adoptBreaker(name, (b = this.newBreaker(name, cfg)));
    else b.update(cfg);
    return b;
  }

  /** A breaker on this registry's clock and rotation, not yet registered (runtime/plan.ts). */
  newBreaker(name: string, cfg: CircuitBreakerConfig): CircuitBreaker {
    return new CircuitBreaker(name, cfg, { clock: this.clock, rotate: this.rotation });
  }

  /** Registers a breaker made by `newBreaker`: from now on it is the one for `name`, and its transitions are reported. */
  adoptBreaker(name: string, b: CircuitBreaker): void {
    this.breakers.set(name, b);
    this.#unsubscribe.set(
      name,
      b.onTransition((from, to) => this.#onTransition(name, from, to)),
    );
  }

  bulkhead(name: string, cfg: BulkheadConfig, claims: Claims): Bulkhead {
    claims.bulkheads.add(name);
    let b = this.bulkheads.get(name);
    if (b === undefined) this.bulkheads.set(name, (b = new Bulkhead(cfg)));
    else b.update(cfg);
    return b;
  }

  /** `key` is `upstream:NAME` or `route:NAME`. */
  bucket(key: string, cfg: RateLimitConfig, claims: Claims): TokenBucket {
    claims.buckets.add(key);
    let b = this.buckets.get(key);
    if (b === undefined) this.buckets.set(key, (b = new TokenBucket(cfg, this.clock)));
    else b.update(cfg);
    return b;
  }

  /** `key` is `upstream:NAME`, or `route:NAME` for a route that sets a budget of its own. */
  budget(key: string, cfg: BudgetConfig, claims: Claims): RetryBudget {
    claims.budgets.add(key);
    let b = this.budgets.get(key);
    if (b === undefined) this.budgets.set(key, (b = new RetryBudget(cfg, this.clock)));
    else b.update(cfg);
    return b;
  }

  pool(origin: string, opts: PoolOptions, claims: Claims): Pool {
    const key = poolKey(origin, opts);
    claims.pools.add(key);
    let p = this.pools.get(key);
    if (p === undefined) this.pools.set(key, (p = createPool(origin, opts)));
    return p;
  }

  /**
   * After a new config is in place: forget what it no longer names. Pipelines
   * of the old config still hold references, so in-flight requests finish with
   * the objects they started with; pools close gracefully (in-flight requests
   * complete first).
   */
  retain(claims: Claims): Promise<void> {
    for (const [name, b] of this.breakers) {
      if (claims.breakers.has(name)) continue;
      this.#unsubscribe.get(name)?.();
      this.#unsubscribe.delete(name);
      b.dispose();
      this.breakers.delete(name);
    }
    // A dropped bulkhead is not disposed: requests of the old pipeline still
    // queued on it finish or time out as they would have.
    for (const name of this.bulkheads.keys()) if (!claims.bulkheads.has(name)) this.bulkheads.delete(name);
    for (const key of this.buckets.keys()) if (!claims.buckets.has(key)) this.buckets.delete(key);
    for (const key of this.budgets.keys()) if (!claims.budgets.has(key)) this.budgets.delete(key);
    // A removed route's stored responses are freed now, not when its last request ends.
    for (const [key, c] of this.caches) {
      if (claims.caches.has(key)) continue;
      this.caches.delete(key);
      c.clear();
    }
    for (const key of this.globals.keys()) if (!claims.globals.has(key)) this.globals.delete(key);
    const closing: Promise<void>[] = [];
    for (const [key, p] of this.pools) {
      if (claims.pools.has(key)) continue;
      this.pools.delete(key);
      closing.push(p.close().catch(() => {}));
    }
    return Promise.all(closing).then(() => {});
  }

  /** Shutdown: close every pool (waiting for in-flight requests) and stop every timer. */
  async close(): Promise<void> {
    await this.retain(newClaims());
    for (const b of this.bulkheads.values()) b.dispose();
    this.bulkheads.clear();
    const link = this.redis;
    this.redis = null;
    await link?.close();
  }

  /** Cut every upstream connection at once (second SIGTERM, tests). */
  async destroy(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => {})));
    await this.close();
  }
}
