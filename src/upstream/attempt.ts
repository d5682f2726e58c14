/**
 * One attempt: the innermost handler. Picks an endpoint, dispatches through its
 * undici pool, enforces perTry (capped by what is left of `total`), and
 * classifies what happened. On the response head it holds the body and
 * resolves as an UpstreamResponse (pipeline/upstream-response.ts): the layers
 * above then either discard it or the rescue point commits it to the client,
 * and from then on the body is streamed by http/relay.ts. This object is the
 * attempt's undici dispatch handler too: one object per attempt, the only
 * unavoidable allocation besides undici's own.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { OutcomeKind } from '../config/types.ts';
import { IdleTimeoutError, ResponseRelay } from '../http/relay.ts';
import { AttemptTimeoutError, PENDING_GRPC, classifyError, classifyGrpc, classifyStatus, grpcStatusAtHead } from '../pipeline/classify.ts';
import { GRPC, NO_GRPC_STATUS, parseGrpcStatus } from '../pipeline/grpc.ts';
import { ClientAbortError, type Exchange } from '../pipeline/exchange.ts';
import type { BodyTap, UpstreamResponse } from '../pipeline/upstream-response.ts';
import type { Balancer, EndpointPool } from './pool.ts';

type DispatchController = Dispatcher.DispatchController;

/** What an attempt needs from its upstream, resolved once per config load. */
export interface AttemptParams {
  readonly upstream: string;
  readonly balancer: Balancer;
  readonly perTry: number;
  readonly idle: number;
  readonly preserveHost: boolean;
  /**
   * The classifier's consumers (tries[], attempt metrics, breaker), called
   * once per attempt: at its head, or for a gRPC call whose status comes in
   * trailers, when its body ends (`ms` is still the time to the head).
   * `grpc` is NO_GRPC_STATUS for plain HTTP and for a call cut off before
   * its status.
   */
  observe(ex: Exchange, kind: OutcomeKind, status: number, ms: number, endpoint: string, grpc: number): void;
}

/** The innermost handler's shape: it always produces an UpstreamResponse, never another kind of reply. */
export type AttemptHandler = (ex: Exchange) => Promise<UpstreamResponse>;

/** Builds the innermost handler of an upstream's stack. */
export function attemptHandler(params: AttemptParams): AttemptHandler {
  return (ex) => new Attempt(ex, params, params.balancer.pick()).run(ex.body);
}

const PENDING = 0;
const HEAD = 1; // head received, body held, not yet committed or discarded
const STREAMING = 2;
const DISCARDING = 3;
const DONE = 4;

/** Bodies up to this size are read and dropped on discard, keeping the connection; larger ones abort it. */
const DRAIN_LIMIT = 64 * 1024;

function onAttemptTimer(a: Attempt): void {
  a.timedOut();
}

export class Attempt implements Dispatcher.DispatchHandler, UpstreamResponse {
  readonly type = 'upstream' as const;
  readonly ex: Exchange;
  readonly params: AttemptParams;
  readonly endpoint: EndpointPool;
  readonly started: number;
  status = 0;
  headers: IncomingHttpHeaders | null = null;
  kind: OutcomeKind = 'success';
  grpcStatus = NO_GRPC_STATUS;
  error: Error | null = null;
  totalExpired = false;
  exhausted = false;

  #state = PENDING;
  /** The upstream's response ended while still held (HEAD, 204, 304, an empty body). */
  #ended = false;
  /** The armed timer is the request's `total` deadline, not `perTry` (decided when armed). */
  #timerIsTotal = false;
  #released = false;
  #controller: DispatchController | null = null;
  #abortReason: Error | null = null;
  #timer: NodeJS.Timeout | null = null;
  #resolve: ((r: Attempt) => void) | null = null;
  #relay: ResponseRelay | null = null;
  /**
   * A gRPC call whose status comes in the trailers: its observation (tries[],
   * metrics, breaker) waits for the end of the body, and happens exactly once
   * on whichever way the attempt ends (#observeEnd).
   */
  #deferred = false;
  #headMs = 0;
  /** Trailers of a response that ended while held. */
  #trailers: IncomingHttpHeaders | undefined = undefined;
  /** Who else reads the body as it is relayed (the stale-if-error cache), if anyone. */
  #tap: BodyTap | null = null;

  constructor(ex: Exchange, params: AttemptParams, endpoint: EndpointPool) {
    this.ex = ex;
    this.params = params;
    this.endpoint = endpoint;
    this.started = performance.now();
  }

  /** Dispatch and wait for the response head (or the attempt's failure). */
  run(body: Buffer | Readable | null): Promise<Attempt> {
    const ex = this.ex;
    const remaining = ex.deadline - this.started;
    const total = remaining <= this.params.perTry;
    const ms = total ? remaining : this.params.perTry;
    const p = new Promise<Attempt>((resolve) => {
      this.#resolve = resolve;
    });
    this.endpoint.inflight++;
    ex.current = this;
    if (ms <= 0) {
      this.totalExpired = true;
      this.#fail(new AttemptTimeoutError(true));
      return p;
    }
    // Which deadline this timer is, is fixed now: node's timers fire in
    // whole milliseconds from the loop's clock, so recomputing it from
    // performance.now() when the timer fires can mistake the total deadline
    // for a (retriable) perTry expiry. SPEC §4.1: without perTry, never retried.
    this.#timerIsTotal = total;
    this.#timer = setTimeout(onAttemptTimer, ms, this);
    const headers = ex.upstreamHeaders;
    if (ex.hostIndex >= 0) headers[ex.hostIndex] = this.params.preserveHost ? ex.originalHost : this.endpoint.endpoint.authority;
    try {
      this.endpoint.pool.dispatch(
        {
          path: ex.upstreamPath,
          method: ex.method,
          headers,
          body,
          bodyTimeout: 0, // the relay's idle watchdog covers both directions
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

  /** perTry or total expired before the head. */
  timedOut(): void {
    this.#timer = null;
    if (this.#state !== PENDING) return;
    this.totalExpired = this.#timerIsTotal;
    this.abort(new AttemptTimeoutError(this.#timerIsTotal));
  }

  /** Abort the attempt (timeout, client gone, discard, idle). Safe at any point. */
  abort(reason: Error): void {
    if (this.#state === DONE) return;
    // A gRPC call cut off before its status: an idle timeout is the
    // upstream's; a client gone or a discard records what the head said.
    if (this.#deferred) this.#observeEnd(reason instanceof IdleTimeoutError ? 'timeout' : this.kind, NO_GRPC_STATUS);
    if (this.#controller !== null && !this.#controller.aborted) this.#controller.abort(reason);
    else this.#abortReason = reason;
    if (this.#state === PENDING) this.#fail(reason);
    else if (this.#state === HEAD) this.#finish();
  }

  // --- flow control, for the relay ---------------------------------------------

  pause(): void {
    this.#controller?.pause();
  }

  resume(): void {
    this.#controller?.resume();
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
    this.#state = HEAD;
    // Hold the body until someone decides: commit to the client, or discard.
    controller.pause();
    if (this.ex.grpc) {
      const g = grpcStatusAtHead(statusCode, headers);
      if (g === PENDING_GRPC) {
        // SPEC §10.2: the status comes in the trailers, after the head is
        // the client's. Not retriable; recorded when the body ends.
        this.kind = 'success';
        this.#deferred = true;
        this.#headMs = performance.now() - this.started;
        this.#settle(false);
        return;
      }
      this.grpcStatus = g;
      this.kind = classifyGrpc(statusCode, g);
    } else this.kind = classifyStatus(statusCode);
    this.#settle();
  }

  onResponseData(_controller: DispatchController, chunk: Buffer): void {
    if (this.#state !== STREAMING) return;
    if (this.#tap !== null) this.#tap.data(chunk);
    this.#relay!.data(chunk);
  }

  onResponseEnd(_controller: DispatchController, trailers?: IncomingHttpHeaders): void {
    const state = this.#state;
    if (this.#deferred) {
      // A gRPC response without grpc-status in its trailers: clients read UNKNOWN.
      const g = parseGrpcStatus(trailers?.['grpc-status']);
      const code = g === NO_GRPC_STATUS ? GRPC.UNKNOWN : g;
      this.#observeEnd(classifyGrpc(this.status, code), code);
    }
    if (state === HEAD) {
      // No body (HEAD, 204, 304, Content-Length: 0): undici ends the
      // response although it is held. commitTo sends the head and ends.
      this.#ended = true;
      this.#trailers = trailers;
      this.#release();
      return;
    }
    this.#finish();
    if (state === STREAMING) {
      this.#endTap();
      this.#relay!.end(trailers);
    }
  }

  onResponseError(_controller: DispatchController, err: Error): void {
    const state = this.#state;
    if (state === PENDING) {
      this.#fail(err);
      return;
    }
    this.#observeEnd('reset', NO_GRPC_STATUS);
    this.#finish();
    if (state === STREAMING) this.#relay!.error(err);
    else if (state === HEAD) this.error = err;
  }

  // --- UpstreamResponse: the one decision ----------------------------------------

  commitTo(ex: Exchange): void {
    if (this.#state !== HEAD) {
      // The upstream failed between head and commit: nothing valid to send.
      ex.res.destroy();
      return;
    }
    ex.status = this.status;
    const relay = new ResponseRelay(ex, this, this.params.idle);
    relay.start(this.status, this.headers!, this.endpoint.endpoint.authority);
    if (this.#ended) {
      this.#state = DONE;
      this.#endTap();
      relay.end(this.#trailers);
      return;
    }
    this.#relay = relay;
    this.#state = STREAMING;
    this.#controller?.resume();
  }

  tap(tap: BodyTap): void {
    if (this.#state === HEAD) this.#tap = tap;
  }

  /** The body is whole: the tap (the cache's collector) stores it. A fault of the tap's never breaks the relay. */
  #endTap(): void {
    const t = this.#tap;
    if (t === null) return;
    this.#tap = null;
    try {
      t.end();
    } catch {
      // the response goes on; only its copy is lost
    }
  }

  discard(): void {
    if (this.#state !== HEAD) return;
    if (this.#deferred) this.#observeEnd(this.kind, NO_GRPC_STATUS);
    if (this.#ended) {
      this.#state = DONE;
      return;
    }
    const len = Number(this.headers?.['content-length'] ?? Infinity);
    if (len <= DRAIN_LIMIT) {
      this.#state = DISCARDING;
      this.#controller?.resume();
    } else {
      this.abort(new Error('response discarded'));
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
    if (observe) this.params.observe(this.ex, this.kind, this.status, ms, this.endpoint.endpoint.authority, this.grpcStatus);
    const resolve = this.#resolve;
    this.#resolve = null;
    resolve?.(this);
  }

  /** The deferred observation of a gRPC call, once: its status from the trailers, or how it was cut off. */
  #observeEnd(kind: OutcomeKind, grpc: number): void {
    if (!this.#deferred) return;
    this.#deferred = false;
    this.kind = kind;
    this.grpcStatus = grpc;
    this.params.observe(this.ex, kind, this.status, this.#headMs, this.endpoint.endpoint.authority, grpc);
  }

  #clearTimer(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }
}
