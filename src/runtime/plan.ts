/**
 * Building without side effects. A config load asks for state by name —
 * breakers, bulkheads, token buckets, retry budgets, connection pools — and
 * a StatePlan answers without changing anything shared: a name the registry
 * already holds gets the live object (its new thresholds are noted, not
 * applied), a new name gets a new object kept in the plan. `commit()`
 * applies it all at once, after the new listeners are bound; `discard()`
 * (a failed reload, `breakwater validate`) disposes what the plan made, and
 * nothing needs rolling back.
 */
import type { Pool } from 'undici';
import type { BudgetConfig, BulkheadConfig, CacheConfig, CircuitBreakerConfig, RateLimitConfig, RedisConfig } from '../config/types.ts';
import { ResponseCache } from '../policies/cache/store.ts';
import type { CircuitBreaker } from '../policies/breaker/breaker.ts';
import { Bulkhead } from '../policies/bulkhead/bulkhead.ts';
import { GlobalLimiter, type GlobalLimitMetrics } from '../policies/rate-limit/global-limiter.ts';
import type { Logger } from '../observability/logger.ts';
import { RedisLink, type RedisLinkEvents } from '../redis/link.ts';
import { TokenBucket } from '../policies/rate-limit/token-bucket.ts';
import { RetryBudget } from '../policies/retry/budget.ts';
import { createPool, poolKey, type PoolOptions } from '../upstream/pool.ts';
import { newClaims, type Claims, type StateRegistry } from './state.ts';

interface Updatable<C> {
  update(cfg: C): void;
}

export class StatePlan {
  /** Every name this config load uses: what the registry keeps while the runtime is live. */
  readonly claims: Claims = newClaims();
  readonly #registry: StateRegistry;
  readonly #breakers = new Map<string, CircuitBreaker>();
  readonly #bulkheads = new Map<string, Bulkhead>();
  readonly #buckets = new Map<string, TokenBucket>();
  readonly #budgets = new Map<string, RetryBudget>();
  readonly #pools = new Map<string, Pool>();
  readonly #caches = new Map<string, ResponseCache>();
  readonly #globals = new Map<string, GlobalLimiter>();
  /** The Redis link this load uses: the live one when the block is unchanged, else a new one (not connected until commit). */
  #link: RedisLink | null = null;
  #linkEvents: RedisLinkEvents | null = null;
  /** Threshold changes for live objects, applied by commit (keyed, so a name named twice is updated once). */
  readonly #updates = new Map<object, () => void>();
  #settled = false;

  constructor(registry: StateRegistry) {
    this.#registry = registry;
  }

  breaker(name: string, cfg: CircuitBreakerConfig): CircuitBreaker {
    this.claims.breakers.add(name);
    return this.#get(this.#registry.breakers, this.#breakers, name, cfg, () => this.#registry.newBreaker(name, cfg));
  }

  bulkhead(name: string, cfg: BulkheadConfig): Bulkhead {
    this.claims.bulkheads.add(name);
    return this.#get(this.#registry.bulkheads, this.#bulkheads, name, cfg, () => new Bulkhead(cfg));
  }

  bucket(key: string, cfg: RateLimitConfig): TokenBucket {
    this.claims.buckets.add(key);
    return this.#get(this.#registry.buckets, this.#buckets, key, cfg, () => new TokenBucket(cfg, this.#registry.clock));
  }

  budget(key: string, cfg: BudgetConfig): RetryBudget {
    this.claims.budgets.add(key);
    return this.#get(this.#registry.budgets, this.#budgets, key, cfg, () => new RetryBudget(cfg, this.#registry.clock));
  }

  /** A route's stale-if-error cache (`route:NAME`): a kept route keeps its stored responses, under its new bounds. */
  cache(key: string, cfg: CacheConfig): ResponseCache {
    this.claims.caches.add(key);
    return this.#get(this.#registry.caches, this.#caches, key, cfg, () => new ResponseCache(cfg));
  }

  /**
   * A global rate limit (SPEC §12) by key: the live one takes the new rate
   * and link at commit. The Redis link is made here (no connection) and
   * connected at commit; an unchanged redis block keeps the live link.
   */
  globalLimiter(key: string, cfg: RateLimitConfig, redis: RedisConfig, deps: { metrics: GlobalLimitMetrics; logger: Logger; events: RedisLinkEvents }): GlobalLimiter {
    this.claims.globals.add(key);
    const link = this.#redisLink(redis, deps.events);
    const live = this.#registry.globals.get(key);
    if (live !== undefined) {
      this.#updates.set(live, () => live.update(cfg, link));
      return live;
    }
    let m = this.#globals.get(key);
    if (m === undefined) this.#globals.set(key, (m = new GlobalLimiter(key, cfg, { link, metrics: deps.metrics, logger: deps.logger, clock: this.#registry.clock })));
    return m;
  }

  #redisLink(cfg: RedisConfig, events: RedisLinkEvents): RedisLink {
    if (this.#link !== null) return this.#link;
    const live = this.#registry.redis;
    this.#link = live !== null && live.identity === JSON.stringify(cfg) ? live : new RedisLink(cfg, this.#registry.peerId);
    this.#linkEvents = events;
    return this.#link;
  }

  /** Pools are keyed by origin and options: an unchanged endpoint keeps its warm connections. */
  pool(origin: string, opts: PoolOptions): Pool {
    const key = poolKey(origin, opts);
    this.claims.pools.add(key);
    const live = this.#registry.pools.get(key);
    if (live !== undefined) return live;
    let p = this.#pools.get(key);
    if (p === undefined) this.#pools.set(key, (p = createPool(origin, opts)));
    return p;
  }

  /** Applies the plan: new state is registered, live state takes its new thresholds. Once. */
  commit(): void {
    this.#settle();
    const r = this.#registry;
    for (const [name, b] of this.#breakers) r.adoptBreaker(name, b);
    for (const [name, b] of this.#bulkheads) r.bulkheads.set(name, b);
    for (const [key, b] of this.#buckets) r.buckets.set(key, b);
    for (const [key, b] of this.#budgets) r.budgets.set(key, b);
    for (const [key, p] of this.#pools) r.pools.set(key, p);
    for (const [key, c] of this.#caches) r.caches.set(key, c);
    for (const [key, g] of this.#globals) r.globals.set(key, g);
    for (const apply of this.#updates.values()) apply();
    // The Redis link: connected now if new; the one it replaces (or one no global limit uses any more) is closed.
    const old = r.redis;
    if (this.#link !== old) {
      r.redis = this.#link;
      if (this.#link !== null && this.#linkEvents !== null) this.#link.start(this.#linkEvents);
      void old?.close();
    }
  }

  /** Drops the plan: what it made is disposed (no connection was ever opened on its pools), live state is untouched. */
  async discard(): Promise<void> {
    this.#settle();
    for (const b of this.#breakers.values()) b.dispose();
    for (const b of this.#bulkheads.values()) b.dispose();
    await Promise.all([...this.#pools.values()].map((p) => p.close().catch(() => {})));
  }

  #get<T extends Updatable<C>, C>(live: ReadonlyMap<string, T>, made: Map<string, T>, name: string, cfg: C, make: () => T): T {
    const l = live.get(name);
    if (l !== undefined) {
      this.#updates.set(l, () => l.update(cfg));
      return l;
    }
    let m = made.get(name);
    if (m === undefined) made.set(name, (m = make()));
    return m;
  }

  #settle(): void {
    if (this.#settled) throw new Error('a state plan is committed or discarded once');
    this.#settled = true;
  }
}
