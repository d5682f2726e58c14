/**
 * One compiler per policy block: merged layers in, runtime type out
 * (types.ts). Strings such as `5xx` or `POST` end here; what leaves is flags,
 * status sets and method sets the request path can test in O(1).
 */
import { grpcCodeOf } from '../pipeline/grpc.ts';
import { FrozenSet } from './freeze.ts';
import { mergeBlocks, withBuiltIns, type Layer } from './merge.ts';
import {
  deadLetterSchema,
  bulkheadSchema,
  circuitBreakerSchema,
  fallbackSchema,
  rateLimitSchema,
  retrySchema,
  timeoutSchema,
  type RawBulkhead,
  type RawDeadLetter,
  type RawCircuitBreaker,
  type RawFallback,
  type RawRateLimit,
  type RawRetry,
  type RawTimeout,
} from './schema.ts';
import type {
  BulkheadConfig,
  CircuitBreakerConfig,
  ConditionSet,
  DeadLetterConfig,
  DeadLetterTrigger,
  FallbackConfig,
  FallbackTrigger,
  RateLimitConfig,
  Rate,
  RetryConfig,
  TimeoutConfig,
} from './types.ts';

/** A value validation guarantees; its absence is a bug in this library, not in the file. */
export function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`breakwater bug: ${what} missing after validation`);
  return v;
}

export function defined<T>(xs: readonly (T | undefined)[] | undefined): T[] {
  return (xs ?? []).filter((x): x is T => x !== undefined);
}

/** perTry is not capped here on purpose: lint.ts compares the two to warn. */
export function mergedTimeout(layers: readonly Layer<RawTimeout>[]): { perTry: number; total: number; connect: number; idle: number } {
  const t = withBuiltIns(timeoutSchema, mergeBlocks(timeoutSchema, layers) ?? {});
  const total = need(t.total, 'timeout.total');
  return { connect: need(t.connect, 'timeout.connect'), perTry: t.perTry ?? total, total, idle: need(t.idle, 'timeout.idle') };
}

export function compileTimeout(layers: readonly Layer<RawTimeout>[]): TimeoutConfig {
  const t = mergedTimeout(layers);
  return { connect: t.connect, perTry: Math.min(t.perTry, t.total), total: t.total, idle: t.idle };
}

export function compileRetry(layers: readonly Layer<RawRetry>[], conds: ConditionCache): RetryConfig {
  const r = withBuiltIns(retrySchema, mergeBlocks(retrySchema, layers) ?? {});
  const b = need(r.backoff, 'retry.backoff');
  const budget = need(r.budget, 'retry.budget');
  return {
    maxRetries: need(r.maxRetries, 'retry.maxRetries'),
    on: conds.get(defined(r.on)),
    methods: new FrozenSet(defined(r.methods)),
    idempotencyKeyHeader: need(r.idempotencyKeyHeader, 'retry.idempotencyKeyHeader'),
    backoff: {
      strategy: need(b.strategy, 'backoff.strategy'),
      base: need(b.base, 'backoff.base'),
      max: need(b.max, 'backoff.max'),
      jitter: need(b.jitter, 'backoff.jitter'),
    },
    budget:
      budget === null
        ? null
        : { ratio: need(budget.ratio, 'budget.ratio'), minPerSecond: need(budget.minPerSecond, 'budget.minPerSecond'), window: need(budget.window, 'budget.window') },
    respectRetryAfter: need(r.respectRetryAfter, 'retry.respectRetryAfter'),
    bufferLimit: need(r.bufferLimit, 'retry.bufferLimit'),
  };
}

export function compileBreaker(layers: readonly Layer<RawCircuitBreaker>[], conds: ConditionCache): CircuitBreakerConfig | null {
  const merged = mergeBlocks(circuitBreakerSchema, layers);
  if (merged === undefined) return null;
  const c = withBuiltIns(circuitBreakerSchema, merged);
  return {
    consecutiveFailures: need(c.consecutiveFailures, 'consecutiveFailures'),
    failureRate: need(c.failureRate, 'failureRate'),
    minimumRequests: need(c.minimumRequests, 'minimumRequests'),
    window: need(c.window, 'window'),
    openDuration: need(c.openDuration, 'openDuration'),
    halfOpenRequests: need(c.halfOpenRequests, 'halfOpenRequests'),
    successThreshold: need(c.successThreshold, 'successThreshold'),
    failOn: conds.get(defined(c.failOn)),
    mode: need(c.mode, 'mode'),
  };
}

export function compileBulkhead(layers: readonly Layer<RawBulkhead>[]): BulkheadConfig | null {
  const merged = mergeBlocks(bulkheadSchema, layers);
  if (merged === undefined) return null;
  const b = withBuiltIns(bulkheadSchema, merged);
  return {
    maxConcurrent: need(b.maxConcurrent, 'maxConcurrent'),
    maxQueue: need(b.maxQueue, 'maxQueue'),
    queueTimeout: need(b.queueTimeout, 'queueTimeout'),
    mode: need(b.mode, 'mode'),
  };
}

/** One second's worth of tokens, rounded up, at least one. */
export function defaultBurst(rate: Rate): number {
  return Math.max(1, Math.ceil(rate.perMs * 1000));
}

export function compileRateLimit(layers: readonly Layer<RawRateLimit>[]): RateLimitConfig | null {
  const merged = mergeBlocks(rateLimitSchema, layers);
  if (merged === undefined) return null;
  const r = withBuiltIns(rateLimitSchema, merged);
  const rate = need(r.rate, 'rateLimit.rate');
  return {
    rate,
    burst: r.burst ?? defaultBurst(rate),
    maxWait: need(r.maxWait, 'maxWait'),
    mode: need(r.mode, 'mode'),
    scope: need(r.scope, 'scope'),
    key: r.key ?? null,
    onRedisError: r.onRedisError ?? null,
  };
}

export function compileFallback(layers: readonly Layer<RawFallback>[]): FallbackConfig | null {
  const merged = mergeBlocks(fallbackSchema, layers);
  if (merged === undefined) return null;
  const f = withBuiltIns(fallbackSchema, merged);
  const res = f.response ?? null;
  return {
    upstream: f.upstream ?? null,
    response:
      res === null
        ? null
        : {
            status: need(res.status, 'response.status'),
            headers: Object.fromEntries([...need(res.headers, 'response.headers')].map(([k, v]) => [k, need(v, `response.headers.${k}`)])),
            body: need(res.body, 'response.body'),
          },
    on: new FrozenSet<FallbackTrigger>(defined(f.on)),
  };
}

/** A route's `deadLetter` block (route-only: a spool is the route's, its bounds are per route). */
export function compileDeadLetter(layers: readonly Layer<RawDeadLetter>[]): DeadLetterConfig | null {
  const merged = mergeBlocks(deadLetterSchema, layers);
  if (merged === undefined) return null;
  const d = withBuiltIns(deadLetterSchema, merged);
  const on = defined(d.on);
  const replay = need(d.replay, 'deadLetter.replay');
  return {
    path: need(d.path, 'deadLetter.path'),
    maxEntries: need(d.maxEntries, 'deadLetter.maxEntries'),
    maxBytes: need(d.maxBytes, 'deadLetter.maxBytes'),
    maxAge: need(d.maxAge, 'deadLetter.maxAge'),
    maxBodySize: need(d.maxBodySize, 'deadLetter.maxBodySize'),
    respond: need(d.respond, 'deadLetter.respond'),
    on: new FrozenSet(on.filter((c): c is DeadLetterTrigger => typeof c === 'string')),
    statuses: new FrozenSet(on.filter((c): c is number => typeof c === 'number')),
    replay: { auto: need(replay.auto, 'deadLetter.replay.auto'), rate: need(replay.rate, 'deadLetter.replay.rate') },
  };
}

/**
 * Compiles retry `on` / breaker `failOn` lists (gRPC status names become a
 * bit mask of codes); equal lists (the built-ins,
 * mostly) share one ConditionSet.
 */
export class ConditionCache {
  readonly #sets = new Map<string, ConditionSet>();

  get(list: readonly (string | number)[]): ConditionSet {
    const key = list.join(',');
    let c = this.#sets.get(key);
    if (c === undefined) {
      c = compileConditions(list);
      this.#sets.set(key, c);
    }
    return c;
  }
}

export function compileConditions(list: readonly (string | number)[]): ConditionSet {
  const statuses = new Set<number>();
  let connectFailure = false;
  let reset = false;
  let timeout = false;
  let grpc = 0;
  for (const c of list) {
    if (typeof c === 'number') statuses.add(c);
    else if (grpcCodeOf(c) > 0) grpc |= 1 << grpcCodeOf(c);
    else if (c === 'connect-failure') connectFailure = true;
    else if (c === 'reset') reset = true;
    else if (c === 'timeout') timeout = true;
    else if (c === '5xx') for (let s = 500; s <= 599; s++) statuses.add(s);
    else if (c === 'gateway-error') for (const s of [502, 503, 504]) statuses.add(s);
  }
  return { connectFailure, reset, timeout, statuses: new FrozenSet(statuses), grpc, source: [...list] };
}
