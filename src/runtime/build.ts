/**
 * From a frozen config to a Runtime: listeners with compiled routers, and for
 * every route its pipeline of policy layers, bound to shared state in the
 * registry and to pre-bound metric children. Built once per config load
 * (start-up and every reload), never per request; `breakwater validate` and
 * reload share this code path.
 *
 * A route's pipeline, outermost first (SPEC §4):
 *
 *   fallback → rateLimit(route) → [upstream stage]
 *   upstream stage: rewrite headers → rateLimit(upstream) → breaker admission
 *                   → bulkhead → retry ↺ attempt (perTry, pool dispatch, classify)
 *
 * Fallback sits outermost so that every rejection below it (rate limit,
 * breaker, bulkhead, retries exhausted) can trigger it; the route's rate limit
 * sits outside the upstream stage because a fallback upstream has its own.
 * Layers whose policy is off are left out, not skipped at run time.
 */
import type { BreakwaterConfig, ListenerConfig, PolicySet, RouteConfig, UpstreamConfig } from '../config/types.ts';
import { renderFailure, respond } from '../http/respond.ts';
import { buildBaseHeaders, applyRewrite } from '../http/forward-headers.ts';
import { readBody } from '../http/body.ts';
import { Router, stripPrefix } from '../http/router.ts';
import type { ExchangeObserver, ListenerRuntime, RouteEntry } from '../http/server.ts';
import type { AccessLog } from '../observability/access-log.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics, RouteMetrics, UpstreamMetrics } from '../observability/metrics/index.ts';
import { compose, type Exchange, type Handler, type Layer } from '../pipeline/exchange.ts';
import { breakerLayer } from '../policies/breaker/admission.ts';
import type { CircuitBreaker } from '../policies/breaker/breaker.ts';
import { bulkheadLayer } from '../policies/bulkhead/layer.ts';
import { fallbackLayer } from '../policies/fallback/fallback.ts';
import { rateLimitLayer } from '../policies/rate-limit/rate-limit.ts';
import { retryLayer } from '../policies/retry/retry.ts';
import type { Bulkhead } from '../policies/bulkhead/bulkhead.ts';
import { upgradeHandler } from '../http/upgrade.ts';
import { UpstreamReply, type AttemptStage } from '../upstream/attempt.ts';
import { Balancer, EndpointRuntime } from '../upstream/pool.ts';
import { newClaims, type Claims, type StateRegistry } from './state.ts';

export interface BuildDeps {
  readonly registry: StateRegistry;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly accessLog: AccessLog | null;
}

export interface Runtime {
  readonly config: BreakwaterConfig;
  /** By listener name. */
  readonly listeners: ReadonlyMap<string, ListenerRuntime>;
  /** State this runtime uses: the registry keeps it while the runtime is current or has requests in flight. */
  readonly claims: Claims;
  /** Requests started under this runtime that are not over yet. */
  readonly activity: Activity;
}

/** Counts a runtime's in-flight requests, so a replaced runtime's state is dropped only once it is idle. */
export class Activity {
  inflight = 0;
  #waiters: (() => void)[] = [];
  start(): void {
    this.inflight++;
  }
  end(): void {
    if (--this.inflight === 0 && this.#waiters.length > 0) {
      const w = this.#waiters;
      this.#waiters = [];
      for (const f of w) f();
    }
  }
  /** Resolves when nothing is in flight. */
  idle(): Promise<void> {
    return this.inflight === 0 ? Promise.resolve() : new Promise((r) => this.#waiters.push(r));
  }
}

export function buildRuntime(config: BreakwaterConfig, deps: BuildDeps): Runtime {
  const b = new Builder(config, deps);
  const activity = new Activity();
  const listeners = new Map<string, ListenerRuntime>();
  for (const l of config.listeners) {
    const lm = deps.metrics.listener(l.name);
    const noRoute = deps.metrics.noRoute(l.name);
    const routes = l.routes.map((r) => ({ config: r, value: b.route(l.name, r) as RouteEntry }));
    const accessLog = deps.accessLog;
    const observer: ExchangeObserver = {
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
        // Requests refused before routing (400, 413, 431, draining) count under
        // the empty route/upstream labels, like no_route: every request is counted.
        (ex.metrics ?? noRoute).request(ex.method, status, ms / 1000);
        accessLog?.write(ex, status, ms);
      },
    };
    listeners.set(l.name, { config: l, router: new Router(routes), observer });
  }
  return { config, listeners, claims: b.claims, activity };
}

/** The rewrite's remove set includes the names it sets (set replaces). */
function removeSetOf(u: UpstreamConfig): ReadonlySet<string> {
  return new Set([...u.requestHeaders.remove, ...u.requestHeaders.set.map(([n]) => n)]);
}

class Builder {
  readonly claims = newClaims();
  readonly #config: BreakwaterConfig;
  readonly #deps: BuildDeps;

  constructor(config: BreakwaterConfig, deps: BuildDeps) {
    this.#config = config;
    this.#deps = deps;
  }

  #upstream(name: string): UpstreamConfig {
    const u = this.#config.upstreams.get(name);
    if (u === undefined) throw new Error(`unknown upstream "${name}" (the validator should have caught this)`);
    return u;
  }

  route(listener: string, r: RouteConfig): RouteRuntime {
    const u = this.#upstream(r.upstream);
    const rm = this.#deps.metrics.route(listener, r.name, u.name);
    const { registry } = this.#deps;
    const routeBucket =
      r.rateLimit === null
        ? null
        : rateLimitLayer({
            bucket: registry.bucket(`route:${r.name}`, r.rateLimit, this.claims),
            mode: r.rateLimit.mode,
            maxWait: r.rateLimit.maxWait,
            onReject: () => rm.rejected('rate_limited'),
          });
    // A route that sets a budget of its own gets a budget of its own; otherwise
    // all routes to an upstream share the upstream's budget.
    const ownBudget = r.policy.retry.budget !== null && !sameBudget(r.policy.retry.budget, u.retry.budget);
    const stage = this.#stage(u, r.policy, rm, ownBudget ? `route:${r.name}` : `upstream:${u.name}`);
    const handler = compose([this.#fallback(listener, r.name, r.policy, rm), routeBucket], stage.handler);
    const listenerConfig = this.#config.listeners.find((l) => l.name === listener)!;
    const upgrade = upgradeHandler({
      route: r,
      upstream: u,
      underscoreHeaders: listenerConfig.underscoreHeaders,
      balancer: stage.balancer,
      breaker: stage.breaker,
      bulkhead: stage.bulkhead,
      onReject: (reason) => rm.rejected(reason),
      onAttempt: (kind, seconds) => stage.metrics.attempt(kind, seconds),
    });
    return new RouteRuntime(r, u.name, handler, upgrade, rm, listenerConfig, this.#deps.logger);
  }

  #fallback(listener: string, route: string, policy: PolicySet, rm: RouteMetrics): Layer | null {
    const fb = policy.fallback;
    if (fb === null) return null;
    let upstream: Handler | null = null;
    if (fb.upstream !== null) {
      // The fallback upstream runs with its own policies and its own fallback.
      const f = this.#upstream(fb.upstream);
      const fm = this.#deps.metrics.route(listener, route, f.name);
      const fPolicy: PolicySet = { timeout: f.timeout, retry: f.retry, fallback: f.fallback };
      upstream = compose([this.#fallback(listener, route, fPolicy, fm)], this.#stage(f, fPolicy, fm, `upstream:${f.name}`).handler);
    }
    return fallbackLayer({ config: fb, upstream, upstreamName: fb.upstream, onFallback: (kind) => rm.fallback(kind) });
  }

  #stage(u: UpstreamConfig, policy: PolicySet, rm: RouteMetrics, budgetKey: string): StageParts {
    const { registry, metrics } = this.#deps;
    const um = metrics.upstream(u.name);
    const claims = this.claims;
    const pools = u.endpoints.map(
      (e) =>
        new EndpointRuntime(
          e,
          registry.pool(e.origin, { connections: u.pool.connections, keepAlive: u.pool.keepAlive, connectTimeout: policy.timeout.connect }, claims),
        ),
    );
    const balancer = new Balancer(pools, u.balance);
    const breaker: CircuitBreaker | null = u.circuitBreaker === null ? null : registry.breaker(u.name, u.circuitBreaker, claims);
    const bulkhead = u.bulkhead === null ? null : registry.bulkhead(u.name, u.bulkhead, claims);
    const budget = policy.retry.budget === null || policy.retry.maxRetries === 0 ? null : registry.budget(budgetKey, policy.retry.budget, claims);
    const stage: AttemptStage = {
      upstream: u.name,
      balancer,
      perTry: policy.timeout.perTry,
      idle: policy.timeout.idle,
      preserveHost: u.preserveHost,
      observe: attemptObserver(um, breaker),
    };
    const attempt: Handler = (ex) => new UpstreamReply(ex, stage, balancer.pick()).run(ex.body as Buffer | null);
    const removeSet = removeSetOf(u);
    const rewrite: Layer = (next) => (ex) => {
      applyRewrite(ex, u.requestHeaders, removeSet);
      return next(ex);
    };
    const handler = compose(
      [
        rewrite,
        u.rateLimit === null
          ? null
          : rateLimitLayer({
              bucket: registry.bucket(`upstream:${u.name}`, u.rateLimit, claims),
              mode: u.rateLimit.mode,
              maxWait: u.rateLimit.maxWait,
              onReject: () => rm.rejected('rate_limited'),
            }),
        breaker === null ? null : breakerLayer(breaker, () => rm.rejected('circuit_open')),
        bulkhead === null
          ? null
          : bulkheadLayer(
              bulkhead,
              () => rm.rejected('bulkhead_full'),
              () => um.bulkhead(bulkhead.active, bulkhead.queued),
            ),
        retryLayer({
          policy: policy.retry,
          budget,
          breaker,
          onRetry: (reason) => rm.retry(reason),
          onBudgetExhausted: () => um.budgetExhausted(),
        }),
      ],
      attempt,
    );
    return { handler, balancer, breaker, bulkhead, metrics: um };
  }
}

/** An upstream stage and the shared parts the upgrade tunnel reuses. */
interface StageParts {
  readonly handler: Handler;
  readonly balancer: Balancer;
  readonly breaker: CircuitBreaker | null;
  readonly bulkhead: Bulkhead | null;
  readonly metrics: UpstreamMetrics;
}

function sameBudget(a: PolicySet['retry']['budget'], b: PolicySet['retry']['budget']): boolean {
  return a === b || (a !== null && b !== null && a.ratio === b.ratio && a.minPerSecond === b.minPerSecond && a.window === b.window);
}

/** The classifier's consumers for one upstream: tries[], attempt metrics, the breaker. */
function attemptObserver(um: UpstreamMetrics, breaker: CircuitBreaker | null): AttemptStage['observe'] {
  return (ex, kind, status, ms, endpoint) => {
    ex.addTry({ endpoint, outcome: kind, status: status === 0 ? null : status, ms: Math.round(ms * 1000) / 1000 });
    ex.endpoint = endpoint;
    ex.upstreamMs = ms;
    um.attempt(kind, ms / 1000);
    // An attempt we aborted because the client's body went over the limit says nothing about the upstream.
    if (breaker !== null && !ex.bodyTooLarge) {
      const probe = ex.probe === breaker;
      if (probe) ex.probe = null;
      breaker.record(kind, status, probe);
    }
  };
}

/** A route's entry: sets up the exchange, reads the body, runs the pipeline, hands the reply to the rescue point. */
class RouteRuntime implements RouteEntry {
  readonly #config: RouteConfig;
  readonly #upstream: string;
  readonly #handler: Handler;
  readonly upgrade: RouteEntry['upgrade'];
  readonly #metrics: RouteMetrics;
  readonly #logger: Logger;
  readonly #bodySize: number | null;
  readonly #underscores: boolean;
  readonly #total: number;
  readonly #idle: number;
  readonly #bufferLimit: number;
  readonly #prefix: string | null;

  constructor(config: RouteConfig, upstream: string, handler: Handler, upgrade: RouteEntry['upgrade'], metrics: RouteMetrics, listener: ListenerConfig, logger: Logger) {
    this.#config = config;
    this.#upstream = upstream;
    this.#handler = handler;
    this.upgrade = upgrade;
    this.#metrics = metrics;
    this.#logger = logger;
    this.#bodySize = listener.limits.bodySize;
    this.#underscores = listener.underscoreHeaders === 'allow';
    this.#total = config.policy.timeout.total;
    this.#idle = config.policy.timeout.idle;
    // No retries, no replay: stream any body straight through.
    this.#bufferLimit = config.policy.retry.maxRetries === 0 ? 0 : config.policy.retry.bufferLimit;
    this.#prefix = config.stripPrefix ? config.match.pathPrefix : null;
  }

  handle(ex: Exchange): void {
    this.#run(ex).catch((err: unknown) => {
      // Nothing should reach here: layers return failures as values. If
      // something does, the client still gets an answer and the log says why.
      this.#logger.error({ err, requestId: ex.requestId, route: ex.route }, 'internal_error');
      if (!ex.res.headersSent && !ex.clientAborted) renderFailure(ex, 'upstream_reset', 0);
      else ex.res.destroy();
    });
  }

  async #run(ex: Exchange): Promise<void> {
    ex.route = this.#config.name;
    ex.upstream = this.#upstream;
    ex.metrics = this.#metrics;
    ex.deadline = ex.start + this.#total;
    if (this.#prefix !== null) ex.upstreamPath = stripPrefix(ex.target, this.#prefix);
    buildBaseHeaders(ex, this.#underscores);
    const body = await readBody(ex, this.#bufferLimit, this.#bodySize, this.#idle);
    if (body === 'too_large') {
      renderFailure(ex, 'request_too_large', 0, { connection: 'close' });
      return;
    }
    if (body === 'timeout') {
      if (!ex.clientAborted) renderFailure(ex, 'timeout', 0, { connection: 'close' });
      return;
    }
    ex.body = body;
    if (ex.clientAborted) return;
    respond(ex, await this.#handler(ex));
  }
}
