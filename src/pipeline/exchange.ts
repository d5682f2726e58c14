/**
 * What one request has done so far: the only per-request record on the request
 * path. Everything else a request meets (routes, policies, metric children,
 * state) is built once per config load and shared.
 *
 * An Exchange is created by the listener edge, filled in by the layers, and
 * read by the access log and metrics when the response is over.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { OutcomeKind } from '../config/types.ts';
import { isGrpcContentType } from './grpc.ts';

const EMPTY_HEADERS: string[] = [];

/** The per-route metric children the edge records into when a request is over. */
export interface RequestMetrics {
  request(method: string, status: number, seconds: number): void;
  /** After `request()`, for a traced request: its trace id as an exemplar (SPEC §13). */
  exemplar(method: string, status: number, seconds: number, traceId: string): void;
  /** A gRPC call is over with this status (grpc_responses_total). */
  grpcResponse(code: number): void;
}

/** One upstream attempt, as it appears in the access log's `tries[]`. */
export interface Try {
  readonly endpoint: string;
  readonly outcome: OutcomeKind;
  readonly status: number | null;
  /** A gRPC call's status for this attempt (SPEC §10.2); absent for plain HTTP, null when none came. */
  readonly grpcStatus?: number | null;
  readonly ms: number;
}

/**
 * The request body as the upstream attempts see it:
 * - null: the request has no body;
 * - Buffer: the whole body, read up to the replay limit (replayable);
 * - Readable: a body larger than the replay limit, streamed once (not replayable).
 */
export type RequestBody = null | Buffer | Readable;

/** What tracing keeps on an exchange (observability/tracing/tracing.ts). */
export interface ExchangeTrace {
  /** The request's trace id (32 hex), continued from the client or started by breakwater. */
  readonly traceId: string;
  /** The exchange is over: end the server span (status as the client got it). */
  end(ex: Exchange, status: number, seconds: number): void;
}

/** A guard permit that records attempt outcomes (the breaker's). */
export interface RecordingPermit {
  record(kind: OutcomeKind, status: number, grpc?: number): RecordingPermit;
  release(): void;
}

export class Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly listener: string;
  readonly start: number;
  readonly requestId: string;
  /** Upper-case request method. */
  readonly method: string;
  /** The request path with its query, as received (origin-form). */
  readonly target: string;
  /** Lower-cased authority the request was addressed to, without port. */
  readonly host: string;
  /**
   * The client's address, read once at arrival: node may detach `req.socket`
   * (set it to null) before the response's 'close', e.g. when a streamed
   * request body is destroyed, and the access log runs after that.
   */
  readonly client: string | null;
  /** A gRPC call (content-type `application/grpc…`, SPEC §10.2): gRPC-shaped generated answers, grpc-status classification. */
  readonly grpc: boolean;

  route: string | null = null;
  upstream: string | null = null;
  /** Path + query sent upstream (after stripPrefix). */
  upstreamPath: string;
  /** Header name/value pairs sent upstream, flat [name, value, …]; the host value is at hostIndex. */
  upstreamHeaders: string[] = EMPTY_HEADERS;
  hostIndex = -1;
  /** The request's headers after hop-by-hop removal and x-forwarded-*, before any upstream's rewrite. */
  baseHeaders: string[] = EMPTY_HEADERS;
  /** The authority the client addressed (Host, or the absolute-form URL's), sent as-is when preserveHost. */
  originalHost = '';
  /** Route-level metric children, bound at config load (null until routed). */
  metrics: RequestMetrics | null = null;
  /** Idempotency key header present (makes any method retriable). */
  idempotencyKey = false;
  body: RequestBody = null;
  /** Absolute deadline (performance.now() ms) for response headers: start + timeout.total. */
  deadline = Infinity;

  attempts = 0;
  tries: Try[] | null = null;
  flags: string[] | null = null;
  /** breakwater's own error code when it answered itself; null when the upstream's response passed through. */
  error: string | null = null;
  status = 0;
  /**
   * The gRPC status the client got (the upstream's `grpc-status`, derived
   * from its HTTP status, or breakwater's own answer); null for plain HTTP
   * and for a call cut off before any status.
   */
  grpcStatus: number | null = null;
  endpoint: string | null = null;
  upstreamMs: number | null = null;
  bytesIn = 0;
  bytesOut = 0;
  /** The request body went over the listener's `bodySize` while streaming upstream: answer 413, not the attempt's failure. */
  bodyTooLarge = false;
  /** Set when a fallback served this request (x-breakwater-fallback); `cache`: a stale stored response (SPEC §11.2). */
  fallback: 'upstream' | 'response' | 'cache' | null = null;
  /** The client went away before the response was complete. */
  clientAborted = false;
  finished = false;
  /**
   * The upstream breaker's permit (policies/breaker/permit.ts), if it has a
   * breaker: every attempt is recorded through it, and it is released when
   * the exchange is over (a half-open probe never recorded gives its slot back).
   */
  breaker: RecordingPermit | null = null;
  /** The request's server span (observability/tracing), when tracing is on; null otherwise. */
  trace: ExchangeTrace | null = null;

  /** What the edge answered on the raw socket itself (answeredRaw), kept over whatever the layers set afterwards. */
  #edge: { readonly status: number; readonly error: string; readonly bytesOut: number } | null = null;
  #abort: AbortController | null = null;
  #releases: (() => void)[] | null = null;
  /** The attempt currently talking to an upstream, aborted if the client goes away. */
  current: { abort(reason: Error): void } | null = null;

  constructor(req: IncomingMessage, res: ServerResponse, listener: string, requestId: string, method: string, target: string, host: string) {
    this.req = req;
    this.res = res;
    this.listener = listener;
    this.start = performance.now();
    this.requestId = requestId;
    this.method = method;
    this.target = target;
    this.host = host;
    this.client = req.socket?.remoteAddress ?? null;
    this.grpc = isGrpcContentType(req.headers['content-type']);
    this.upstreamPath = target;
  }

  flag(name: string): void {
    if (this.flags === null) this.flags = [name];
    else if (!this.flags.includes(name)) this.flags.push(name);
  }

  addTry(t: Try): void {
    if (this.tries === null) this.tries = [t];
    else this.tries.push(t);
  }

  /**
   * An AbortSignal that fires when the client goes away. Created only when a
   * layer is about to wait (queue, backoff, rate-limit wait): most requests
   * never need one.
   */
  get signal(): AbortSignal {
    if (this.#abort === null) {
      this.#abort = new AbortController();
      if (this.clientAborted) this.#abort.abort();
    }
    return this.#abort.signal;
  }

  /** Run `fn` once when the exchange is over (response ended or client gone): slot releases and the like. */
  onFinish(fn: () => void): void {
    if (this.finished) {
      fn();
      return;
    }
    if (this.#releases === null) this.#releases = [fn];
    else this.#releases.push(fn);
  }

  /**
   * The listener edge answered this request itself, straight on the socket,
   * while its body was still arriving (node's parser refused the body, or it
   * came too slowly): the client got `status`, and the connection closes.
   * The exchange then ends as cut short (its attempt aborted, its permits
   * released), but its line says what the client got, not client_abort.
   */
  answeredRaw(error: string, status: number, bytesOut: number, flag: string | null): void {
    this.#edge = { status, error, bytesOut };
    if (flag !== null) this.flag(flag);
  }

  /** Called by the listener edge exactly once. */
  finish(clientAborted: boolean): void {
    if (this.finished) return;
    this.finished = true;
    const edge = this.#edge;
    if (edge !== null) {
      // Over anything a layer rendered meanwhile (onto a socket already closing).
      this.status = edge.status;
      this.error = edge.error;
      this.bytesOut = edge.bytesOut;
    }
    if (clientAborted) {
      this.clientAborted = true;
      if (edge === null) this.flag('client_abort');
      this.#abort?.abort();
      // Before the breaker permit is released: an attempt whose outcome was
      // still to come (a gRPC status in trailers) records it now.
      this.current?.abort(new ClientAbortError());
    }
    if (this.breaker !== null) {
      this.breaker.release();
      this.breaker = null;
    }
    const r = this.#releases;
    if (r !== null) {
      this.#releases = null;
      for (let i = 0; i < r.length; i++) r[i]!();
    }
  }

  /** Milliseconds left before `timeout.total`. */
  remaining(now = performance.now()): number {
    return this.deadline - now;
  }
}

export class ClientAbortError extends Error {
  readonly code = 'BW_CLIENT_ABORT';
  constructor() {
    super('client went away');
  }
}
