/**
 * The listener edge (SPEC §3): accepts connections, rejects what is malformed
 * (400/413/431), answers CONNECT (a tunnel for port 80, else 405), routes, and
 * hands each request to its route. A ListenerServer outlives config reloads:
 * when a reload keeps its address, only `current` — the compiled routes and
 * policies — is swapped, so kept-alive client connections use the new routes
 * at once.
 *
 * One connection, one request at a time. Node's parser reads pipelined
 * requests as fast as they arrive; the edge starts each only once the answer
 * before it is over, as nginx does. That one rule keeps every answer in
 * request order whichever part of breakwater produces it (RFC 9112 §9.3:
 * a CONNECT or Upgrade answer never overtakes a pending response), and means
 * that once an answer closes the connection, no request behind it is ever
 * processed (§9.6). A connection that does not pipeline pays one property
 * read per request.
 */
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type Socket } from 'node:net';
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
export interface ListenerRoutes {
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
type TrackedResponse = ServerResponse & { [kEx]?: Exchange; _last?: boolean };

const kActive = Symbol('breakwater.active');
const kWaiting = Symbol('breakwater.waiting');
const kClosing = Symbol('breakwater.closing');
const kAuthority = Symbol('breakwater.tunnelAuthority');
/** Work that waits for the answer before it on the same connection: a pipelined request, or a CONNECT/Upgrade. */
type Waiting = [IncomingMessage, ServerResponse] | (() => void);
/** A client connection as the edge tracks it. */
interface EdgeSocket extends Socket {
  /** The response being produced on this connection, if any. */
  [kActive]?: ServerResponse | null;
  [kWaiting]?: Waiting[] | null;
  /** An answer on this connection closes it: nothing after it is processed. */
  [kClosing]?: boolean;
  /** Set inside a `CONNECT host:80` tunnel: every request in it is for this host. */
  [kAuthority]?: string;
}

/** Parser ceiling for request heads; the listener's own `headerSize` is enforced below it, exactly. */
const PARSER_HEADER_LIMIT = 64 * 1024;

export class ListenerServer {
  readonly address: ListenerAddress;
  readonly server: http.Server;
  /** Once set, new requests get `draining` and their connections close. */
  draining = false;
  inflight = 0;
  #boundPort = 0;
  readonly #sockets = new Set<Socket>();
  #idleWaiters: (() => void)[] = [];
  #current!: ListenerRoutes;

  constructor(runtime: ListenerRoutes) {
    this.current = runtime;
    this.address = runtime.config.address;
    const t = arrivalTimeouts(runtime.config);
    this.server = http.createServer(
      {
        maxHeaderSize: Math.max(PARSER_HEADER_LIMIT, runtime.config.limits.headerSize + 1024),
        keepAliveTimeout: 5_000,
        // Slow heads and slow requests (slowloris, a body trickled a byte at
        // a time) are bounded by the listener's limits; node answers 408.
        headersTimeout: t.headers,
        requestTimeout: t.request,
        // How often node looks for connections past those bounds (its
        // built-in 30 s would let a 2 s bound run to 32 s).
        connectionsCheckingInterval: 1_000,
        noDelay: true,
        // Host is checked below, so a missing one gets the §4.7 bad_request body, not node's bare 400.
        requireHostHeader: false,
        // Only WebSocket upgrades leave HTTP; any other Upgrade (h2c, say) is
        // served as the plain HTTP/1.1 request it also is (RFC 9110 §7.8:
        // a server may ignore Upgrade). Node ≥ 24.9.
        shouldUpgradeCallback: isWebSocketUpgrade,
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
    // CONNECT and Upgrade take the socket away from HTTP: each waits until
    // the answers to the requests before it on the connection are out.
    this.server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      this.#afterPending(socket as EdgeSocket, () => this.#connect(req, socket as EdgeSocket, head));
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      this.#afterPending(socket as EdgeSocket, () => this.#upgrade(req, socket as EdgeSocket, head));
    });
  }

  get current(): ListenerRoutes {
    return this.#current;
  }

  /** A reload swaps the routes; the arrival bounds of a kept socket follow the new limits. */
  set current(runtime: ListenerRoutes) {
    this.#current = runtime;
    if (this.server === undefined) return;
    const t = arrivalTimeouts(runtime.config);
    this.server.headersTimeout = t.headers;
    this.server.requestTimeout = t.request;
  }

  #upgrade(req: IncomingMessage, socket: EdgeSocket, head: Buffer): void {
    const rid = requestIdOf(req);
    if (this.draining) return writeRawError(socket, 'draining', rid);
    const config = this.#current.config;
    const t = malformedHead(req) || socket[kAuthority] !== undefined ? null : parseTarget(req);
    if (t === null) return writeRawError(socket, 'bad_request', rid);
    if (headSize(req) > config.limits.headerSize) return writeRawError(socket, 'header_too_large', rid);
    // A body on an Upgrade request would be read as tunnel data by one side
    // and as a request body by the other: a desync. Refused.
    if (hasRequestBody(req)) return writeRawError(socket, 'bad_request', rid);
    if (config.underscoreHeaders === 'reject' && hasUnderscoreHeader(req)) return writeRawError(socket, 'bad_request', rid);
    const q = t.target.indexOf('?');
    const route = this.#current.router.match(t.host, q < 0 ? t.target : t.target.slice(0, q), req.method ?? 'GET', req);
    if (route === null) return writeRawError(socket, 'no_route', rid);
    route.value.upgrade(req, socket, head, rid);
  }

  /**
   * CONNECT (SPEC §10.3). `CONNECT host:80` where a route of this listener
   * matches `host` opens a tunnel in which breakwater itself serves HTTP/1.1:
   * every request inside is routed and handled like an absolute-form request
   * for that host (Node's fetch with NODE_USE_ENV_PROXY=1 and undici's
   * ProxyAgent reach http:// URLs so). Anything else is 405, nothing dialled.
   */
  #connect(req: IncomingMessage, socket: EdgeSocket, head: Buffer): void {
    const rid = requestIdOf(req);
    if (this.draining) return writeRawError(socket, 'draining', rid);
    const host = socket[kAuthority] === undefined && !malformedHead(req) ? connectHost80(req.url ?? '') : null;
    if (host === null || !this.#current.router.hasHost(host)) return writeRawError(socket, 'method_not_allowed', rid);
    socket.setTimeout(0);
    socket[kAuthority] = host;
    socket[kActive] = null;
    socket[kWaiting] = null;
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) socket.unshift(head);
    // The same server parses the tunnel's bytes as a new HTTP connection.
    this.server.emit('connection', socket);
  }

  /** Run `fn` once the answers to every earlier request on this connection are out. */
  #afterPending(socket: EdgeSocket, fn: () => void): void {
    if (socket[kActive] == null) fn();
    else (socket[kWaiting] ??= []).push(fn);
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
   * Drain (SPEC §7): stop accepting; kept-alive connections stay open while
   * requests are in flight, and a request that arrives on one is answered
   * `503 draining` with `connection: close` — a client can tell that from a
   * crash, and retry even a POST elsewhere. Resolves when in-flight requests
   * are done or `timeoutMs` passed; then idle connections are closed with a
   * FIN and whatever is still busy is cut.
   */
  async close(timeoutMs: number): Promise<void> {
    this.draining = true;
    // net.Server#close, not http.Server#close: the latter (node ≥ 19) also
    // closes every idle kept-alive connection at once.
    net.Server.prototype.close.call(this.server);
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
    for (const s of this.#sockets) {
      // Idle: a FIN once what was written is flushed. Busy past the timeout: cut.
      if ((s as EdgeSocket)[kActive] == null) s.destroySoon();
      else s.destroy();
    }
  }

  #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const socket = req.socket as EdgeSocket;
    if (socket[kClosing] === true) {
      // An earlier answer on this connection closes it: this request is never processed.
      req.resume();
      return;
    }
    if (socket[kActive] != null) {
      (socket[kWaiting] ??= []).push([req, res]);
      return;
    }
    this.#start(req, res, socket);
  };

  #start(req: IncomingMessage, res: ServerResponse, socket: EdgeSocket): void {
    socket[kActive] = res;
    const lr = this.#current;
    const method = req.method ?? 'GET';
    const tunnel = socket[kAuthority];
    const t = malformedHead(req) ? null : parseTarget(req);
    // Inside a CONNECT tunnel every request is for the tunnel's host.
    const bad = t === null || (tunnel !== undefined && t.host !== tunnel);
    const target = t === null ? '/' : t.target;
    const host = t === null ? '' : t.host;
    const ex = new Exchange(req, res, lr.config.name, requestIdOf(req), method, target, host);
    (res as TrackedResponse)[kEx] = ex;
    this.inflight++;
    lr.observer.started(ex);
    res.once('close', () => this.#onClose(res as TrackedResponse, lr, socket));
    // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
    // framing; answer it, then close.
    if (req.httpVersionMinor === 0 && req.headers['transfer-encoding'] !== undefined) res.shouldKeepAlive = false;
    // An Upgrade other than WebSocket (h2c...) is served as plain HTTP/1.1,
    // then the connection closes: node's parser stops reading a connection
    // after any Upgrade head, so a request behind it would never be answered.
    if (req.headers.upgrade !== undefined) res.shouldKeepAlive = false;

    if (this.draining) return this.#reject(ex, 'draining', true);
    if (bad) return this.#reject(ex, 'bad_request', true);
    if (headSize(req) > lr.config.limits.headerSize) return this.#reject(ex, 'header_too_large', true);
    if (lr.config.underscoreHeaders === 'reject' && hasUnderscoreHeader(req)) return this.#reject(ex, 'bad_request', true);
    // A declared body over the limit is refused before any of it is read.
    const bodySize = lr.config.limits.bodySize;
    if (bodySize !== null && Number(req.headers['content-length'] ?? 0) > bodySize) return this.#reject(ex, 'request_too_large', true);
    const q = target.indexOf('?');
    const route = lr.router.match(host, q < 0 ? target : target.slice(0, q), method, req);
    if (route === null) {
      lr.observer.unrouted(ex);
      // A body still on its way would have to be read to keep the
      // connection, at the client's pace: close instead.
      return this.#reject(ex, 'no_route', hasRequestBody(req) && !req.complete);
    }
    route.value.handle(ex);
  }

  #reject(ex: Exchange, code: ErrorCode, close: boolean): void {
    // Drain whatever body the client sends so the connection stays usable.
    ex.req.resume();
    renderFailure(ex, code, 0, close ? { connection: 'close' } : undefined);
  }

  #onClose(res: TrackedResponse, lr: ListenerRoutes, socket: EdgeSocket): void {
    const ex = res[kEx]!;
    ex.finish(!res.writableFinished);
    this.inflight--;
    lr.observer.finished(ex);
    this.#next(res, socket);
    if (this.inflight === 0 && this.#idleWaiters.length > 0) {
      const w = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const f of w) f();
    }
  }

  /** An answer is over: start what waits behind it on the connection, unless the connection is closing. */
  #next(res: TrackedResponse, socket: EdgeSocket): void {
    if (socket[kActive] === res) socket[kActive] = null;
    if (res._last === true || !res.writableFinished || socket.destroyed || !socket.writable) {
      socket[kClosing] = true;
      const w = socket[kWaiting];
      socket[kWaiting] = null;
      if (w != null) for (const item of w) if (typeof item !== 'function') item[0].resume();
      return;
    }
    const w = socket[kWaiting];
    if (w == null || w.length === 0) return;
    const item = w.shift()!;
    if (typeof item === 'function') item();
    else this.#start(item[0], item[1], socket);
  }
}

/** The bounds node enforces on a request's arrival: its head, and the whole request. */
function arrivalTimeouts(config: ListenerConfig): { headers: number; request: number } {
  const { headerTimeout, requestTimeout } = config.limits;
  // node requires headersTimeout ≤ requestTimeout when the latter is on.
  return { headers: requestTimeout > 0 ? Math.min(headerTimeout, requestTimeout) : headerTimeout, request: requestTimeout };
}

/** RFC 9110 §7.8: Upgrade is ignored in an HTTP/1.0 request. */
function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const u = req.headers.upgrade;
  return u !== undefined && req.httpVersionMinor === 1 && /(?:^|,)\s*websocket\s*(?:,|$)/i.test(u);
}

/** Does the request carry a body? (RFC 9112 §6.3) */
function hasRequestBody(req: IncomingMessage): boolean {
  const h = req.headers;
  if (h['transfer-encoding'] !== undefined) return true;
  const cl = h['content-length'];
  return cl !== undefined && Number(cl) > 0;
}

export function hasUnderscoreHeader(req: IncomingMessage): boolean {
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.includes('_')) return true;
  return false;
}

/**
 * The host of a `CONNECT host:80` target, lower-case; null for any other
 * port or a malformed authority (RFC 9110 §9.3.6: authority-form, port required).
 */
export function connectHost80(target: string): string | null {
  const colon = target.lastIndexOf(':');
  if (colon <= 0 || target.slice(colon + 1) !== '80') return null;
  const host = target.slice(0, colon);
  return validHost(host) ? hostOf(host) : null;
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
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') {
      hosts++;
      // RFC 9110 §7.2 / RFC 9112 §3.2: an invalid Host value is answered 400,
      // never routed (`evil.example@api.test`, `a,b`, `a/x`, `a:junk`).
      if (!validHostHeader(raw[i + 1]!)) return true;
    }
  }
  return hosts > 1 || (hosts === 0 && req.httpVersionMinor === 1);
}

/**
 * `uri-host [ ":" port ]` as breakwater accepts it: a DNS-style name
 * (letters, digits, `-`, `.`, `_`, `~`, `%`-escapes) or an IPv4 address, or an
 * IPv6 literal in brackets; an optional port of 1–5 digits up to 65535. No
 * userinfo, no sub-delims (`,` `;` `!` …), no path, no whitespace, no
 * obs-text. The empty value (HTTP/1.0 without authority) is allowed.
 */
const HOST_NAME = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%-]+)$/;
export function validHost(host: string): boolean {
  return host.length > 0 && host.length <= 255 && HOST_NAME.test(host);
}

export function validHostHeader(value: string): boolean {
  if (value === '') return true;
  let host = value;
  if (value.charCodeAt(0) === 91 /* [ */) {
    const close = value.indexOf(']');
    if (close < 0) return false;
    host = value.slice(0, close + 1);
    const rest = value.slice(close + 1);
    return validHost(host) && (rest === '' || validPort(rest.slice(1), rest));
  }
  const colon = value.indexOf(':');
  if (colon >= 0) {
    if (!validPort(value.slice(colon + 1), value.slice(colon))) return false;
    host = value.slice(0, colon);
  }
  return validHost(host);
}

function validPort(port: string, withColon: string): boolean {
  if (withColon.charCodeAt(0) !== 58 /* : */) return false;
  if (port.length === 0 || port.length > 5) return false;
  for (let i = 0; i < port.length; i++) {
    const c = port.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return Number(port) <= 65535;
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
  if (authority === '' || authority.charCodeAt(0) === 58 /* : */ || !validHostHeader(authority)) return null;
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
  const s = socket as EdgeSocket;
  const active = s[kActive];
  if (active != null) {
    if (active.headersSent || active.req.complete) {
      // An earlier request's answer is pending or streaming. It goes out
      // first — the upstream may have executed that request, so dropping
      // its answer would leave a client unable to tell whether a POST ran.
      // Bytes after a request that closes the connection need no answer;
      // anything else malformed gets its error after the earlier answers,
      // then the connection closes.
      if (err.code === 'HPE_CLOSED_CONNECTION') return;
      const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'HPE_HEADERS_TIMEOUT';
      const code = clientErrorCode(err);
      // A request that arrived too slowly behind an answer already under way: close once it is out.
      (s[kWaiting] ??= []).push(timedOut ? () => socket.destroySoon() : () => writeRawError(socket, code, randomUUID()));
      return;
    }
    // The request whose body is malformed is the one being answered: its
    // answer has not started, and the error below is that answer.
  }
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'HPE_HEADERS_TIMEOUT') {
    // Slow heads and slow requests: 408 and close.
    socket.end('HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    return;
  }
  writeRawError(socket, clientErrorCode(err), randomUUID());
}

function clientErrorCode(err: NodeJS.ErrnoException): ErrorCode {
  return err.code === 'HPE_HEADER_OVERFLOW' ? 'header_too_large' : 'bad_request';
}
