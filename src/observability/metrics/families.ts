/**
 * The value engine behind the catalogue: a family per metric, a plain cell
 * per series, and the `get()` contract prom-client's Registry reads when it
 * formats a scrape.
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
import { CATALOGUE, DURATION_BUCKETS, PREFIX, type MetricSpec, type MetricType } from './catalogue.ts';

export type Labels = Readonly<Record<string, string>>;

/** One counter or gauge series. The request path only ever touches `v`. */
export class Cell {
  v = 0;
  readonly labels: Labels;
  constructor(labels: Labels) {
    this.labels = labels;
  }
}

/** The last traced observation of a bucket (SPEC §13), shown in OpenMetrics scrapes only. */
export interface Exemplar {
  readonly traceId: string;
  readonly value: number;
  /** Epoch seconds. */
  readonly at: number;
}

/** One histogram series: per-bucket counts (last slot is +Inf), sum and count. */
export class HistogramCell {
  readonly labels: Labels;
  readonly #bounds: readonly number[];
  readonly counts: number[];
  sum = 0;
  count = 0;
  /** Per bucket, the last exemplar; null until tracing records one (never allocated when tracing is off). */
  exemplars: (Exemplar | undefined)[] | null = null;
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

  /** Attach a trace id to the bucket `x` fell in (after `observe(x)`): one object per traced request. */
  exemplar(x: number, traceId: string): void {
    const b = this.#bounds;
    let i = 0;
    while (i < b.length && x > b[i]!) i++;
    (this.exemplars ??= [])[i] = { traceId, value: x, at: Date.now() / 1000 };
  }

  zero(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
    this.exemplars = null;
  }
}

/** What prom-client's Registry reads from a metric when it formats a scrape. */
interface ExportedValue {
  readonly labels: Record<string, string | number>;
  readonly value: number;
  readonly metricName?: string;
  /** Printed by prom-client in OpenMetrics scrapes only. */
  readonly exemplar?: { readonly labelSet: Record<string, string>; readonly value: number; readonly timestamp: number };
}

/**
 * The series of one metric, keyed by their label values. Series are created
 * at build time or on a handle's first use of a label combination, never
 * looked up per request; this map is read by scrapes and `retain()`.
 */
export abstract class Family<C extends { readonly labels: Labels }> {
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

export class ValueFamily extends Family<Cell> {
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

export class HistogramFamily extends Family<HistogramCell> {
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
    const ex = c.exemplars;
    for (let i = 0; i < this.#bounds.length; i++) {
      acc += c.counts[i]!;
      const e = ex?.[i];
      out.push(
        e === undefined
          ? { labels: { ...c.labels, le: this.#bounds[i]! }, value: acc, metricName: bucket }
          : { labels: { ...c.labels, le: this.#bounds[i]! }, value: acc, metricName: bucket, exemplar: exemplarOf(e) },
      );
    }
    const last = ex?.[this.#bounds.length];
    out.push(
      last === undefined
        ? { labels: { ...c.labels, le: '+Inf' }, value: c.count, metricName: bucket }
        : { labels: { ...c.labels, le: '+Inf' }, value: c.count, metricName: bucket, exemplar: exemplarOf(last) },
    );
    out.push({ labels: { ...c.labels }, value: c.sum, metricName: `${this.name}_sum` });
    out.push({ labels: { ...c.labels }, value: c.count, metricName: `${this.name}_count` });
  }
  protected zero(c: HistogramCell): void {
    c.zero();
  }
}

function exemplarOf(e: Exemplar): NonNullable<ExportedValue['exemplar']> {
  return { labelSet: { trace_id: e.traceId }, value: e.value, timestamp: e.at };
}

/** All families of the catalogue, by their SPEC name. */
export class Families {
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
  readonly tunnels: ValueFamily;
  readonly tunnelBytes: ValueFamily;
  readonly tunnelsActive: ValueFamily;
  readonly tlsReloads: ValueFamily;
  readonly grpcResponses: ValueFamily;
  readonly deadLetters: ValueFamily;
  readonly deadLettersTotal: ValueFamily;
  readonly deadLetterReplays: ValueFamily;
  readonly deadLettersDropped: ValueFamily;
  readonly cacheHits: ValueFamily;
  readonly cacheEvictions: ValueFamily;
  readonly globalErrors: ValueFamily;
  readonly globalTokens: ValueFamily;
  readonly globalFallback: ValueFamily;
  readonly spansDropped: ValueFamily;
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
    this.tunnels = value('connect_tunnels_total');
    this.tunnelBytes = value('connect_tunnel_bytes_total');
    this.tunnelsActive = value('connect_tunnels_active');
    this.tlsReloads = value('tls_reloads_total');
    this.grpcResponses = value('grpc_responses_total');
    this.deadLetters = value('dead_letters');
    this.deadLettersTotal = value('dead_letters_total');
    this.deadLetterReplays = value('dead_letter_replays_total');
    this.deadLettersDropped = value('dead_letters_dropped_total');
    this.cacheHits = value('cache_hits_total');
    this.cacheEvictions = value('cache_evictions_total');
    this.globalErrors = value('global_rate_limit_errors_total');
    this.globalTokens = value('global_rate_limit_tokens_total');
    this.globalFallback = value('global_rate_limit_fallback');
    this.spansDropped = value('trace_spans_dropped_total');
    if (all.length !== CATALOGUE.length) throw new Error('every catalogue entry needs a family');
    this.all = all;
  }
}
