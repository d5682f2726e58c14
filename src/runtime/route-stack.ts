/**
 * The route stack: every step a request meets, in the order it meets them.
 * Reading this file top to bottom is reading a request's path through
 * breakwater (SPEC §4's order, inside `timeout.total`). Each step is built
 * once per config load; a policy that is off leaves its step out (`null`),
 * so the request path never asks "is this policy on?".
 *
 * Before this: the listener edge (http/server.ts) has accepted the request,
 * refused what is malformed, and routed it. After it: the response body
 * streams to the client (http/relay.ts) and, when the exchange is over, the
 * edge writes the access-log line and the RED metrics.
 *
 * Only the rescue step writes to the client. Every step below it returns a
 * Reply — an upstream response, a static answer, or a failure value — and
 * never writes itself (STYLE: one rescue point).
 */
import type { PolicySet, RetryConfig } from '../config/types.ts';
import { failure } from '../errors.ts';
import { hasBody, readBody } from '../http/body.ts';
import { applyRewrite, buildBaseHeaders } from '../http/forward-headers.ts';
import { respond } from '../http/respond.ts';
import { stripPrefix } from '../http/router.ts';
import { parseGrpcTimeout } from '../pipeline/grpc.ts';
import type { RouteMetrics, UpstreamMetrics } from '../observability/metrics/index.ts';
import type { Exchange } from '../pipeline/exchange.ts';
import { compose, type Handler, type Layer, type Reply } from '../pipeline/handler.ts';
import { breakerLayer } from '../policies/breaker/admission.ts';
import type { BreakerGuard } from '../policies/breaker/permit.ts';
import type { Bulkhead } from '../policies/bulkhead/bulkhead.ts';
import { bulkheadLayer } from '../policies/bulkhead/layer.ts';
import { cacheLayer, type CacheMetrics, type CacheParams } from '../policies/cache/layer.ts';
import { fallbackLayer, type FallbackParams } from '../policies/fallback/fallback.ts';
import { rateLimitLayer, type RateLimitParams } from '../policies/rate-limit/rate-limit.ts';
import type { RetryBudget } from '../policies/retry/budget.ts';
import { retryLayer } from '../policies/retry/retry.ts';
import type { HeaderRewrite } from '../config/types.ts';
import type { AttemptHandler } from '../upstream/attempt.ts';

/** Wraps an upstream's attempt handler (tracing's client spans); absent when tracing is off. */
export type AttemptWrapper = (next: AttemptHandler) => AttemptHandler;

/** What one route's stack is built from (resolved by runtime/build.ts). */
export interface RouteParts {
  readonly route: string;
  readonly upstream: string;
  readonly metrics: RouteMetrics;
  readonly policy: PolicySet;
  /** `match.pathPrefix` when `stripPrefix` is set. */
  readonly stripPrefix: string | null;
  /** The listener's `limits.bodySize`. */
  readonly bodySize: number | null;
  /** Header names with `_` pass (listener `underscoreHeaders: allow`). */
  readonly underscores: boolean;
  readonly fallback: Omit<FallbackParams, 'onFallback'> | null;
  /** The route's stale-if-error cache (SPEC §11.2), or null. */
  readonly cache: Omit<CacheParams, 'metrics'> | null;
  readonly rateLimit: Omit<RateLimitParams, 'onReject'> | null;
  /** The route's upstream: its own stack, below. */
  readonly upstreamStack: Handler;
  /** The dead-letter step (dead-letter/spool-step.ts), when the route has `deadLetter`; null otherwise. */
  readonly deadLetter: Layer | null;
  /** With `deadLetter`: its `maxBodySize`, which the body step must buffer to (a streamed body cannot be spooled). */
  readonly spoolBodySize: number | null;
  /** Tracing's server-span step (observability/tracing); null when tracing is off. */
  readonly trace: Layer | null;
}

/** A route's whole path, outermost step first. */
export function routeStack(p: RouteParts): Handler {
  const rm = p.metrics;
  return compose(
    [
      // observe: names the exchange's route and upstream and binds the
      // route's metric children, so whatever happens below — a refusal, a
      // fallback, a thrown bug — is counted and logged under this route.
      observeStep(p.route, p.upstream, rm),
      // trace: the server span starts here, its parent the client's
      // traceparent; outside rescue so a generated answer is in the span.
      // It ends with the exchange, where the access line is written.
      p.trace,
      // rescue: the only place a reply reaches the client — an upstream
      // response is committed, a failure rendered as SPEC §4.7 says.
      rescueStep,
      // deadline: `timeout.total` starts at the request's arrival and bounds
      // everything below it, body read, queueing and backoff included; a
      // gRPC call's own `grpc-timeout` may tighten it, never widen it.
      deadlineStep(p.policy.timeout.total),
      // forward: what goes upstream (path without the stripped prefix;
      // headers without hop-by-hop, with x-forwarded-* and x-request-id).
      forwardStep(p.stripPrefix, p.underscores),
      // body: read up to the replay buffer (so retries can resend it) within
      // `idle` and `total`, refused over the listener's `bodySize`.
      bodyStep(p.spoolBodySize === null ? replayLimit(p.policy.retry) : Math.max(replayLimit(p.policy.retry), p.spoolBodySize), p.bodySize, p.policy.timeout.idle),
      // dead letter: outside the fallback (a request it rescued is no
      // failure), inside the body step (it stores the buffered body); writes
      // the failed request durably before the rescue step answers.
      p.deadLetter,
      // fallback: outside every policy below, so that any refusal or failure
      // of theirs can trigger it (another upstream's stack, or a static answer).
      p.fallback === null ? null : fallbackLayer({ ...p.fallback, onFallback: (kind) => rm.fallback(kind) }),
      // cache: inside the fallback, so a failure it can answer with a stored
      // response never reaches fallback.upstream or .response (the cache is
      // the first fallback kind); outside the rate limit, so a limited
      // request is answered from the cache too.
      p.cache === null ? null : cacheLayer({ ...p.cache, metrics: cacheMetrics(rm) }),
      // route rate limit: the route's own bucket; outside the upstream stack
      // because a fallback upstream is not charged the route's token twice.
      p.rateLimit === null ? null : rateLimitLayer({ ...p.rateLimit, onReject: () => rm.rejected('rate_limited') }),
    ],
    p.upstreamStack,
  );
}

/** What one upstream's stack is built from; a fallback upstream gets one of its own. */
export interface UpstreamParts {
  readonly metrics: RouteMetrics;
  readonly upstreamMetrics: UpstreamMetrics;
  readonly rewrite: HeaderRewrite;
  /** The upstream's protocol may be HTTP/2 (h2c, h2, auto): a client's `te: trailers` goes on. */
  readonly keepTe: boolean;
  readonly rateLimit: Omit<RateLimitParams, 'onReject'> | null;
  readonly breaker: BreakerGuard | null;
  readonly bulkhead: Bulkhead | null;
  readonly retry: RetryConfig;
  readonly budget: RetryBudget | null;
  readonly attempt: AttemptHandler;
  /** Tracing's client span per attempt; null when tracing is off. */
  readonly traceAttempt: AttemptWrapper | null;
}

/** From the upstream's header rewrite down to one attempt, retried. */
export function upstreamStack(p: UpstreamParts): Handler {
  const rm = p.metrics;
  const um = p.upstreamMetrics;
  // retry ↺ attempt: the innermost pair. Retries are counted against the
  // budget and stop when the breaker opens; each attempt has its own perTry,
  // endpoint and classification (upstream/attempt.ts).
  const attempts = retryLayer({
    policy: p.retry,
    budget: p.budget,
    breaker: p.breaker?.breaker ?? null,
    onRetry: (reason) => rm.retry(reason),
    onBudgetExhausted: () => um.budgetExhausted(),
  })(p.traceAttempt === null ? p.attempt : p.traceAttempt(p.attempt));
  return compose(
    [
      // header rewrite: the upstream's requestHeaders (credential injection)
      // on top of the forwarded headers; per upstream, so a fallback
      // upstream gets its own credentials, never the primary's; and a
      // client's `te: trailers` for an upstream that may speak HTTP/2.
      rewriteStep(p.rewrite, p.keepTe),
      // upstream rate limit: one token per request, shared by every route to
      // the upstream; before the breaker so a limited request is no probe.
      p.rateLimit === null ? null : rateLimitLayer({ ...p.rateLimit, onReject: () => rm.rejected('rate_limited') }),
      // breaker admission: refuse at once while open; a half-open probe's
      // permit is recorded by its first attempt.
      p.breaker === null ? null : breakerLayer(p.breaker, () => rm.rejected('circuit_open')),
      // bulkhead: a slot held until the response body ends or the client
      // goes away, around all attempts, so retries never add concurrency.
      p.bulkhead === null ? null : bulkheadLayer(p.bulkhead, () => rm.rejected('bulkhead_full')),
    ],
    attempts,
  );
}

/** The cache layer's counters, on the route's metric children. */
function cacheMetrics(rm: RouteMetrics): CacheMetrics {
  return {
    hit(result) {
      rm.cacheHit(result);
      if (result === 'stale') rm.fallback('cache');
    },
    evicted: (n) => rm.cacheEvicted(n),
  };
}

// --- the steps that are not policies ------------------------------------------

function observeStep(route: string, upstream: string, rm: RouteMetrics): Layer {
  return (next) => (ex) => {
    ex.route = route;
    ex.upstream = upstream;
    ex.metrics = rm;
    return next(ex);
  };
}

const rescueStep: Layer = (next) => async (ex) => {
  const reply = await next(ex);
  respond(ex, reply);
  return reply;
};

function deadlineStep(total: number): Layer {
  return (next) => (ex) => {
    let ms = total;
    if (ex.grpc) {
      const t = parseGrpcTimeout(ex.req.headers['grpc-timeout']);
      if (t !== null && t < ms) ms = t;
    }
    ex.deadline = ex.start + ms;
    return next(ex);
  };
}

function forwardStep(prefix: string | null, underscores: boolean): Layer {
  return (next) => (ex) => {
    if (prefix !== null) ex.upstreamPath = stripPrefix(ex.target, prefix);
    buildBaseHeaders(ex, underscores);
    return next(ex);
  };
}

/** `te` lists `trailers` (`te: trailers`, `te: trailers, deflate;q=0.5`...). */
function acceptsTrailers(te: string | string[]): boolean {
  if (te === 'trailers') return true; // what every gRPC client sends
  for (const part of (typeof te === 'string' ? te : te.join(',')).split(',')) {
    const semi = part.indexOf(';');
    if ((semi < 0 ? part : part.slice(0, semi)).trim().toLowerCase() === 'trailers') return true;
  }
  return false;
}

/**
 * `te` is hop-by-hop, but `te: trailers` is the one value HTTP/2 keeps
 * (RFC 9113 §8.2.2), and gRPC servers require it (they read its absence as
 * a proxy that would drop their trailers). breakwater relays trailers, so
 * to an upstream that may speak HTTP/2 it passes a client's `te: trailers`
 * on. Inserted before the host pair, which stays last; a copy when the
 * headers are still the exchange's base (a fallback upstream may be HTTP/1.1).
 */
function keepTeTrailers(ex: Exchange): void {
  const h = ex.upstreamHeaders === ex.baseHeaders ? ex.baseHeaders.slice() : ex.upstreamHeaders;
  h.splice(h.length - 2, 0, 'te', 'trailers');
  ex.upstreamHeaders = h;
  ex.hostIndex = h.length - 1;
}

/** No retries, no replay: a body streams straight through. */
function replayLimit(retry: RetryConfig): number {
  return retry.maxRetries === 0 ? 0 : retry.bufferLimit;
}

const TOO_LARGE = Object.freeze(failure('request_too_large', 0, true));
const BODY_TIMEOUT = Object.freeze(failure('timeout', 0, true));

function bodyStep(bufferLimit: number, bodySize: number | null, idle: number): Layer {
  return (next) => {
    const withBody = async (ex: Exchange): Promise<Reply> => {
      const body = await readBody(ex, bufferLimit, bodySize, idle);
      // Both answers close the connection: the rest of the body is not read.
      if (body === 'too_large') return TOO_LARGE;
      if (body === 'timeout') return BODY_TIMEOUT;
      ex.body = body;
      if (ex.clientAborted) return BODY_TIMEOUT; // nobody reads it: the client is gone
      return next(ex);
    };
    // Most requests carry no body: they pass without a promise of this step's own.
    return (ex) => (hasBody(ex.req) ? withBody(ex) : next(ex));
  };
}

function rewriteStep(rw: HeaderRewrite, keepTe: boolean): Layer {
  // The rewrite's remove set includes the names it sets (set replaces).
  const removeSet: ReadonlySet<string> = new Set([...rw.remove, ...rw.set.map(([n]) => n)]);
  // Whether `te: trailers` may pass is known now, not per request.
  if (!keepTe || removeSet.has('te')) {
    return (next) => (ex: Exchange) => {
      applyRewrite(ex, rw, removeSet);
      return next(ex);
    };
  }
  return (next) => (ex: Exchange) => {
    applyRewrite(ex, rw, removeSet);
    const te = ex.req.headers.te;
    if (te !== undefined && acceptsTrailers(te)) keepTeTrailers(ex);
    return next(ex);
  };
}
