/**
 * The Metrics registry: one per proxy process, in its own prom-client
 * Registry (never the global one, so two proxies in one process, as in
 * tests, never share series). It hands out the bound handles, keeps them
 * across reloads, drops the series of names a new config no longer has
 * (`retain`), and formats a scrape (`metricsText`).
 */
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { Metric as PromMetric } from 'prom-client';
import type { GlobalLimitMetrics } from '../../policies/rate-limit/global-limiter.ts';
import { PREFIX } from './catalogue.ts';
import { Families, type Cell, type Labels } from './families.ts';
import { ListenerHandle, RouteHandle, UpstreamHandle, type Handle, type ListenerMetrics, type RouteMetrics, type UpstreamMetrics } from './handles.ts';

/** prom-client defaults that fail `promtool check metrics`; see the constructor. */
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export interface RetainSet {
  readonly routes: ReadonlyArray<readonly [listener: string, route: string, upstream: string]>;
  readonly upstreams: readonly string[];
  readonly listeners: readonly string[];
}

/** An OpenMetrics registry over views of `classic`'s metrics; later additions to `classic` are seen too. */
function openMetricsView(classic: Registry): { metrics(): Promise<string> } {
  // NOTE: prom-client's typings give the constructor no argument; its code takes the content type.
  const OmRegistry = Registry as unknown as new (contentType: string) => Registry;
  const om = new OmRegistry(Registry.OPENMETRICS_CONTENT_TYPE);
  type Src = { name: string; help: string; type: string; get(): Promise<{ name: string; type?: string }> };
  const views = new Map<Src, Src>();
  const view = (m: Src, names: ReadonlySet<string>): Src => {
    let v = views.get(m);
    if (v === undefined) {
      // OpenMetrics names a counter's family without `_total`: SPEC §11.1's
      // counter `dead_letters_total` beside its gauge `dead_letters` would be
      // two families of one name, which parsers refuse. Such a counter is
      // shown as `unknown`, under its own full name (samples unchanged).
      const type = m.type === 'counter' && names.has(m.name.replace(/_total$/, '')) ? 'unknown' : m.type;
      const o: Src = { name: m.name, help: m.help, type, get: async () => ({ ...(await m.get()), name: o.name, type }) };
      v = o;
      views.set(m, v);
    }
    return v;
  };
  const src = classic as unknown as { getMetricsAsArray(): Src[] };
  (om as unknown as { getMetricsAsArray(): Src[] }).getMetricsAsArray = () => {
    const all = src.getMetricsAsArray();
    const names = new Set(all.map((m) => m.name));
    return all.map((m) => view(m, names));
  };
  return om;
}

const key = (...parts: string[]): string => parts.join('\u0000');

function retireWhere(handles: Map<string, Handle>, drop: (key: string) => boolean): void {
  for (const [k, h] of handles) {
    if (!drop(k)) continue;
    h.retire();
    handles.delete(k);
  }
}

export class Metrics {
  readonly registry: Registry;
  readonly contentType: string;
  readonly #f = new Families();
  readonly #routes = new Map<string, RouteHandle>();
  readonly #upstreams = new Map<string, UpstreamHandle>();
  readonly #listeners = new Map<string, ListenerHandle>();
  readonly #reloads: Readonly<Record<'success' | 'failure' | 'unchanged', Cell>>;

  /** `defaultMetrics` (default true): prom-client's process metrics, prefixed `breakwater_`. Unit tests turn it off. */
  constructor(opts: { defaultMetrics?: boolean } = {}) {
    this.registry = new Registry();
    this.contentType = this.registry.contentType;
    // NOTE: the cast is the one place the families meet prom-client's types:
    // the Registry only calls `get()` (and `reset()`), which they implement.
    for (const f of this.#f.all) this.registry.registerMetric(f as unknown as PromMetric);
    if (opts.defaultMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
      // prom-client exports these three totals as gauges named `_total`,
      // which `promtool check metrics` rejects (a `_total` suffix promises a
      // counter). Nothing is lost: each is the sum of the same family's
      // by-type gauge (`nodejs_active_handles{type}` ...), kept.
      for (const name of LINT_FAILING_DEFAULTS) this.registry.removeSingleMetric(PREFIX + name);
    }
    // All three results exist from the start, so `increase()` sees the first failure.
    this.#reloads = {
      success: this.#f.reloads.child('success'),
      failure: this.#f.reloads.child('failure'),
      unchanged: this.#f.reloads.child('unchanged'),
    };
  }

  /** Bound children for one route of one listener. Cached: same args → same object. */
  route(listener: string, route: string, upstream: string): RouteMetrics {
    const k = key(listener, route, upstream);
    let h = this.#routes.get(k);
    if (h === undefined) {
      h = new RouteHandle(this.#f, listener, route, upstream);
      this.#routes.set(k, h);
    }
    return h;
  }

  /** Requests that matched no route: route="" upstream="" (SPEC §8); rejected_total reason no_route. */
  noRoute(listener: string): RouteMetrics {
    return this.route(listener, '', '');
  }

  upstream(name: string): UpstreamMetrics {
    let h = this.#upstreams.get(name);
    if (h === undefined) {
      h = new UpstreamHandle(this.#f, name);
      this.#upstreams.set(name, h);
    }
    return h;
  }

  listener(name: string): ListenerMetrics {
    let h = this.#listeners.get(name);
    if (h === undefined) {
      h = new ListenerHandle(this.#f, name);
      this.#listeners.set(name, h);
    }
    return h;
  }

  /** The handle of one global rate limit (SPEC §12), by its key; series appear on first use. */
  globalLimit(limit: string): GlobalLimitMetrics {
    const f = this.#f;
    let redis: Cell | undefined;
    let fallback: Cell | undefined;
    // Present (at 0) from the first global limit on: alerts and panels see a series before the first error.
    for (const r of ['timeout', 'connection', 'script']) f.globalErrors.child(r);
    const gauge = f.globalFallback.child(limit);
    return {
      error: (reason) => f.globalErrors.child(reason).v++,
      leased: (n) => {
        (redis ??= f.globalTokens.child(limit, 'redis')).v += n;
      },
      fallbackAdmitted: () => {
        (fallback ??= f.globalTokens.child(limit, 'fallback')).v++;
      },
      fallback: (on) => {
        gauge.v = on ? 1 : 0;
      },
    };
  }

  /** trace_spans_dropped_total{reason} += n (SPEC §13; only when tracing is on). */
  spansDropped(reason: 'queue_full' | 'export_failed', n: number): void {
    this.#f.spansDropped.child(reason).v += n;
  }

  reload(result: 'success' | 'failure' | 'unchanged'): void {
    this.#reloads[result].v++;
  }

  /** config_info{hash} = 1 with only the current hash present; the load time as the last reload success. */
  configLoaded(hash: string, atEpochMs: number): void {
    this.#f.configInfo.clear();
    this.#f.configInfo.child(hash).v = 1;
    this.#f.lastReloadSuccess.child().v = atEpochMs / 1000;
  }

  /**
   * After a reload: drop the series of routes, upstreams and listeners the
   * new config no longer has, so label sets do not pile up across reloads.
   * Retired handles keep working for the old runtime's in-flight requests,
   * but write to detached series.
   */
  retain(keep: RetainSet): void {
    const f = this.#f;
    const triples = new Set(keep.routes.map(([l, r, u]) => key(l, r, u)));
    const pairs = new Set(keep.routes.map(([, r, u]) => key(r, u)));
    for (const l of keep.listeners) triples.add(key(l, '', ''));
    if (keep.listeners.length > 0) pairs.add(key('', ''));
    const upstreams = new Set(keep.upstreams);
    const listeners = new Set(keep.listeners);

    const byTriple = (x: Labels): boolean => !triples.has(key(x.listener!, x.route!, x.upstream!));
    f.requests.removeWhere(byTriple);
    f.requestDuration.removeWhere(byTriple);
    f.tunnels.removeWhere(byTriple);
    const byPair = (x: Labels): boolean => !pairs.has(key(x.route!, x.upstream!));
    for (const fam of [f.retries, f.rejected, f.fallbacks, f.tunnelBytes, f.grpcResponses, f.cacheHits, f.cacheEvictions]) fam.removeWhere(byPair);
    const byUpstream = (x: Labels): boolean => !upstreams.has(x.upstream!);
    for (const fam of [f.attempts, f.budgetExhausted, f.circuitState, f.circuitTransitions, f.bulkheadActive, f.bulkheadQueued, f.tunnelsActive, f.tlsReloads]) {
      fam.removeWhere(byUpstream);
    }
    f.attemptDuration.removeWhere(byUpstream);
    f.inflight.removeWhere((x) => !listeners.has(x.listener!));

    retireWhere(this.#routes, (k) => !triples.has(k));
    retireWhere(this.#upstreams, (k) => !upstreams.has(k));
    retireWhere(this.#listeners, (k) => !listeners.has(k));
  }

  /** The SPEC §11.1 families, for dead-letter/metrics.ts (failure path only: no bound handles needed). */
  get deadLetterFamilies(): Pick<Families, 'deadLetters' | 'deadLettersTotal' | 'deadLetterReplays' | 'deadLettersDropped'> {
    return this.#f;
  }

  /** Runs before every scrape: gauges read from live state (bulkhead occupancy) are set here, never pushed. */
  beforeScrape: (() => void) | null = null;

  metricsText(): Promise<string> {
    this.beforeScrape?.();
    return this.registry.metrics();
  }

  /**
   * The same scrape in OpenMetrics 1.0 (the exposition that carries
   * exemplars, SPEC §13), for a scraper whose Accept asks for it while
   * tracing is on. A second Registry, made on first use, formats views of
   * the same metrics: prom-client renames a counter in place (`_total`
   * dropped) when an OpenMetrics registry formats it, so the classic
   * registry's own objects are never handed to it.
   */
  openMetricsText(): Promise<string> {
    this.beforeScrape?.();
    return (this.#openMetrics ??= openMetricsView(this.registry)).metrics();
  }

  #openMetrics: { metrics(): Promise<string> } | null = null;
}
