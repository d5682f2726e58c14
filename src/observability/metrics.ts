/**
 * The metrics catalogue (SPEC §8): every metric breakwater exports, declared
 * once in `CATALOGUE` with its help text and label names, in its own
 * prom-client Registry (never the global one, so two proxies in one process,
 * as in tests, never share series).
 *
 * Handles are bound when the config loads: `route()`, `upstream()` and
 * `listener()` return objects whose methods touch pre-resolved cells. The
 * request path never builds or hashes a label set; the few children that
 * depend on per-request values (method × status, retry reason, attempt
 * result) are created on first use and cached in arrays indexed by number.
 *
 * NOTE: the series are not prom-client Counter/Histogram children. A
 * prom-client child rebuilds and hashes its label string on every `inc()` or
 * `observe()` (measured on a 2-core box: ~280 ns per counter inc and ~415 ns
 * per histogram observe with five labels, so ~0.7 µs per request for the RED
 * pair alone). Here a series is a plain cell (`v += 1`, or a bucket array),
 * `route().request()` costs a few tens of nanoseconds (see the benchmark in
 * test/unit/observability/metrics.test.ts), and prom-client's Registry still
 * does the exposition: each family implements the `get()` contract its
 * formatter reads, and the default process metrics are prom-client's own.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { Metric as PromMetric } from 'prom-client';

// === the catalogue ===

/** Methods that get their own label value; anything else is "OTHER" (labels are bounded). */
export const METHODS: readonly string[] = Object.freeze(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'CONNECT']);
const METHOD_LABELS: readonly string[] = Object.freeze([...METHODS, 'OTHER']);
const OTHER = METHODS.length;

/**
 * Latency buckets, in seconds, for a sidecar: a loopback hop is well under a
 * millisecond, a slow third-party API with retries takes tens of seconds
 * (the built-in `timeout.total` is 15s).
 */
export const DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
]);

export const PREFIX = 'breakwater_';

/** prom-client defaults that fail `promtool check metrics`; see the constructor. */
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricSpec {
  /** Without the prefix, as SPEC §8 writes it. */
  readonly name: string;
  readonly type: MetricType;
  readonly labels: readonly string[];
  readonly help: string;
}

const spec = (name: string, type: MetricType, labels: readonly string[], help: string): MetricSpec =>
  Object.freeze({ name, type, labels: Object.freeze([...labels]), help });

/** SPEC §8, in its order. Names are exported with `PREFIX`. */
export const CATALOGUE: readonly MetricSpec[] = Object.freeze([
  spec('requests_total', 'counter', ['listener', 'route', 'upstream', 'method', 'code'], 'Requests answered to clients, by the status sent.'),
  spec('request_duration_seconds', 'histogram', ['listener', 'route', 'upstream', 'method', 'code_class'], 'From request arrival to the end of the response, as the client saw it.'),
  spec('upstream_attempts_total', 'counter', ['upstream', 'result'], 'Attempts sent upstream, by classified outcome.'),
  spec('upstream_attempt_duration_seconds', 'histogram', ['upstream'], 'From the start of one attempt to its response headers or failure.'),
  spec('retries_total', 'counter', ['route', 'upstream', 'reason'], 'Retries made, by the outcome that was retried (timeout, connect_failure, reset or the status code).'),
  spec('retry_budget_exhausted_total', 'counter', ['upstream'], 'Retries not made because the retry budget was spent.'),
  spec('rejected_total', 'counter', ['route', 'upstream', 'reason'], 'Requests breakwater refused itself (rate_limited, bulkhead_full, circuit_open, no_route).'),
  spec('circuit_state', 'gauge', ['upstream', 'state'], 'Circuit breaker state: 1 on the current state, 0 on the others.'),
  spec('circuit_transitions_total', 'counter', ['upstream', 'from', 'to'], 'Circuit breaker state changes.'),
  spec('bulkhead_active', 'gauge', ['upstream'], 'Requests holding a bulkhead slot.'),
  spec('bulkhead_queued', 'gauge', ['upstream'], 'Requests waiting for a bulkhead slot.'),
  spec('fallbacks_total', 'counter', ['route', 'upstream', 'kind'], 'Fallbacks served, by kind (upstream or response).'),
  spec('inflight_requests', 'gauge', ['listener'], 'Requests in progress on a listener.'),
  spec('config_reloads_total', 'counter', ['result'], 'Config reloads, by result (success, failure, unchanged).'),
  spec('config_last_reload_success_timestamp_seconds', 'gauge', [], 'Unix time the running config was loaded.'),
  spec('config_info', 'gauge', ['hash'], 'The running config: 1, labelled with its content hash.'),
]);

// === the public handles ===

export type RejectReason = 'rate_limited' | 'bulkhead_full' | 'circuit_open' | 'no_route';
export type AttemptResult = 'success' | '5xx' | '4xx' | 'timeout' | 'connect_failure' | 'reset';
export type CircuitStateName = 'closed' | 'open' | 'half-open';

export interface RouteMetrics {
  /**
   * requests_total{listener,route,upstream,method,code} +1 and
   * request_duration_seconds{...,code_class} observe. The method is
   * normalised (METHODS, else OTHER); code is the status as a string;
   * code_class "1xx".."5xx". Children for (method, status) are created once
   * and cached in arrays indexed by method index and status.
   */
  request(method: string, status: number, seconds: number): void;
  /** retries_total{route,upstream,reason}; reason is timeout|connect_failure|reset|<status code>. */
  retry(reason: string): void;
  rejected(reason: RejectReason): void;
  fallback(kind: 'upstream' | 'response'): void;
}

export interface UpstreamMetrics {
  /** upstream_attempts_total{result} +1 and upstream_attempt_duration_seconds observe. */
  attempt(result: AttemptResult, seconds: number): void;
  budgetExhausted(): void;
  /** 1 on the current state, 0 on the others. */
  circuitState(state: CircuitStateName): void;
  circuitTransition(from: string, to: string): void;
  bulkhead(active: number, queued: number): void;
}

export interface ListenerMetrics {
  inflightInc(): void;
  inflightDec(): void;
}

export interface RetainSet {
  readonly routes: ReadonlyArray<readonly [listener: string, route: string, upstream: string]>;
  readonly upstreams: readonly string[];
  readonly listeners: readonly string[];
}

// === series and families ===

type Labels = Readonly<Record<string, string>>;

/** One counter or gauge series. The request path only ever touches `v`. */
class Cell {
  v = 0;
  readonly labels: Labels;
  constructor(labels: Labels) {
    this.labels = labels;
  }
}

/** One histogram series: per-bucket counts (last slot is +Inf), sum and count. */
class HistogramCell {
  readonly labels: Labels;
  readonly #bounds: readonly number[];
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(labels: Labels, bounds: readonly number[]) {
    this.labels = labels;
    this.#bounds = bounds;
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(x: number): void {
    const b = this.#bounds;
    // Linear scan: 15 bounds, and most observations land in the first few.
    let i = 0;
    while (i < b.length && x > b[i]!) i++;
    this.counts[i] = this.counts[i]! + 1;
    this.sum += x;
    this.count++;
  }

  zero(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

/** What prom-client's Registry reads from a metric when it formats a scrape. */
interface ExportedValue {
  readonly labels: Record<string, string | number>;
  readonly value: number;
  readonly metricName?: string;
}

/**
 * The series of one metric, keyed by their label values. Series are created
 * at build time or on a handle's first use of a label combination, never
 * looked up per request; this map is read by scrapes and `retain()`.
 */
abstract class Family<C extends { readonly labels: Labels }> {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly labelNames: readonly string[];
  readonly aggregator = 'sum';
  protected readonly series = new Map<string, C>();

  constructor(s: MetricSpec) {
    this.name = PREFIX + s.name;
    this.help = s.help;
    this.type = s.type;
    this.labelNames = s.labels;
  }

  protected abstract make(labels: Labels): C;
  protected abstract export(c: C, out: ExportedValue[]): void;
  protected abstract zero(c: C): void;

  /** The series for these label values (in `labelNames` order), created if new. */
  child(...values: string[]): C {
    const key = values.join('\u0000');
    let c = this.series.get(key);
    if (c === undefined) {
      c = this.make(this.#labels(values));
      this.series.set(key, c);
    }
    return c;
  }

  /** A series that is never exported: what a retired handle writes to. */
  detached(...values: string[]): C {
    return this.make(this.#labels(values));
  }

  removeWhere(drop: (labels: Labels) => boolean): void {
    for (const [key, c] of this.series) if (drop(c.labels)) this.series.delete(key);
  }

  clear(): void {
    this.series.clear();
  }

  /** prom-client's `resetMetrics()`: zero in place, so bound handles stay valid. */
  reset(): void {
    for (const c of this.series.values()) this.zero(c);
  }

  /** prom-client's metric contract: the Registry formats what this returns. */
  async get(): Promise<{ name: string; help: string; type: MetricType; aggregator: string; values: ExportedValue[] }> {
    const values: ExportedValue[] = [];
    for (const c of this.series.values()) this.export(c, values);
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  #labels(values: readonly string[]): Labels {
    if (values.length !== this.labelNames.length) {
      throw new Error(`${this.name}: ${values.length} label values for labels [${this.labelNames.join(', ')}]`);
    }
    const labels: Record<string, string> = {};
    for (let i = 0; i < values.length; i++) labels[this.labelNames[i]!] = values[i]!;
    return Object.freeze(labels);
  }
}

class ValueFamily extends Family<Cell> {
  protected make(labels: Labels): Cell {
    return new Cell(labels);
  }
  protected export(c: Cell, out: ExportedValue[]): void {
    out.push({ labels: { ...c.labels }, value: c.v });
  }
  protected zero(c: Cell): void {
    c.v = 0;
  }
}

class HistogramFamily extends Family<HistogramCell> {
  readonly #bounds: readonly number[];
  constructor(s: MetricSpec, bounds: readonly number[]) {
    super(s);
    if (s.labels.includes('le')) throw new Error(`${this.name}: "le" is reserved for histogram buckets`);
    this.#bounds = bounds;
  }
  protected make(labels: Labels): HistogramCell {
    return new HistogramCell(labels, this.#bounds);
  }
  protected export(c: HistogramCell, out: ExportedValue[]): void {
    // Cumulative buckets, then +Inf, _sum and _count: what Prometheus expects.
    const bucket = `${this.name}_bucket`;
    let acc = 0;
    for (let i = 0; i < this.#bounds.length; i++) {
      acc += c.counts[i]!;
      out.push({ labels: { ...c.labels, le: this.#bounds[i]! }, value: acc, metricName: bucket });
    }
    out.push({ labels: { ...c.labels, le: '+Inf' }, value: c.count, metricName: bucket });
    out.push({ labels: { ...c.labels }, value: c.sum, metricName: `${this.name}_sum` });
    out.push({ labels: { ...c.labels }, value: c.count, metricName: `${this.name}_count` });
  }
  protected zero(c: HistogramCell): void {
    c.zero();
  }
}

/** All families of the catalogue, by their SPEC name. */
class Families {
  readonly requests: ValueFamily;
  readonly requestDuration: HistogramFamily;
  readonly attempts: ValueFamily;
  readonly attemptDuration: HistogramFamily;
  readonly retries: ValueFamily;
  readonly budgetExhausted: ValueFamily;
  readonly rejected: ValueFamily;
  readonly circuitState: ValueFamily;
  readonly circuitTransitions: ValueFamily;
  readonly bulkheadActive: ValueFamily;
  readonly bulkheadQueued: ValueFamily;
  readonly fallbacks: ValueFamily;
  readonly inflight: ValueFamily;
  readonly reloads: ValueFamily;
  readonly lastReloadSuccess: ValueFamily;
  readonly configInfo: ValueFamily;
  readonly all: readonly Family<Cell | HistogramCell>[];

  constructor() {
    const byName = new Map(CATALOGUE.map((s) => [s.name, s]));
    const all: Family<Cell | HistogramCell>[] = [];
    const get = (name: string): MetricSpec => {
      const s = byName.get(name);
      if (s === undefined) throw new Error(`metric ${name} is not in the catalogue`);
      return s;
    };
    const value = (name: string): ValueFamily => {
      const f = new ValueFamily(get(name));
      all.push(f);
      return f;
    };
    const histogram = (name: string): HistogramFamily => {
      const f = new HistogramFamily(get(name), DURATION_BUCKETS);
      all.push(f as Family<Cell | HistogramCell>);
      return f;
    };
    this.requests = value('requests_total');
    this.requestDuration = histogram('request_duration_seconds');
    this.attempts = value('upstream_attempts_total');
    this.attemptDuration = histogram('upstream_attempt_duration_seconds');
    this.retries = value('retries_total');
    this.budgetExhausted = value('retry_budget_exhausted_total');
    this.rejected = value('rejected_total');
    this.circuitState = value('circuit_state');
    this.circuitTransitions = value('circuit_transitions_total');
    this.bulkheadActive = value('bulkhead_active');
    this.bulkheadQueued = value('bulkhead_queued');
    this.fallbacks = value('fallbacks_total');
    this.inflight = value('inflight_requests');
    this.reloads = value('config_reloads_total');
    this.lastReloadSuccess = value('config_last_reload_success_timestamp_seconds');
    this.configInfo = value('config_info');
    if (all.length !== CATALOGUE.length) throw new Error('every catalogue entry needs a family');
    this.all = all;
  }
}

// === index helpers (switches, not maps: the request path stays free of string-keyed lookups) ===

function methodIndex(method: string): number {
  switch (method) {
    case 'GET': return 0;
    case 'HEAD': return 1;
    case 'POST': return 2;
    case 'PUT': return 3;
    case 'DELETE': return 4;
    case 'OPTIONS': return 5;
    case 'PATCH': return 6;
    case 'TRACE': return 7;
    case 'CONNECT': return 8;
    default: return OTHER;
  }
}

const REJECT_REASONS: readonly RejectReason[] = ['rate_limited', 'bulkhead_full', 'circuit_open', 'no_route'];
function rejectIndex(r: RejectReason): number {
  switch (r) {
    case 'rate_limited': return 0;
    case 'bulkhead_full': return 1;
    case 'circuit_open': return 2;
    default: return 3;
  }
}

const RESULTS: readonly AttemptResult[] = ['success', '5xx', '4xx', 'timeout', 'connect_failure', 'reset'];
function resultIndex(r: AttemptResult): number {
  switch (r) {
    case 'success': return 0;
    case '5xx': return 1;
    case '4xx': return 2;
    case 'timeout': return 3;
    case 'connect_failure': return 4;
    default: return 5;
  }
}

const STATES: readonly CircuitStateName[] = ['closed', 'open', 'half-open'];
function stateIndex(s: string): number {
  switch (s) {
    case 'closed': return 0;
    case 'open': return 1;
    case 'half-open': return 2;
    default: return -1;
  }
}

/** A three-digit status code written as a string ("503") to its number, else -1. */
function statusReason(reason: string): number {
  if (reason.length !== 3) return -1;
  const a = reason.charCodeAt(0) - 48;
  const b = reason.charCodeAt(1) - 48;
  const c = reason.charCodeAt(2) - 48;
  if (a < 1 || a > 9 || b < 0 || b > 9 || c < 0 || c > 9) return -1;
  return a * 100 + b * 10 + c;
}

/** Out-of-range statuses share one label value instead of minting new ones. */
function normaliseStatus(status: number): number {
  return status >= 100 && status <= 999 ? status | 0 : 0;
}

// === bound handles ===

/**
 * Handles are retired by `retain()` when their label set leaves the config.
 * A pipeline of the old runtime may still be finishing requests; from then on
 * its handle creates detached series, so a removed route cannot re-mint
 * series that were just dropped.
 */
abstract class Handle {
  protected live = true;
  retire(): void {
    this.live = false;
  }
  protected cell(f: ValueFamily, ...values: string[]): Cell {
    return this.live ? f.child(...values) : f.detached(...values);
  }
  protected histogram(f: HistogramFamily, ...values: string[]): HistogramCell {
    return this.live ? f.child(...values) : f.detached(...values);
  }
}

class RouteHandle extends Handle implements RouteMetrics {
  readonly #f: Families;
  readonly #listener: string;
  readonly #route: string;
  readonly #upstream: string;
  /** [method index][status] → requests_total series. */
  readonly #requests: (Cell | undefined)[][] = METHOD_LABELS.map(() => []);
  /** [method index × 10 + status class] → request_duration_seconds series. */
  readonly #durations: (HistogramCell | undefined)[] = [];
  /** [status] → retries_total series for a status-code reason; named reasons below. */
  readonly #retryStatus: (Cell | undefined)[] = [];
  #retryTimeout: Cell | undefined;
  #retryConnect: Cell | undefined;
  #retryReset: Cell | undefined;
  /** Anything else a caller passes as a reason; not expected, kept bounded by the caller's vocabulary. */
  readonly #retryOther = new Map<string, Cell>();
  readonly #rejected: (Cell | undefined)[] = [];
  #fallbackUpstream: Cell | undefined;
  #fallbackResponse: Cell | undefined;

  constructor(f: Families, listener: string, route: string, upstream: string) {
    super();
    this.#f = f;
    this.#listener = listener;
    this.#route = route;
    this.#upstream = upstream;
  }

  request(method: string, status: number, seconds: number): void {
    const m = methodIndex(method);
    const s = normaliseStatus(status);
    const byStatus = this.#requests[m]!;
    let c = byStatus[s];
    if (c === undefined) {
      c = this.cell(this.#f.requests, this.#listener, this.#route, this.#upstream, METHOD_LABELS[m]!, String(s));
      byStatus[s] = c;
    }
    c.v++;
    const cls = (s / 100) | 0;
    const k = m * 10 + cls;
    let h = this.#durations[k];
    if (h === undefined) {
      h = this.histogram(this.#f.requestDuration, this.#listener, this.#route, this.#upstream, METHOD_LABELS[m]!, `${cls}xx`);
      this.#durations[k] = h;
    }
    h.observe(seconds);
  }

  retry(reason: string): void {
    let c: Cell | undefined;
    switch (reason) {
      case 'timeout':
        c = this.#retryTimeout ??= this.#retryCell(reason);
        break;
      case 'connect_failure':
        c = this.#retryConnect ??= this.#retryCell(reason);
        break;
      case 'reset':
        c = this.#retryReset ??= this.#retryCell(reason);
        break;
      default: {
        const s = statusReason(reason);
        if (s >= 0) {
          c = this.#retryStatus[s] ??= this.#retryCell(reason);
        } else {
          c = this.#retryOther.get(reason);
          if (c === undefined) this.#retryOther.set(reason, (c = this.#retryCell(reason)));
        }
      }
    }
    c.v++;
  }

  #retryCell(reason: string): Cell {
    return this.cell(this.#f.retries, this.#route, this.#upstream, reason);
  }

  rejected(reason: RejectReason): void {
    const i = rejectIndex(reason);
    (this.#rejected[i] ??= this.cell(this.#f.rejected, this.#route, this.#upstream, REJECT_REASONS[i]!)).v++;
  }

  fallback(kind: 'upstream' | 'response'): void {
    if (kind === 'upstream') (this.#fallbackUpstream ??= this.cell(this.#f.fallbacks, this.#route, this.#upstream, 'upstream')).v++;
    else (this.#fallbackResponse ??= this.cell(this.#f.fallbacks, this.#route, this.#upstream, 'response')).v++;
  }
}

class UpstreamHandle extends Handle implements UpstreamMetrics {
  readonly #f: Families;
  readonly #name: string;
  readonly #attempts: (Cell | undefined)[] = [];
  #duration: HistogramCell | undefined;
  #budget: Cell | undefined;
  #states: Cell[] | undefined;
  /** [from × 3 + to] for the three known states. */
  readonly #transitions: (Cell | undefined)[] = [];
  #active: Cell | undefined;
  #queued: Cell | undefined;

  constructor(f: Families, name: string) {
    super();
    this.#f = f;
    this.#name = name;
  }

  attempt(result: AttemptResult, seconds: number): void {
    const i = resultIndex(result);
    (this.#attempts[i] ??= this.cell(this.#f.attempts, this.#name, RESULTS[i]!)).v++;
    (this.#duration ??= this.histogram(this.#f.attemptDuration, this.#name)).observe(seconds);
  }

  budgetExhausted(): void {
    (this.#budget ??= this.cell(this.#f.budgetExhausted, this.#name)).v++;
  }

  circuitState(state: CircuitStateName): void {
    const cells = (this.#states ??= STATES.map((s) => this.cell(this.#f.circuitState, this.#name, s)));
    const current = stateIndex(state);
    for (let i = 0; i < cells.length; i++) cells[i]!.v = i === current ? 1 : 0;
  }

  circuitTransition(from: string, to: string): void {
    const a = stateIndex(from);
    const b = stateIndex(to);
    if (a < 0 || b < 0) {
      // Not a state this module knows: still counted, through the family's own dedup.
      this.cell(this.#f.circuitTransitions, this.#name, from, to).v++;
      return;
    }
    (this.#transitions[a * 3 + b] ??= this.cell(this.#f.circuitTransitions, this.#name, from, to)).v++;
  }

  bulkhead(active: number, queued: number): void {
    (this.#active ??= this.cell(this.#f.bulkheadActive, this.#name)).v = active;
    (this.#queued ??= this.cell(this.#f.bulkheadQueued, this.#name)).v = queued;
  }
}

class ListenerHandle extends Handle implements ListenerMetrics {
  readonly #inflight: Cell;
  constructor(f: Families, name: string) {
    super();
    // Created at build time so every listener shows 0 before its first request.
    this.#inflight = this.cell(f.inflight, name);
  }
  inflightInc(): void {
    this.#inflight.v++;
  }
  inflightDec(): void {
    this.#inflight.v--;
  }
}

// === the registry ===

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
    const byPair = (x: Labels): boolean => !pairs.has(key(x.route!, x.upstream!));
    for (const fam of [f.retries, f.rejected, f.fallbacks]) fam.removeWhere(byPair);
    const byUpstream = (x: Labels): boolean => !upstreams.has(x.upstream!);
    for (const fam of [f.attempts, f.budgetExhausted, f.circuitState, f.circuitTransitions, f.bulkheadActive, f.bulkheadQueued]) {
      fam.removeWhere(byUpstream);
    }
    f.attemptDuration.removeWhere(byUpstream);
    f.inflight.removeWhere((x) => !listeners.has(x.listener!));

    retireWhere(this.#routes, (k) => !triples.has(k));
    retireWhere(this.#upstreams, (k) => !upstreams.has(k));
    retireWhere(this.#listeners, (k) => !listeners.has(k));
  }

  /** Runs before every scrape: gauges read from live state (bulkhead occupancy) are set here, never pushed. */
  beforeScrape: (() => void) | null = null;

  metricsText(): Promise<string> {
    this.beforeScrape?.();
    return this.registry.metrics();
  }
}
