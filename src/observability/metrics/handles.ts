/**
 * Bound handles: what layers and listeners hold. `Metrics.route()`,
 * `upstream()` and `listener()` return objects whose methods touch
 * pre-resolved cells. The request path never builds or hashes a label set;
 * the few children that depend on per-request values (method × status, retry
 * reason, attempt result) are created on first use and cached in arrays
 * indexed by number.
 */
import { GRPC_CODE_NAMES } from '../../pipeline/grpc.ts';
import { METHOD_LABELS, METHODS } from './catalogue.ts';
import type { Cell, Families, HistogramCell, HistogramFamily, ValueFamily } from './families.ts';

const OTHER = METHODS.length;

// === what layers hold ===

export type RejectReason = 'rate_limited' | 'bulkhead_full' | 'circuit_open' | 'no_route';
export type AttemptResult = 'success' | '5xx' | '4xx' | 'timeout' | 'connect_failure' | 'reset' | 'grpc_error';
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
  /** After `request()`: the traced request's trace id as the exemplar of its request_duration_seconds bucket (SPEC §13). */
  exemplar(method: string, status: number, seconds: number, traceId: string): void;
  /** retries_total{route,upstream,reason}; reason is timeout|connect_failure|reset|<status code>. */
  retry(reason: string): void;
  rejected(reason: RejectReason): void;
  fallback(kind: 'upstream' | 'response' | 'cache'): void;
  /** cache_hits_total{route,upstream,result} +1 (SPEC §11.2). */
  cacheHit(result: 'stale' | 'fresh'): void;
  /** cache_evictions_total{route,upstream} +n. */
  cacheEvicted(n: number): void;
  /** grpc_responses_total{route,upstream,grpc_status} +1; `code` outside 0–16 is counted as unknown. */
  grpcResponse(code: number): void;
  /** connect_tunnels_active{upstream} +1: a CONNECT tunnel was admitted and is connecting or open. */
  tunnelOpened(): void;
  /**
   * A CONNECT tunnel is over: connect_tunnels_total{...,result} +1, its bytes
   * added to connect_tunnel_bytes_total, and (`wasOpened`) the active gauge −1.
   */
  tunnelClosed(result: TunnelResult, bytesIn: number, bytesOut: number, wasOpened: boolean): void;
}

/** How a CONNECT tunnel ended, or why it was refused. */
export type TunnelResult = 'success' | 'connect_failure' | 'timeout' | 'idle_timeout' | 'reset' | 'client_abort' | 'rate_limited' | 'circuit_open' | 'bulkhead_full';

export interface UpstreamMetrics {
  /** upstream_attempts_total{result} +1 and upstream_attempt_duration_seconds observe. */
  attempt(result: AttemptResult, seconds: number): void;
  budgetExhausted(): void;
  /** 1 on the current state, 0 on the others. */
  circuitState(state: CircuitStateName): void;
  circuitTransition(from: string, to: string): void;
  bulkhead(active: number, queued: number): void;
  /** tls_reloads_total{upstream,result} +1: a rotation of the upstream's TLS files was applied or refused. */
  tlsReload(result: 'success' | 'failure'): void;
}

export interface ListenerMetrics {
  inflightInc(): void;
  inflightDec(): void;
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

const RESULTS: readonly AttemptResult[] = ['success', '5xx', '4xx', 'timeout', 'connect_failure', 'reset', 'grpc_error'];
function resultIndex(r: AttemptResult): number {
  switch (r) {
    case 'success': return 0;
    case '5xx': return 1;
    case '4xx': return 2;
    case 'timeout': return 3;
    case 'connect_failure': return 4;
    case 'grpc_error': return 6;
    default: return 5;
  }
}

const TUNNEL_RESULTS: readonly TunnelResult[] = ['success', 'connect_failure', 'timeout', 'idle_timeout', 'reset', 'client_abort', 'rate_limited', 'circuit_open', 'bulkhead_full'];
function tunnelResultIndex(r: TunnelResult): number {
  switch (r) {
    case 'success': return 0;
    case 'connect_failure': return 1;
    case 'timeout': return 2;
    case 'idle_timeout': return 3;
    case 'reset': return 4;
    case 'client_abort': return 5;
    case 'rate_limited': return 6;
    case 'circuit_open': return 7;
    default: return 8;
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
export abstract class Handle {
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

export class RouteHandle extends Handle implements RouteMetrics {
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
  #fallbackCache: Cell | undefined;
  #cacheStale: Cell | undefined;
  #cacheFresh: Cell | undefined;
  #cacheEvicted: Cell | undefined;
  readonly #tunnels: (Cell | undefined)[] = [];
  #tunnelBytesIn: Cell | undefined;
  #tunnelBytesOut: Cell | undefined;
  #tunnelsActive: Cell | undefined;
  /** [gRPC code 0–16] → grpc_responses_total series. */
  readonly #grpc: (Cell | undefined)[] = [];

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

  exemplar(method: string, status: number, seconds: number, traceId: string): void {
    const m = methodIndex(method);
    const cls = (normaliseStatus(status) / 100) | 0;
    this.#durations[m * 10 + cls]?.exemplar(seconds, traceId);
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

  fallback(kind: 'upstream' | 'response' | 'cache'): void {
    if (kind === 'upstream') (this.#fallbackUpstream ??= this.cell(this.#f.fallbacks, this.#route, this.#upstream, 'upstream')).v++;
    else if (kind === 'cache') (this.#fallbackCache ??= this.cell(this.#f.fallbacks, this.#route, this.#upstream, 'cache')).v++;
    else (this.#fallbackResponse ??= this.cell(this.#f.fallbacks, this.#route, this.#upstream, 'response')).v++;
  }

  cacheHit(result: 'stale' | 'fresh'): void {
    if (result === 'stale') (this.#cacheStale ??= this.cell(this.#f.cacheHits, this.#route, this.#upstream, 'stale')).v++;
    else (this.#cacheFresh ??= this.cell(this.#f.cacheHits, this.#route, this.#upstream, 'fresh')).v++;
  }

  cacheEvicted(n: number): void {
    (this.#cacheEvicted ??= this.cell(this.#f.cacheEvictions, this.#route, this.#upstream)).v += n;
  }

  grpcResponse(code: number): void {
    const i = code >= 0 && code <= 16 ? code : 2; // unknown
    (this.#grpc[i] ??= this.cell(this.#f.grpcResponses, this.#route, this.#upstream, GRPC_CODE_NAMES[i]!)).v++;
  }

  tunnelOpened(): void {
    // Cached on first use: a tunnel that outlives a reload retiring this handle decrements the cell it incremented.
    (this.#tunnelsActive ??= this.cell(this.#f.tunnelsActive, this.#upstream)).v++;
  }

  tunnelClosed(result: TunnelResult, bytesIn: number, bytesOut: number, wasOpened: boolean): void {
    const i = tunnelResultIndex(result);
    (this.#tunnels[i] ??= this.cell(this.#f.tunnels, this.#listener, this.#route, this.#upstream, TUNNEL_RESULTS[i]!)).v++;
    if (bytesIn > 0) (this.#tunnelBytesIn ??= this.cell(this.#f.tunnelBytes, this.#route, this.#upstream, 'in')).v += bytesIn;
    if (bytesOut > 0) (this.#tunnelBytesOut ??= this.cell(this.#f.tunnelBytes, this.#route, this.#upstream, 'out')).v += bytesOut;
    if (wasOpened && this.#tunnelsActive !== undefined) this.#tunnelsActive.v--;
  }
}

export class UpstreamHandle extends Handle implements UpstreamMetrics {
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

  tlsReload(result: 'success' | 'failure'): void {
    // Rare (a certificate rotation): no cached cell.
    this.cell(this.#f.tlsReloads, this.#name, result).v++;
  }
}

export class ListenerHandle extends Handle implements ListenerMetrics {
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
