/**
 * One attempt: the innermost handler. Picks an endpoint, dispatches through its
 * undici pool, enforces perTry (capped by what is left of `total`), and
 * classifies what happened. The response body is NOT read here: on headers the
 * attempt pauses and resolves; the retry layer then either discards it (to try
 * again) or hands it to the rescue point, which commits it to the client.
 *
 * Streaming goes straight from undici's dispatch callbacks into the server
 * response (no intermediate stream objects: see PERF notes in bench/README.md),
 * with backpressure both ways: a client that reads slowly pauses the upstream.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { OutcomeKind } from '../config/types.ts';
import { AttemptTimeoutError, classifyError, classifyStatus } from '../pipeline/classify.ts';
import { ClientAbortError, type Exchange } from '../pipeline/exchange.ts';
import { isHopByHop, connectionListed } from '../http/hop-by-hop.ts';
import type { Balancer, EndpointRuntime } from './pool.ts';

type DispatchController = Dispatcher.DispatchController;

/** What the attempt layer needs from its upstream, built once per config load. */
export interface AttemptStage {
  readonly upstream: string;
  readonly balancer: Balancer;
  readonly perTry: number;
  readonly idle: number;
  readonly preserveHost: boolean;
  /** The classifier's consumers (tries[], attempt metrics, breaker), called once per attempt. */
  observe(ex: Exchange, kind: OutcomeKind, status: number, ms: number, endpoint: string): void;
}

const PENDING = 0;
const HEAD = 1; // headers received, paused, not yet committed or discarded
const STREAMING = 2;
const DISCARDING = 3;
const DONE = 4;

/** Bodies up to this size are read and dropped on retry, keeping the connection; larger ones abort it. */
const DRAIN_LIMIT = 64 * 1024;

function onAttemptTimer(a: UpstreamReply): void {
  a.timedOut();
}

function onIdleTimer(a: UpstreamReply): void {
  a.idleTimedOut();
}

/**
 * An attempt's dispatch handler, and — once headers arrive — the reply the
 * layers pass around. One object per attempt (the only unavoidable allocation
 * besides undici's own).
 */
export class UpstreamReply implements Dispatcher.DispatchHandler {
  readonly type = 'upstream' as const;
  readonly ex: Exchange;
  readonly stage: AttemptStage;
  readonly endpoint: EndpointRuntime;
  readonly started: number;
  status = 0;
  headers: IncomingHttpHeaders | null = null;
  /** Outcome kind once settled. */
  kind: OutcomeKind = 'success';
  /** The error that ended the attempt before headers, if any. */
  error: Error | null = null;
  /** Set by the retry layer: this was retriable but retries ran out. */
  exhausted = false;

  #state = PENDING;
  /** The upstream's response ended while still held (HEAD, 204, 304, an empty body): commit sends the head and ends. */
  #ended = false;
  /** The attempt timer that is armed is the request's `total` deadline, not `perTry` (decided when armed). */
  #timerIsTotal = false;
  #controller: DispatchController | null = null;
  #abortReason: Error | null = null;
  #timer: NodeJS.Timeout | null = null;
  #resolve: ((r: UpstreamReply) => void) | null = null;
  #resume: (() => void) | null = null;
  #released = false;

  constructor(ex: Exchange, stage: AttemptStage, endpoint: EndpointRuntime) {
    this.ex = ex;
    this.stage = stage;
    this.endpoint = endpoint;
    this.started = performance.now();
  }

  /** Dispatch and wait for the response head (or the attempt's failure). */
  run(body: Buffer | import('node:stream').Readable | null): Promise<UpstreamReply> {
    const ex = this.ex;
    const remaining = ex.deadline - this.started;
    const total = remaining <= this.stage.perTry;
    const ms = total ? remaining : this.stage.perTry;
    const p = new Promise<UpstreamReply>((resolve) => {
      this.#resolve = resolve;
    });
    this.endpoint.inflight++;
    ex.current = this;
    if (ms <= 0) {
      this.#fail(new AttemptTimeoutError(true));
      return p;
    }
    // Which deadline this timer is, is fixed now: node's timers count from
    // the event loop's cached clock, so recomputing it from performance.now()
    // when the timer fires can mistake the total deadline for a (retriable)
    // perTry expiry under load. SPEC §4.1: without perTry, never retried.
    this.#timerIsTotal = total;
    this.#timer = setTimeout(onAttemptTimer, ms, this);
    const headers = ex.upstreamHeaders;
    if (ex.hostIndex >= 0) headers[ex.hostIndex] = this.stage.preserveHost ? ex.originalHost : this.endpoint.endpoint.authority;
    try {
      this.endpoint.pool.dispatch(
        {
          path: ex.upstreamPath,
          method: ex.method,
          headers,
          body,
          bodyTimeout: 0, // the idle watchdog below covers both directions
          headersTimeout: 0,
          idempotent: false,
          blocking: true,
        },
        this,
      );
    } catch (err) {
      this.#fail(err as Error);
    }
    return p;
  }

  /** perTry or total expired before headers. */
  timedOut(): void {
    this.#timer = null;
    if (this.#state !== PENDING) return;
    this.abort(new AttemptTimeoutError(this.#timerIsTotal));
  }

  /**
   * `timeout.idle` passed with no body chunk moving in either direction after
   * the head was sent: the status is gone, so the client connection is cut.
   */
  idleTimedOut(): void {
    this.#timer = null;
    if (this.#state !== STREAMING) return;
    this.ex.flag('idle_timeout');
    this.abort(new IdleTimeoutError());
    this.ex.res.destroy();
  }

  /** Abort the attempt (timeout, client gone, discard). Safe at any point. */
  abort(reason: Error): void {
    if (this.#state === DONE) return;
    if (this.#controller !== null && !this.#controller.aborted) this.#controller.abort(reason);
    else this.#abortReason = reason;
    if (this.#state === PENDING) this.#fail(reason);
    else if (this.#state === HEAD) this.#finish();
  }

  // --- undici DispatchHandler -------------------------------------------------

  onRequestStart(controller: DispatchController): void {
    this.#controller = controller;
    if (this.#abortReason !== null) controller.abort(this.#abortReason);
  }

  onResponseStart(controller: DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return; // 1xx informational: wait for the final head
    if (this.#state !== PENDING) return;
    this.#clearTimer();
    this.status = statusCode;
    this.headers = headers;
    this.kind = classifyStatus(statusCode);
    this.#state = HEAD;
    // Hold the body until someone decides: commit to the client, or discard to retry.
    controller.pause();
    this.#settle();
  }

  onResponseData(controller: DispatchController, chunk: Buffer): void {
    if (this.#state !== STREAMING) return;
    const ex = this.ex;
    ex.bytesOut += chunk.length;
    this.#timer?.refresh();
    if (!ex.res.write(chunk)) {
      controller.pause();
      ex.res.once(
        'drain',
        (this.#resume ??= () => {
          this.#timer?.refresh();
          this.#controller?.resume();
        }),
      );
    }
  }

  onResponseEnd(_controller: DispatchController, trailers?: IncomingHttpHeaders): void {
    const state = this.#state;
    if (state === HEAD) {
      // No body (HEAD, 204, 304, Content-Length: 0): undici ends the
      // response although it is paused. The head is still waiting for the
      // layers' decision; commit() sends it and ends at once.
      this.#ended = true;
      this.#clearTimer();
      this.#release();
      return;
    }
    this.#finish();
    if (state === STREAMING) {
      // Trailers (gRPC-style status, checksums) go out in the last chunk of
      // a chunked answer; node drops them from a length-delimited one.
      if (trailers !== undefined && hasKeys(trailers)) this.ex.res.addTrailers(trailers as Record<string, string>);
      this.ex.res.end();
    }
  }

  onResponseError(_controller: DispatchController, err: Error): void {
    const state = this.#state;
    if (state === PENDING) {
      this.#fail(err);
      return;
    }
    this.#finish();
    if (state === STREAMING) {
      // The status is already gone: all that is left is to cut the client off.
      if (!(err instanceof ClientAbortError) && !(err instanceof IdleTimeoutError)) this.ex.flag('upstream_reset');
      this.ex.res.destroy();
    } else if (state === HEAD) {
      this.error = err;
    }
  }

  // --- decisions taken by the layers above -------------------------------------

  /** Send this response to the client: head now, body as it arrives. */
  commit(): void {
    if (this.#state !== HEAD) {
      // The upstream failed between head and commit: nothing valid to send.
      this.ex.res.destroy();
      return;
    }
    const ex = this.ex;
    const res = ex.res;
    ex.status = this.status;
    res.writeHead(this.status, responseHeaders(this.headers!, ex, this.status, this.endpoint.endpoint.authority));
    if (this.#ended) {
      this.#state = DONE;
      res.end();
      return;
    }
    this.#state = STREAMING;
    // The idle watchdog: one timer per streaming response, refreshed per chunk.
    if (this.stage.idle > 0) this.#timer = setTimeout(onIdleTimer, this.stage.idle, this);
    this.#controller?.resume();
  }

  /** Drop this response (a retry follows): read a small body to keep the connection, abort a large one. */
  discard(): void {
    if (this.#state !== HEAD) return;
    if (this.#ended) {
      this.#state = DONE;
      return;
    }
    const len = Number(this.headers?.['content-length'] ?? Infinity);
    if (len <= DRAIN_LIMIT) {
      this.#state = DISCARDING;
      this.#controller?.resume();
    } else {
      this.abort(new Error('response discarded for a retry'));
    }
  }

  // --- internals ----------------------------------------------------------------

  #fail(err: Error): void {
    if (this.#state !== PENDING) return;
    this.#clearTimer();
    this.error = err;
    this.kind = classifyError(err);
    this.#state = DONE;
    this.#release();
    // A client that went away says nothing about the upstream: the attempt is
    // neither logged as a try nor fed to the breaker or the attempt metrics.
    this.#settle(!(err instanceof ClientAbortError));
  }

  #finish(): void {
    if (this.#state === DONE) return;
    this.#state = DONE;
    this.#clearTimer();
    this.#release();
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.endpoint.inflight--;
    if (this.ex.current === this) this.ex.current = null;
  }

  #settle(observe = true): void {
    const ms = performance.now() - this.started;
    if (observe) this.stage.observe(this.ex, this.kind, this.status, ms, this.endpoint.endpoint.authority);
    const resolve = this.#resolve;
    this.#resolve = null;
    resolve?.(this);
  }

  #clearTimer(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }
}

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}

export class IdleTimeoutError extends Error {
  readonly code = 'BW_IDLE_TIMEOUT';
  constructor() {
    super('no body chunk within timeout.idle');
  }
}

/**
 * The upstream's headers as the client gets them: hop-by-hop removed (and
 * whatever its Connection header lists), `x-request-id` set, no
 * Content-Length on a 204 (RFC 9110 §8.6), and a `Location` or
 * `Content-Location` on the answering endpoint's own authority rewritten to
 * the authority the client used (nginx's `proxy_redirect default`), so a
 * client that follows a redirect comes back through breakwater. Built as a
 * flat [name, value, …] list, which node writes without another copy.
 */
function responseHeaders(h: IncomingHttpHeaders, ex: Exchange, status: number, endpoint: string): string[] {
  const listed = h.connection === undefined ? null : connectionListed(h.connection);
  const out: string[] = [];
  for (const name in h) {
    if (isHopByHop(name) || name === 'x-request-id') continue;
    if (listed !== null && listed.has(name)) continue;
    const v = h[name];
    if (v === undefined) continue;
    if (typeof v === 'string') {
      if (name === 'location' || name === 'content-location') out.push(name, rewriteLocation(v, endpoint, ex.originalHost));
      else if (name === 'content-length' && status === 204) continue;
      else out.push(name, v);
    } else for (let i = 0; i < v.length; i++) out.push(name, v[i]!);
  }
  // A HEAD answer says how a GET would be framed. With neither length nor
  // chunked, clients (llhttp) read it as close-delimited and drop the
  // connection; the GET would be chunked on this connection too.
  if (ex.method === 'HEAD' && h['transfer-encoding'] !== undefined && h['content-length'] === undefined) out.push('transfer-encoding', 'chunked');
  out.push('x-request-id', ex.requestId);
  return out;
}

/**
 * `http://ENDPOINT/path` → `http://CLIENT-AUTHORITY/path` when ENDPOINT is the
 * endpoint's `host:port` (or its host alone when the port is 80); any other
 * value is returned as is.
 */
export function rewriteLocation(value: string, endpoint: string, clientAuthority: string): string {
  if (clientAuthority === '' || value.length < 8) return value;
  if (value.slice(0, 7).toLowerCase() !== 'http://') return value;
  const start = 7;
  let end = start;
  while (end < value.length) {
    const c = value.charCodeAt(end);
    if (c === 47 || c === 63 || c === 35) break; // / ? #
    end++;
  }
  const authority = value.slice(start, end).toLowerCase();
  const ep = endpoint.toLowerCase();
  if (authority !== ep && !(ep.endsWith(':80') && authority === ep.slice(0, -3))) return value;
  return `http://${clientAuthority}${value.slice(end)}`;
}
