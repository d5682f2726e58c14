/**
 * The listener edge (SPEC §3): accepts connections, rejects what is malformed
 * (400/413/431), refuses CONNECT (405), routes, and hands each request to its
 * route. A ListenerServer outlives config reloads: when a reload keeps its
 * address, only `current` — the compiled routes and policies — is swapped, so
 * kept-alive client connections use the new routes at once.
 */
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ListenerAddress, ListenerConfig } from '../config/types.ts';
import type { ErrorCode } from '../errors.ts';
import { Exchange } from '../pipeline/exchange.ts';
import { renderFailure, writeRawError } from './respond.ts';
import type { Router } from './router.ts';

/** A route's entry point, as the edge sees it. */
export interface RouteEntry {
  handle(ex: Exchange): void;
  /** WebSocket/Upgrade requests (http/upgrade.ts). */
  upgrade(req: IncomingMessage, socket: Socket, head: Buffer, requestId: string): void;
}

/** What the edge calls when an exchange is over: metrics and the access log. */
export interface ExchangeObserver {
  started(ex: Exchange): void;
  finished(ex: Exchange): void;
  /** The request matched no route. */
  unrouted(ex: Exchange): void;
}

/** Everything a listener needs from one config load. Swapped whole on reload. */
export interface ListenerRuntime {
  readonly config: ListenerConfig;
  readonly router: Router<RouteEntry>;
  readonly observer: ExchangeObserver;
}

export class BindError extends Error {
  readonly address: string;
  readonly reason: string;
  constructor(name: string, address: string, err: NodeJS.ErrnoException) {
    const why =
      err.code === 'EADDRINUSE'
        ? 'the address is already in use'
        : err.code === 'EACCES'
          ? 'permission denied (ports below 1024 need privileges)'
          : err.code === 'EADDRNOTAVAIL'
            ? 'the address is not available on this host'
            : err.message;
    super(`cannot bind listener "${name}" on ${address}: ${why}`);
    this.address = address;
    this.reason = err.code ?? err.message;
  }
}

const kEx = Symbol('breakwater.exchange');
type TrackedResponse = ServerResponse & { [kEx]?: Exchange };

/** Parser ceiling for request heads; the listener's own `headerSize` is enforced below it, exactly. */
const PARSER_HEADER_LIMIT = 64 * 1024;

export class ListenerServer {
  current: ListenerRuntime;
  readonly address: ListenerAddress;
  readonly server: http.Server;
  /** Once set, new requests get `draining` and their connections close. */
  draining = false;
  inflight = 0;
  #boundPort = 0;
  readonly #sockets = new Set<Socket>();
  #idleWaiters: (() => void)[] = [];

  constructor(runtime: ListenerRuntime) {
    this.current = runtime;
    this.address = runtime.config.address;
    this.server = http.createServer(
      {
        maxHeaderSize: Math.max(PARSER_HEADER_LIMIT, runtime.config.limits.headerSize + 1024),
        keepAliveTimeout: 5_000,
        headersTimeout: 20_000,
        requestTimeout: 0,
        noDelay: true,
        // Host is checked below, so a missing one gets the §4.7 bad_request body, not node's bare 400.
        requireHostHeader: false,
        // Duplicate Content-Length, CL+TE, bad chunk sizes and bare LF are
        // rejected by node's strict parser (never set insecureHTTPParser).
      },
      this.#onRequest,
    );
    this.server.on('connection', (s: Socket) => {
      this.#sockets.add(s);
      s.once('close', () => this.#sockets.delete(s));
    });
    this.server.on('clientError', onClientError);
    this.server.on('connect', (req: IncomingMessage, socket: Socket) => {
      writeRawError(socket, 'method_not_allowed', requestIdOf(req));
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const rid = requestIdOf(req);
      if (this.draining) return writeRawError(socket, 'draining', rid);
      const t = malformedHead(req) ? null : parseTarget(req);
      if (t === null) return writeRawError(socket, 'bad_request', rid);
      const q = t.target.indexOf('?');
      const route = this.current.router.match(t.host, q < 0 ? t.target : t.target.slice(0, q), req.method ?? 'GET', req);
      if (route === null) return writeRawError(socket, 'no_route', rid);
      route.value.upgrade(req, socket, head, rid);
    });
  }

  /** The port actually bound (differs from the config for port 0). */
  get port(): number {
    return this.#boundPort;
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        this.server.off('listening', onListening);
        reject(new BindError(this.current.config.name, this.address.text, err));
      };
      const onListening = (): void => {
        this.server.off('error', onError);
        const a = this.server.address();
        this.#boundPort = typeof a === 'object' && a !== null ? a.port : 0;
        resolve();
      };
      this.server.once('error', onError);
      this.server.once('listening', onListening);
      this.server.listen({ host: this.address.host, port: this.address.port, exclusive: true });
    });
  }

  /**
   * Drain: stop accepting, close idle kept-alive connections (busy ones close
   * after their current response, which carries `connection: close`), and
   * resolve when in-flight requests are done or `timeoutMs` passed (then the
   * remaining connections are cut).
   */
  async close(timeoutMs: number): Promise<void> {
    this.draining = true;
    this.server.close();
    this.server.closeIdleConnections();
    if (this.inflight > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, timeoutMs);
        t.unref();
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        this.#idleWaiters.push(done);
      });
    }
    for (const s of this.#sockets) s.destroy();
  }

  #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const lr = this.current;
    const method = req.method ?? 'GET';
    const t = malformedHead(req) ? null : parseTarget(req);
    const bad = t === null;
    const target = t === null ? '/' : t.target;
    const host = t === null ? '' : t.host;
    const ex = new Exchange(req, res, lr.config.name, requestIdOf(req), method, target, host);
    (res as TrackedResponse)[kEx] = ex;
    this.inflight++;
    lr.observer.started(ex);
    res.once('close', () => this.#onClose(res as TrackedResponse, lr));

    if (this.draining) return this.#reject(ex, 'draining', true);
    if (bad) return this.#reject(ex, 'bad_request', true);
    if (headSize(req) > lr.config.limits.headerSize) return this.#reject(ex, 'header_too_large', true);
    const q = target.indexOf('?');
    const route = lr.router.match(host, q < 0 ? target : target.slice(0, q), method, req);
    if (route === null) {
      lr.observer.unrouted(ex);
      return this.#reject(ex, 'no_route', false);
    }
    route.value.handle(ex);
  };

  #reject(ex: Exchange, code: ErrorCode, close: boolean): void {
    // Drain whatever body the client sends so the connection stays usable.
    ex.req.resume();
    renderFailure(ex, code, 0, close ? { connection: 'close' } : undefined);
  }

  #onClose(res: TrackedResponse, lr: ListenerRuntime): void {
    const ex = res[kEx]!;
    ex.finish(!res.writableFinished);
    this.inflight--;
    lr.observer.finished(ex);
    if (this.inflight === 0 && this.#idleWaiters.length > 0) {
      const w = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const f of w) f();
    }
  }
}

const ABSOLUTE = /^https?:\/\/([^/?#]*)(.*)$/i;

/**
 * What node's parser lets through but RFC 9112 does not: a request line
 * without HTTP/1.x (node reads "GET /x" + CRLF as HTTP/0.9, headers and all,
 * and accepts "HTTP/2.0"), and an HTTP/1.1 request without exactly one Host
 * (§3.2: MUST be answered 400).
 */
function malformedHead(req: IncomingMessage): boolean {
  if (req.httpVersionMajor !== 1) return true;
  let hosts = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') hosts++;
  return hosts > 1 || (hosts === 0 && req.httpVersionMinor === 1);
}

/**
 * Where a request is addressed: origin-form (`GET /x`, routed by Host) or
 * absolute-form (`GET http://payments.internal/x`, sent by clients using
 * HTTP_PROXY; its authority wins). null for anything else (400).
 */
export function parseTarget(req: IncomingMessage): { host: string; target: string } | null {
  const url = req.url ?? '/';
  if (url.charCodeAt(0) === 47 /* / */) return { host: hostOf(req.headers.host), target: url };
  const m = ABSOLUTE.exec(url);
  if (m === null) return null;
  // An http(s) URI with an empty host is invalid (RFC 9110 §4.2.1), and
  // userinfo is refused (§4.2.4): "http://svc.internal:80@evil/" must never
  // be routed as svc.internal.
  const authority = m[1] ?? '';
  if (authority === '' || authority.charCodeAt(0) === 58 /* : */ || authority.includes('@')) return null;
  const rest = m[2] ?? '';
  return { host: hostOf(m[1]), target: rest === '' ? '/' : rest.charCodeAt(0) === 63 /* ? */ ? '/' + rest : rest };
}

/** Host without port, lower-case; IPv6 literals keep their brackets. */
export function hostOf(value: string | undefined): string {
  if (value === undefined || value === '') return '';
  let end = value.length;
  if (value.charCodeAt(0) === 91 /* [ */) {
    const close = value.indexOf(']');
    end = close < 0 ? end : close + 1;
  } else {
    const colon = value.lastIndexOf(':');
    if (colon >= 0) end = colon;
  }
  // Strip userinfo in an absolute-form authority ("user@host").
  const at = value.lastIndexOf('@', end);
  const h = value.slice(at + 1, end);
  return h.toLowerCase();
}

/** The client's `x-request-id` if it is sane, else a new one. */
export function requestIdOf(req: IncomingMessage): string {
  const v = req.headers['x-request-id'];
  if (typeof v === 'string' && v.length > 0 && v.length <= 200 && SAFE_ID.test(v)) return v;
  return randomUUID();
}
const SAFE_ID = /^[\x21-\x7e]+$/;

/** Bytes of the request head as received (request line + header lines). */
function headSize(req: IncomingMessage): number {
  const raw = req.rawHeaders;
  let n = (req.method?.length ?? 0) + (req.url?.length ?? 0) + 12;
  for (let i = 0; i < raw.length; i++) n += raw[i]!.length + 2;
  return n;
}

function onClientError(err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  // An earlier pipelined request still has its answer pending (or streaming):
  // a raw error now would be read as that request's answer, or land inside
  // its body. Close instead; the client retries what went unanswered. (When
  // the pending answer is for the request whose body is malformed, it has
  // not started, and the 400 below is that request's answer.)
  const pending = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (pending != null && (pending.headersSent || pending.req.complete)) {
    socket.destroy();
    return;
  }
  const code: ErrorCode = err.code === 'HPE_HEADER_OVERFLOW' ? 'header_too_large' : 'bad_request';
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'HPE_HEADERS_TIMEOUT') {
    // Slow heads (slowloris): node's own 408.
    socket.end('HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    return;
  }
  writeRawError(socket, code, randomUUID());
}
