/**
 * OpenTelemetry traces (SPEC §13): one server span per request, one client
 * span per upstream attempt, policy decisions as span events, W3C
 * `traceparent` continued (or started) and sent upstream, parent-based ratio
 * sampling, OTLP/HTTP export through a bounded queue that drops and counts.
 *
 * Off unless the config has a `tracing` block, and then truly absent: the
 * route stack has no tracing step, the attempt handler no wrapper, and not
 * one OpenTelemetry module is loaded — they are `require`d (their CommonJS
 * builds) the first time an exporter starts, never at import. This module's
 * own top level only declares.
 *
 * Lifecycle (runtime/plan.ts's rule: a build has no side effects): a build
 * asks the TracingHost for a `Tracing` for the config's block; that costs
 * nothing and opens nothing. The host starts the exporter when the plan is
 * committed — or keeps the running one when the block is unchanged — and
 * flushes (bounded) and shuts it down when tracing is turned off, the block
 * changes, or breakwater stops. Nothing on the request path ever waits for
 * the collector.
 */
import { createRequire } from 'node:module';
import type { Context, Span, SpanContext, Tracer } from '@opentelemetry/api';
import type { ReadableSpan, SpanExporter, SpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import type { ExportResult } from '@opentelemetry/core';
import type { TracingConfig } from '../../config/types.ts';
import type { Exchange, ExchangeTrace } from '../../pipeline/exchange.ts';
import type { Layer } from '../../pipeline/handler.ts';
import type { UpstreamResponse } from '../../pipeline/upstream-response.ts';
import { retryReason } from '../../policies/retry/decide.ts';
import type { AttemptHandler } from '../../upstream/attempt.ts';

/** What the host reports: spans dropped (metric) and a rate-limited log line. */
export interface TracingSink {
  dropped(reason: 'queue_full' | 'export_failed', n: number): void;
  warn(fields: Record<string, unknown>, msg: string): void;
}

/** How long a shutdown waits for the last export. */
export const FLUSH_TIMEOUT_MS = 2_000;
/** How long one export may take (the exporter's own retries included). */
const EXPORT_TIMEOUT_MS = 5_000;
/** Finished spans are exported every this often (or when a batch fills). */
const EXPORT_DELAY_MS = 1_000;
const BATCH = 512;
/** At most one "spans dropped" warning per this interval. */
const WARN_EVERY_MS = 30_000;

// --- the engine: OpenTelemetry SDK objects, made only when tracing starts ------

type Otel = {
  api: typeof import('@opentelemetry/api');
  sdk: typeof import('@opentelemetry/sdk-trace');
  core: typeof import('@opentelemetry/core');
  resources: typeof import('@opentelemetry/resources');
  exporter: typeof import('@opentelemetry/exporter-trace-otlp-proto');
};

let otel: Otel | null = null;

/** The OpenTelemetry packages, loaded on first use (never when tracing is off). */
function loadOtel(): Otel {
  if (otel !== null) return otel;
  const require = createRequire(import.meta.url);
  otel = {
    api: require('@opentelemetry/api'),
    sdk: require('@opentelemetry/sdk-trace'),
    core: require('@opentelemetry/core'),
    resources: require('@opentelemetry/resources'),
    exporter: require('@opentelemetry/exporter-trace-otlp-proto'),
  };
  return otel;
}

/**
 * The bounded queue, counted. The SDK's BatchSpanProcessor already drops
 * when its queue is full, but says so only to its diagnostics logger; this
 * processor sits in front of it and keeps the queue's length itself —
 * +1 for each sampled span handed on, −n when the batch processor hands n
 * spans to the exporter — so it refuses (and counts) a span before the
 * batch processor would have to. The SDK's own limit is set to the same
 * number and is never reached. Memory is bounded by `queueSize` spans plus
 * the one batch being exported (the batch processor exports one at a time).
 */
class CountingQueue implements SpanProcessor {
  pending = 0;
  readonly #inner: SpanProcessor;
  readonly #limit: number;
  readonly #sink: TracingSink;

  constructor(inner: SpanProcessor, limit: number, sink: TracingSink) {
    this.#inner = inner;
    this.#limit = limit;
    this.#sink = sink;
  }

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & 1) === 0) return;
    if (this.pending >= this.#limit) {
      this.#sink.dropped('queue_full', 1);
      return;
    }
    this.pending++;
    this.#inner.onEnd(span);
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }
}

/** The OTLP exporter, counting what leaves the queue and what the collector did not take. */
class CountingExporter implements SpanExporter {
  readonly #inner: SpanExporter;
  readonly #sink: TracingSink;
  queue: CountingQueue | null = null;

  constructor(inner: SpanExporter, sink: TracingSink) {
    this.#inner = inner;
    this.#sink = sink;
  }

  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    if (this.queue !== null) this.queue.pending -= spans.length;
    this.#inner.export(spans, (r) => {
      if (r.code !== 0) this.#sink.dropped('export_failed', spans.length);
      done(r);
    });
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush?.() ?? Promise.resolve();
  }
}

/** A running exporter and tracer for one `tracing` block. */
export class TraceEngine {
  readonly key: string;
  readonly tracer: Tracer;
  readonly api: Otel['api'];
  readonly #provider: TracerProvider;
  readonly #queue: CountingQueue;
  readonly #propagator: InstanceType<Otel['core']['W3CTraceContextPropagator']>;
  readonly #agents: { destroy(): void }[] = [];

  constructor(cfg: TracingConfig, version: string, sink: TracingSink, env: Record<string, string | undefined>) {
    const o = loadOtel();
    this.key = engineKey(cfg);
    this.api = o.api;
    // The exporter's keep-alive agent is breakwater's, so shutdown can close
    // its socket: the SDK's transport never destroys the agent it makes, and
    // every engine a reload replaced kept a connection to the collector.
    const agents = this.#agents;
    const agentFactory = (protocol: string) => {
      const mod = process.getBuiltinModule(protocol === 'https:' ? 'node:https' : 'node:http') as typeof import('node:http');
      const a = new mod.Agent({ keepAlive: true });
      agents.push(a);
      return a;
    };
    const exporter = new CountingExporter(new o.exporter.OTLPTraceExporter({ url: cfg.endpoint, timeoutMillis: EXPORT_TIMEOUT_MS, httpAgentOptions: agentFactory }), sink);
    const batch = new o.sdk.BatchSpanProcessor({
      exporter,
      maxQueueSize: cfg.queueSize,
      maxExportBatchSize: Math.min(BATCH, cfg.queueSize),
      scheduledDelayMillis: EXPORT_DELAY_MS,
      exportTimeoutMillis: EXPORT_TIMEOUT_MS,
    });
    this.#queue = new CountingQueue(batch, cfg.queueSize, sink);
    exporter.queue = this.#queue;
    // service.name: the config's, else $OTEL_SERVICE_NAME, else "breakwater";
    // OTEL_RESOURCE_ATTRIBUTES (k8s.pod.name... from the downward API) as the env detector reads them.
    const r = o.resources;
    const fromEnv = r.detectResources({ detectors: [r.envDetector] });
    const resource = r
      .resourceFromAttributes({ 'service.name': 'breakwater' })
      .merge(fromEnv)
      .merge(r.resourceFromAttributes({ 'service.name': cfg.serviceName ?? nonEmpty(env['OTEL_SERVICE_NAME']) ?? 'breakwater', 'service.version': version }));
    this.#provider = new o.sdk.TracerProvider({
      resource,
      sampler: new o.sdk.ParentBasedSampler({ root: new o.sdk.TraceIdRatioBasedSampler(cfg.sampleRatio) }),
      spanProcessors: [this.#queue],
    });
    this.tracer = this.#provider.getTracer('breakwater', version);
    this.#propagator = new o.core.W3CTraceContextPropagator();
  }

  /** Spans waiting for export (the bounded queue's length). */
  get pending(): number {
    return this.#queue.pending;
  }

  /** The parent context of an incoming request: its valid `traceparent` (and `tracestate`), else none. */
  extract(headers: Exchange['req']['headers']): Context {
    const api = this.api;
    if (headers.traceparent === undefined) return api.ROOT_CONTEXT;
    return this.#propagator.extract(api.ROOT_CONTEXT, headers, api.defaultTextMapGetter);
  }

  /** Export what is queued, waiting at most `ms`. */
  flush(ms = FLUSH_TIMEOUT_MS): Promise<void> {
    return bounded(this.#provider.forceFlush(), ms);
  }

  /** Flush (bounded) and stop: later spans are dropped by the SDK, uncounted (they would have nowhere to go). */
  shutdown(ms = FLUSH_TIMEOUT_MS): Promise<void> {
    return bounded(this.#provider.shutdown(), ms).then(() => {
      for (const a of this.#agents) a.destroy();
      this.#agents.length = 0;
    });
  }
}

function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    t = setTimeout(resolve, ms);
    t.unref();
  });
  return Promise.race([p.then(() => {}, () => {}), timeout]).finally(() => clearTimeout(t));
}

function nonEmpty(s: string | undefined): string | null {
  return s === undefined || s.trim() === '' ? null : s.trim();
}

function engineKey(cfg: TracingConfig): string {
  return JSON.stringify([cfg.endpoint, cfg.sampleRatio, cfg.serviceName, cfg.queueSize]);
}

// --- the host: one per process, outlives reloads ---------------------------------

/**
 * Owns the running engine across reloads. `plan()` is what a build calls:
 * side-effect free. `commit()` starts, keeps or replaces the engine.
 */
export class TracingHost {
  readonly #sink: TracingSink;
  readonly #version: string;
  readonly #env: Record<string, string | undefined>;
  #engine: TraceEngine | null = null;

  constructor(sink: TracingSink, version: string, env: Record<string, string | undefined> = process.env) {
    this.#sink = sink;
    this.#version = version;
    this.#env = env;
  }

  get engine(): TraceEngine | null {
    return this.#engine;
  }

  /** The per-load tracing for a config's block; null when the block is absent. No side effects. */
  plan(cfg: TracingConfig | null): Tracing | null {
    return cfg === null ? null : new Tracing(cfg);
  }

  /** Bind a committed load's tracing to an engine: the running one when its block is unchanged, else a new one. */
  commit(t: Tracing | null): void {
    const old = this.#engine;
    if (t === null) {
      this.#engine = null;
      if (old !== null) void old.shutdown();
      return;
    }
    if (old !== null && old.key === engineKey(t.config)) {
      t.engine = old;
      return;
    }
    const e = new TraceEngine(t.config, this.#version, this.#sink, this.#env);
    t.engine = e;
    this.#engine = e;
    if (old !== null) void old.shutdown();
  }

  /** breakwater stops: the last spans are exported, within FLUSH_TIMEOUT_MS. */
  async shutdown(): Promise<void> {
    const e = this.#engine;
    this.#engine = null;
    if (e !== null) await e.shutdown();
  }
}

/**
 * A rate-limited warner for the drop counts: the first drop after a quiet
 * period is logged at once, later ones are summed into the next line.
 */
export function dropReporter(count: (reason: 'queue_full' | 'export_failed', n: number) => void, warn: (fields: Record<string, unknown>, msg: string) => void): TracingSink['dropped'] {
  let last = -Infinity;
  let since = 0;
  return (reason, n) => {
    count(reason, n);
    since += n;
    const now = performance.now();
    if (now - last < WARN_EVERY_MS) return;
    last = now;
    warn({ reason, dropped: since }, 'trace_spans_dropped');
    since = 0;
  };
}

// --- the request path ----------------------------------------------------------------

const SERVER = 1; // SpanKind.SERVER
const CLIENT = 2; // SpanKind.CLIENT
const ERROR = 2; // SpanStatusCode.ERROR

/**
 * One load's tracing: the steps the route stack and the attempt handler are
 * built with. `engine` is bound at commit, before any request can use it.
 */
export class Tracing {
  readonly config: TracingConfig;
  engine: TraceEngine | null = null;

  constructor(config: TracingConfig) {
    this.config = config;
  }

  /**
   * The server span, started at the request's arrival (its parent: the
   * client's `traceparent`, if valid). Sits right inside the observe step,
   * which has named the route.
   */
  serverStep(): Layer {
    return (next) => (ex) => {
      // The engine is bound at commit; a listener a reload adds serves
      // before that (while the next one binds): such a request is not traced.
      const e = this.engine;
      if (e === null) return next(ex);
      const parent = e.extract(ex.req.headers);
      const route = ex.route ?? '';
      // Attributes only for a span that records: the SDK copies and checks
      // what startSpan is given even when the sampler then drops the span.
      const span = e.tracer.startSpan(`${ex.method} ${route}`, { kind: SERVER, startTime: wall(ex.start) }, parent);
      if (span.isRecording()) {
        span.setAttributes({
          'http.request.method': ex.method,
          'url.path': pathOf(ex.target),
          'breakwater.route': route,
          'breakwater.upstream': ex.upstream ?? '',
          'breakwater.listener': ex.listener,
          'breakwater.request_id': ex.requestId,
        });
      }
      ex.trace = new ServerTrace(e, span);
      return next(ex);
    };
  }

  /**
   * Around one upstream's attempt handler: a client span per attempt, made
   * before the request leaves so that its span id is the `traceparent`
   * the upstream sees. A request that is not sampled makes no client span:
   * the upstream gets the server span's (non-sampled) context.
   *
   * A client span ends when its attempt is over: at the failure for an
   * attempt without a response; for one with a response, at its head if a
   * retry or a static fallback dropped it, else (the response the client got)
   * when the exchange ends, its body streamed.
   */
  attemptLayer(upstream: string): (next: AttemptHandler) => AttemptHandler {
    return (next) => async (ex) => {
      const t = ex.trace as ServerTrace | null;
      if (t === null) return next(ex);
      if (!t.recording) {
        setTraceparent(ex, t.traceparent);
        return next(ex);
      }
      // A response dropped for this retry (or a fallback upstream's attempt) ended at its head.
      t.closeOpen();
      const n = ex.attempts;
      // The previous attempt, if it was this upstream's: a retry (a fallback upstream's first attempt is not).
      const prev = t.lastUpstream === upstream ? t.lastAttempt : null;
      if (prev !== null) {
        t.span.addEvent('retry', { 'breakwater.attempt': n, 'breakwater.retry_reason': retryReason(prev.kind, prev.status, prev.grpcStatus) }, wall(performance.now()));
      }
      const span = t.engine.tracer.startSpan(
        ex.method,
        { kind: CLIENT, startTime: wall(performance.now()), attributes: { 'http.request.method': ex.method, 'breakwater.upstream': upstream, 'breakwater.attempt': n } },
        t.context,
      );
      setTraceparent(ex, traceparentOf(span.spanContext()));
      let r: UpstreamResponse;
      try {
        r = await next(ex);
      } catch (err) {
        // Attempts answer with values, never throw; if one does, its span still ends.
        span.setStatus({ code: ERROR, message: 'internal_error' });
        span.end(wall(t.clamp(performance.now())));
        throw err;
      }
      t.lastAttempt = r;
      t.lastUpstream = upstream;
      const endpoint = (r as { endpoint?: { endpoint?: { authority?: string } } }).endpoint?.endpoint?.authority;
      if (endpoint !== undefined) span.setAttribute('server.address', endpoint);
      span.setAttribute('breakwater.outcome', r.kind);
      if (r.status !== 0) span.setAttribute('http.response.status_code', r.status);
      if (r.kind !== 'success') span.setStatus({ code: ERROR, message: r.kind });
      if (prev !== null) span.setAttribute('breakwater.retry_reason', retryReason(prev.kind, prev.status, prev.grpcStatus));
      // No response, or the exchange already over (the client left before the head): it ends now, never after its parent.
      if (r.status === 0 || t.endedAt !== 0) span.end(wall(t.clamp(performance.now())));
      else {
        t.open = span;
        t.openHead = performance.now();
      }
      return r;
    };
  }
}

/** The path without the query (queries may carry secrets; SPEC §5 logs them only on request). */
function pathOf(target: string): string {
  const q = target.indexOf('?');
  return q < 0 ? target : target.slice(0, q);
}

/**
 * Every span time breakwater passes, as epoch milliseconds with sub-ms
 * precision from the one monotonic clock: the SDK would otherwise anchor
 * each span to Date.now() on its own, and a child could end after its parent.
 */
function wall(perf: number): number {
  return performance.timeOrigin + perf;
}

function hex2(n: number): string {
  return n < 16 ? `0${n.toString(16)}` : n.toString(16);
}

function traceparentOf(c: SpanContext): string {
  return `00-${c.traceId}-${c.spanId}-${hex2(c.traceFlags & 0xff)}`;
}

/**
 * Replace (or add, before the host pair) the `traceparent` the upstream gets:
 * exactly one. A client that sent several (node joins them; the propagator
 * refuses the joined value) has every one of its own removed.
 */
function setTraceparent(ex: Exchange, value: string): void {
  let h = ex.upstreamHeaders;
  let found = -1;
  for (let i = 0; i < h.length; i += 2) {
    if (h[i]!.length !== 11 || h[i]!.toLowerCase() !== 'traceparent') continue;
    if (h === ex.baseHeaders) ex.upstreamHeaders = h = h.slice();
    if (found < 0) {
      found = i;
      h[i + 1] = value;
      continue;
    }
    h.splice(i, 2);
    if (ex.hostIndex > i) ex.hostIndex -= 2;
    i -= 2;
  }
  if (found >= 0) return;
  // The base headers are shared with a fallback upstream's attempts: copy before changing.
  h = h.slice();
  if (ex.hostIndex >= 0) {
    h.splice(ex.hostIndex - 1, 0, 'traceparent', value);
    ex.hostIndex += 2;
  } else h.push('traceparent', value);
  ex.upstreamHeaders = h;
}

/** A request's server span and what its client spans need. */
class ServerTrace implements ExchangeTrace {
  readonly engine: TraceEngine;
  readonly span: Span;
  readonly context: Context;
  readonly recording: boolean;
  readonly traceparent: string;
  readonly traceId: string;
  lastAttempt: UpstreamResponse | null = null;
  lastUpstream: string | null = null;
  /** The last attempt's client span while its response may still be the client's; its head's time. */
  open: Span | null = null;
  openHead = 0;
  /** When the server span ended (performance.now()), 0 before: no child span ends after it. */
  endedAt = 0;

  constructor(engine: TraceEngine, span: Span) {
    this.engine = engine;
    this.span = span;
    this.recording = span.isRecording();
    const sc = span.spanContext();
    this.traceparent = traceparentOf(sc);
    this.traceId = sc.traceId;
    this.context = this.recording ? engine.api.trace.setSpan(engine.api.ROOT_CONTEXT, span) : engine.api.ROOT_CONTEXT;
  }

  /** A child's end time, never after the server span's. */
  clamp(now: number): number {
    return this.endedAt === 0 || now < this.endedAt ? now : this.endedAt;
  }

  /** The open client span's response was dropped (a retry or a fallback follows): it ended at its head. */
  closeOpen(): void {
    const o = this.open;
    if (o === null) return;
    this.open = null;
    o.end(wall(this.openHead));
  }

  /**
   * The exchange is over. Its decisions become events: every access-log
   * flag (so a flag added later needs no change here), breakwater's own
   * error, the fallback; then the span ends with the status the client got,
   * and a sampled request's trace id becomes its duration's exemplar.
   */
  end(ex: Exchange, status: number, seconds: number): void {
    const perfNow = performance.now();
    this.endedAt = perfNow;
    if (!this.recording) {
      this.span.end();
      return;
    }
    const s = this.span;
    const now = wall(perfNow);
    if (ex.route !== null) s.setAttribute('breakwater.route', ex.route);
    if (status !== 0) s.setAttribute('http.response.status_code', status);
    if (ex.attempts > 0) s.setAttribute('breakwater.attempts', ex.attempts);
    if (ex.endpoint !== null) s.setAttribute('server.address', ex.endpoint);
    if (ex.error !== null) {
      s.addEvent(ex.error, { 'breakwater.error': ex.error }, now);
      s.setAttribute('breakwater.error', ex.error);
    }
    if (ex.fallback !== null) s.addEvent('fallback', { 'breakwater.fallback': ex.fallback }, now);
    const flags = ex.flags;
    if (flags !== null) {
      for (let i = 0; i < flags.length; i++) s.addEvent(flags[i]!, undefined, now);
      s.setAttribute('breakwater.flags', flags.slice());
    }
    if (status >= 500 || ex.error !== null) s.setStatus({ code: ERROR, message: ex.error ?? String(status) });
    // The last attempt's response went to the client unless a static fallback answered instead.
    if (ex.fallback === 'response') this.closeOpen();
    else if (this.open !== null) {
      this.open.end(now);
      this.open = null;
    }
    s.end(now);
    ex.metrics?.exemplar(ex.method, status, seconds, s.spanContext().traceId);
  }
}
