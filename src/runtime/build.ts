/**
 * From a frozen config to a runtime plan: listeners with compiled routers,
 * and for every route its stack (runtime/route-stack.ts), bound to state
 * handles from a StatePlan (runtime/plan.ts) and to metric handles (lazy:
 * a handle shows no series until it records). Building changes nothing
 * shared: the proxy commits the plan after the new listeners are bound and
 * discards it otherwise, and `breakwater validate` builds and discards, so
 * it catches everything a reload would.
 */
import { BUILTIN_FALLBACK_ON } from '../config/schema.ts';
import type { BreakwaterConfig, FallbackTrigger, ListenerConfig, PolicySet, RateLimitConfig, RouteConfig, UpstreamConfig } from '../config/types.ts';
import { renderFailure } from '../http/respond.ts';
import { Router } from '../http/router.ts';
import type { ExchangeObserver, ListenerRoutes, RouteEntry } from '../http/server.ts';
import { connectTunnels, type ConnectTunnels } from '../http/connect-tunnel.ts';
import { upgradeHandler } from '../http/upgrade.ts';
import type { AccessFields, AccessLog } from '../observability/access-log.ts';
import type { LiveTap } from '../observability/tap.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics, RouteMetrics, UpstreamMetrics } from '../observability/metrics/index.ts';
import type { Exchange } from '../pipeline/exchange.ts';
import type { Tracing, TracingHost } from '../observability/tracing/tracing.ts';
import type { Handler } from '../pipeline/handler.ts';
import { breakerGuard, type BreakerGuard } from '../policies/breaker/permit.ts';
import type { Bulkhead } from '../policies/bulkhead/bulkhead.ts';
import type { RateLimiter } from '../policies/rate-limit/rate-limit.ts';
import type { TunnelBucket } from '../policies/tunnel-guards.ts';
import { fallbackLayer } from '../policies/fallback/fallback.ts';
import { attemptHandler, type AttemptParams } from '../upstream/attempt.ts';
import { Balancer, EndpointPool } from '../upstream/pool.ts';
import { TlsSource, type TlsReloadListener } from '../upstream/tls.ts';
import type { RedisLinkEvents } from '../redis/link.ts';
import { Activity } from './activity.ts';
import { DeadLetters, type ReplayBinding } from '../dead-letter/hub.ts';
import { deadLetterStep } from '../dead-letter/spool-step.ts';
import { NEVER_LOGGED } from '../observability/never-logged.ts';
import { StatePlan } from './plan.ts';
import { routeStack, upstreamStack, type RouteParts } from './route-stack.ts';

type FallbackStep = NonNullable<RouteParts['fallback']>;
import type { Claims, StateRegistry } from './state.ts';

/** A route with a cache and no fallback block: the cache answers the fallback's built-in `on` failures. */
const BUILTIN_ON: ReadonlySet<FallbackTrigger> = new Set(BUILTIN_FALLBACK_ON);

export interface BuildDeps {
  readonly registry: StateRegistry;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly accessLog: AccessLog | null;
  /** The running proxy's dead letters; absent (validate), a throwaway one that never opens a file. */
  readonly deadLetters?: DeadLetters;
  /** Absent (validate) or null: no tracing steps are built. */
  readonly tracing?: TracingHost | null;
  /** The live tap (SPEC §13) and the line format it shares with the access log; absent under `validate`. */
  readonly tap?: LiveTap | null;
}

/** What one config load serves. */
export interface Runtime {
  readonly config: BreakwaterConfig;
  /** By listener name. */
  readonly listeners: ReadonlyMap<string, ListenerRoutes>;
  /** State this runtime uses: the registry keeps it while the runtime is current or has requests in flight. */
  readonly claims: Claims;
  /** Requests started under this runtime that are not over yet. */
  readonly activity: Activity;
}

/** A built runtime whose state changes are not applied yet. */
export interface RuntimePlan {
  readonly runtime: Runtime;
  /** Applies the state plan (new guards and pools registered, thresholds updated). Once. */
  commit(): void;
  /** Drops the plan; nothing shared was changed. Once. */
  discard(): Promise<void>;
}

export function buildRuntime(config: BreakwaterConfig, deps: BuildDeps): RuntimePlan {
  const state = new StatePlan(deps.registry);
  const host = deps.tracing ?? null;
  const tracing = host === null ? null : host.plan(config.tracing);
  const b = new Builder(config, deps, state, tracing);
  const activity = new Activity();
  const listeners = new Map<string, ListenerRoutes>();
  try {
    for (const l of config.listeners) {
      const routes = l.routes.map((r) => ({ config: r, value: b.route(l, r) as RouteEntry }));
      listeners.set(l.name, { config: l, router: new Router(routes), observer: listenerObserver(l.name, deps, activity, tracing !== null) });
    }
  } catch (err) {
    void state.discard();
    throw err;
  }
  const runtime: Runtime = { config, listeners, claims: state.claims, activity };
  return {
    runtime,
    commit: () => {
      state.commit();
      b.deadLetters.bind(b.replayBindings);
      // The exporter starts (or the running one is kept) only now: a build opens nothing.
      host?.commit(tracing);
    },
    discard: () => state.discard(),
  };
}

/**
 * The edge's observer for one listener: in-flight gauge and activity at the
 * start; RED metrics and the access-log line when the exchange is over, under
 * the route the route stack's observe step named (or the empty route of
 * requests refused before routing: every request is counted).
 */
function listenerObserver(listener: string, deps: BuildDeps, activity: Activity, traced: boolean): ExchangeObserver {
  const lm = deps.metrics.listener(listener);
  const noRoute = deps.metrics.noRoute(listener);
  const accessLog = deps.accessLog;
  const tap = deps.tap?.hub ?? null;
  const format = deps.tap?.format ?? null;
  /** The access line, and the tap's when someone listens: built once for both. */
  const emit = (fields: AccessFields, status: number, ms: number): void => {
    if (tap !== null && tap.active) {
      const line = format!.line(fields, status, ms);
      accessLog?.writeLine(line);
      tap.publish(line, fields, status);
    } else {
      accessLog?.write(fields, status, ms);
    }
  };
  return {
    started() {
      activity.start();
      lm.inflightInc();
    },
    unrouted(ex) {
      ex.metrics = noRoute;
      noRoute.rejected('no_route');
    },
    finished(ex) {
      activity.end();
      lm.inflightDec();
      const status = ex.status !== 0 ? ex.status : ex.res.headersSent ? ex.res.statusCode : 499;
      const ms = performance.now() - ex.start;
      const m = ex.metrics ?? noRoute;
      m.request(ex.method, status, ms / 1000);
      if (ex.grpcStatus !== null) m.grpcResponse(ex.grpcStatus);
      // With tracing on: the server span ends with the exchange (its events, the exemplar).
      if (traced) ex.trace?.end(ex, status, ms / 1000);
      emit(ex, status, ms);
    },
    refused(r, status) {
      noRoute.request(r.method ?? '', status, 0);
      if (r.error === 'no_route') noRoute.rejected('no_route');
      emit(r, status, 0);
    },
  };
}

class Builder {
  readonly #config: BreakwaterConfig;
  readonly #deps: BuildDeps;
  readonly #state: StatePlan;
  /** One TLS source per upstream with a `tls` block, shared by the pools of its endpoints (all routes). */
  readonly #tls = new Map<string, TlsSource>();
  readonly deadLetters: DeadLetters;
  /** Routes with a dead-letter spool: bound to the hub at commit. */
  readonly replayBindings: ReplayBinding[] = [];
  readonly #tracing: Tracing | null;
  readonly #serverSpan: ReturnType<Tracing['serverStep']> | null;

  constructor(config: BreakwaterConfig, deps: BuildDeps, state: StatePlan, tracing: Tracing | null) {
    this.#config = config;
    this.#deps = deps;
    this.#state = state;
    this.deadLetters = deps.deadLetters ?? new DeadLetters(deps.metrics, deps.logger);
    this.#tracing = tracing;
    this.#serverSpan = tracing === null ? null : tracing.serverStep();
  }

  /** The route's dead-letter step, and how its entries replay; null when the route has no `deadLetter`. */
  #deadLetter(r: RouteConfig, u: UpstreamConfig, up: UpstreamStack): RouteParts['deadLetter'] {
    const cfg = r.deadLetter;
    if (cfg === null) return null;
    const store = this.deadLetters.store(cfg.path);
    this.replayBindings.push({
      route: r.name,
      upstream: u.name,
      config: cfg,
      store,
      balancer: up.balancer,
      rewrite: u.requestHeaders,
      preserveHost: u.preserveHost,
      stripPrefix: r.stripPrefix ? r.match.pathPrefix : null,
      breaker: up.breaker?.breaker ?? null,
      bucket: up.bucket?.http ?? null,
      timeout: u.timeout.total,
    });
    return deadLetterStep({
      route: r.name,
      upstream: u.name,
      config: cfg,
      store,
      hub: this.deadLetters,
      secret: new Set([...NEVER_LOGGED, ...u.requestHeaders.set.map(([n]) => n)]),
      idempotencyHeader: r.policy.retry.idempotencyKeyHeader,
    });
  }

  /**
   * The upstream's TLS source: the files are read and checked now (a file
   * broken since the config was validated fails the build). A pool that
   * the registry already holds keeps the source it was made with — it is
   * watching the same files — so a source made here for it is never used.
   */
  #tlsSource(u: UpstreamConfig): TlsSource | null {
    if (u.tls === null) return null;
    let s = this.#tls.get(u.name);
    if (s === undefined) this.#tls.set(u.name, (s = new TlsSource(u.name, u.tls, tlsReloadListener(this.#deps))));
    return s;
  }

  #upstreamConfig(name: string): UpstreamConfig {
    const u = this.#config.upstreams.get(name);
    if (u === undefined) throw new Error(`unknown upstream "${name}" (the validator should have caught this)`);
    return u;
  }

  route(listener: ListenerConfig, r: RouteConfig): RouteEntry {
    const u = this.#upstreamConfig(r.upstream);
    const rm = this.#deps.metrics.route(listener.name, r.name, u.name);
    // A route that sets a budget of its own gets a budget of its own; otherwise
    // all routes to an upstream share the upstream's budget.
    const ownBudget = r.policy.retry.budget !== null && !sameBudget(r.policy.retry.budget, u.retry.budget);
    const up = this.#upstream(u, r.policy, rm, ownBudget ? `route:${r.name}` : `upstream:${u.name}`);
    const routeBucket = r.rateLimit === null ? null : this.#limiter(`route:${r.name}`, r.rateLimit);
    const stack = routeStack({
      route: r.name,
      upstream: u.name,
      metrics: rm,
      policy: r.policy,
      stripPrefix: r.stripPrefix ? r.match.pathPrefix : null,
      bodySize: listener.limits.bodySize,
      underscores: listener.underscoreHeaders === 'allow',
      fallback: this.#fallback(listener.name, r.name, r.policy),
      cache:
        r.cache === null
          ? null
          : {
              store: this.#state.cache(`route:${r.name}`, r.cache),
              staleIfError: r.cache.staleIfError,
              serveFresh: r.cache.serveFresh,
              on: r.policy.fallback?.on ?? BUILTIN_ON,
            },
      rateLimit: r.rateLimit === null || routeBucket === null ? null : { bucket: routeBucket.http, mode: r.rateLimit.mode, maxWait: r.rateLimit.maxWait },
      upstreamStack: up.handler,
      deadLetter: this.#deadLetter(r, u, up),
      spoolBodySize: r.deadLetter?.maxBodySize ?? null,
      trace: this.#serverSpan,
    });
    const upgrade = upgradeHandler({
      route: r,
      upstream: u,
      underscoreHeaders: listener.underscoreHeaders,
      balancer: up.balancer,
      breaker: up.breaker,
      bulkhead: up.bulkhead,
      onReject: (reason) => rm.rejected(reason),
      onAttempt: (kind, seconds) => up.metrics.attempt(kind, seconds),
      logger: this.#deps.accessLog === null ? null : this.#deps.logger,
      // The tap gets the tunnel line whether the access log is on or off.
      tap: this.#deps.tap ?? null,
      listener: listener.name,
    });
    const connect = !r.allowConnect ? null : connectTunnels({
      listener: listener.name,
      route: r,
      upstream: u,
      guards: {
        routeRateLimit: r.rateLimit === null || routeBucket === null ? null : { bucket: routeBucket.tunnel, observe: r.rateLimit.mode === 'observe' },
        upstreamRateLimit: u.rateLimit === null || up.bucket === null ? null : { bucket: up.bucket.tunnel, observe: u.rateLimit.mode === 'observe' },
        breaker: up.breaker,
        bulkhead: up.bulkhead,
      },
      metrics: rm,
      onAttempt: (kind, seconds) => up.metrics.attempt(kind, seconds),
      logger: this.#deps.accessLog === null ? null : this.#deps.logger,
      tap: this.#deps.tap ?? null,
    });
    return new Route(stack, upgrade, connect, this.#deps.logger);
  }

  /**
   * A rate limit's guard: the local bucket `key` names, or (scope global,
   * SPEC §12) the global limit of `rateLimit.key` or `key`, on the shared
   * Redis link.
   */
  #limiter(key: string, rl: RateLimitConfig): Limiter {
    if (rl.scope === 'local') {
      const b = this.#state.bucket(key, rl);
      return { http: b, tunnel: b };
    }
    const redis = this.#config.redis;
    if (redis === null) throw new Error(`rate limit ${key}: scope global without a redis block (the validator should have caught this)`);
    const name = rl.key ?? key;
    const d = this.#deps;
    const g = this.#state.globalLimiter(name, rl, redis, { metrics: d.metrics.globalLimit(name), logger: d.logger, events: redisEvents(d.logger) });
    return { http: g, tunnel: g.tunnel };
  }

  /** The fallback step's parameters: another upstream's own stack (with its own fallback), or only a static answer. */
  #fallback(listener: string, route: string, policy: PolicySet): FallbackStep | null {
    const fb = policy.fallback;
    if (fb === null) return null;
    let upstream: Handler | null = null;
    if (fb.upstream !== null) {
      const f = this.#upstreamConfig(fb.upstream);
      const fm = this.#deps.metrics.route(listener, route, f.name);
      const fPolicy: PolicySet = { timeout: f.timeout, retry: f.retry, fallback: f.fallback };
      const own = this.#fallback(listener, route, fPolicy);
      const stack = this.#upstream(f, fPolicy, fm, `upstream:${f.name}`).handler;
      upstream = own === null ? stack : fallbackAround(own, fm, stack);
    }
    return { config: fb, upstream, upstreamName: fb.upstream };
  }

  #upstream(u: UpstreamConfig, policy: PolicySet, rm: RouteMetrics, budgetKey: string): UpstreamStack {
    const state = this.#state;
    const um = this.#deps.metrics.upstream(u.name);
    const pools = u.endpoints.map(
      (e) =>
        new EndpointPool(
          e,
          state.pool(e.origin, {
            connections: u.pool.connections,
            keepAlive: u.pool.keepAlive,
            connectTimeout: policy.timeout.connect,
            tls: e.protocol === 'https:' ? this.#tlsSource(u) : null,
            protocol: u.protocol,
          }),
        ),
    );
    const balancer = new Balancer(pools, u.balance);
    const breaker = u.circuitBreaker === null ? null : breakerGuard(state.breaker(u.name, u.circuitBreaker));
    const bulkhead = u.bulkhead === null ? null : state.bulkhead(u.name, u.bulkhead);
    const bucket = u.rateLimit === null ? null : this.#limiter(`upstream:${u.name}`, u.rateLimit);
    const budget = policy.retry.budget === null || policy.retry.maxRetries === 0 ? null : state.budget(budgetKey, policy.retry.budget);
    const params: AttemptParams = {
      upstream: u.name,
      balancer,
      perTry: policy.timeout.perTry,
      idle: policy.timeout.idle,
      preserveHost: u.preserveHost,
      observe: attemptObserver(um, breaker !== null),
    };
    const handler = upstreamStack({
      metrics: rm,
      upstreamMetrics: um,
      rewrite: u.requestHeaders,
      keepTe: u.protocol !== 'http1',
      rateLimit: u.rateLimit === null || bucket === null ? null : { bucket: bucket.http, mode: u.rateLimit.mode, maxWait: u.rateLimit.maxWait },
      breaker,
      bulkhead,
      retry: policy.retry,
      budget,
      attempt: attemptHandler(params),
      traceAttempt: this.#tracing === null ? null : this.#tracing.attemptLayer(u.name),
    });
    return { handler, balancer, breaker, bulkhead, bucket, metrics: um };
  }
}

/** Rotations of an upstream's TLS files: one log line and one count each. */
function tlsReloadListener(deps: BuildDeps): TlsReloadListener {
  return (upstream, result, errors) => {
    deps.metrics.upstream(upstream).tlsReload(result);
    if (result === 'success') deps.logger.info({ upstream }, 'tls_reload');
    else deps.logger.error({ upstream, errors }, 'tls_reload_failed');
  };
}

/** The Redis connection's ups and downs: one log line each (an outage is logged once, not per failed call). */
function redisEvents(logger: Logger): RedisLinkEvents {
  return {
    onDown: (reason) => logger.warn({ reason }, 'redis_down'),
    onUp: () => logger.info('redis_connected'),
  };
}

/** A rate limit as the request path and the tunnels see it. */
interface Limiter {
  readonly http: RateLimiter;
  readonly tunnel: TunnelBucket['bucket'];
}

/** A fallback upstream's own fallback, around its stack. */
function fallbackAround(params: FallbackStep, fm: RouteMetrics, stack: Handler): Handler {
  return fallbackLayer({ ...params, onFallback: (kind) => fm.fallback(kind) })(stack);
}

/** An upstream's stack and the guards the upgrade tunnel shares with it. */
interface UpstreamStack {
  readonly handler: Handler;
  readonly balancer: Balancer;
  readonly breaker: BreakerGuard | null;
  readonly bulkhead: Bulkhead | null;
  readonly bucket: Limiter | null;
  readonly metrics: UpstreamMetrics;
}

function sameBudget(a: PolicySet['retry']['budget'], b: PolicySet['retry']['budget']): boolean {
  return a === b || (a !== null && b !== null && a.ratio === b.ratio && a.minPerSecond === b.minPerSecond && a.window === b.window);
}

/** The classifier's consumers for one upstream: tries[], attempt metrics, the breaker (through the exchange's permit). */
function attemptObserver(um: UpstreamMetrics, hasBreaker: boolean): AttemptParams['observe'] {
  return (ex, kind, status, ms, endpoint, grpc) => {
    const rounded = Math.round(ms * 1000) / 1000;
    if (ex.grpc) {
      const g = grpc < 0 ? null : grpc;
      ex.addTry({ endpoint, outcome: kind, status: status === 0 ? null : status, grpcStatus: g, ms: rounded });
      ex.grpcStatus = g;
    } else ex.addTry({ endpoint, outcome: kind, status: status === 0 ? null : status, ms: rounded });
    ex.endpoint = endpoint;
    ex.upstreamMs = ms;
    um.attempt(kind, ms / 1000);
    // An attempt aborted because the client's body went over the limit says nothing about the upstream.
    // Only an upstream with a breaker records, and only through the permit its own admission gave.
    if (hasBreaker && ex.breaker !== null && !ex.bodyTooLarge) ex.breaker = ex.breaker.record(kind, status, grpc);
  };
}

/** A route's entry, as the edge sees it: the stack for requests, the tunnels for upgrades and CONNECT. */
class Route implements RouteEntry {
  readonly #stack: Handler;
  readonly upgrade: RouteEntry['upgrade'];
  readonly connect: ConnectTunnels | null;
  readonly #logger: Logger;

  constructor(stack: Handler, upgrade: RouteEntry['upgrade'], connect: ConnectTunnels | null, logger: Logger) {
    this.#stack = stack;
    this.upgrade = upgrade;
    this.connect = connect;
    this.#logger = logger;
  }

  handle(ex: Exchange): void {
    let p: Promise<unknown>;
    try {
      p = this.#stack(ex);
    } catch (err) {
      // A step that throws before its first await throws here, not into the
      // promise: still one answer, never an uncaught exception.
      this.#failed(ex, err);
      return;
    }
    p.catch((err: unknown) => this.#failed(ex, err));
  }

  #failed(ex: Exchange, err: unknown): void {
    // Nothing should reach here: steps return failures as values. If
    // something does, the client still gets an answer and the log says why.
    this.#logger.error({ err, requestId: ex.requestId, route: ex.route }, 'internal_error');
    if (!ex.res.headersSent && !ex.clientAborted) renderFailure(ex, 'upstream_reset', 0);
    else ex.res.destroy();
  }
}
