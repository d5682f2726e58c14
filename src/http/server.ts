/**
 * The listener edge (SPEC §3): accepts connections, rejects what is malformed
 * (400/413/431), answers CONNECT (for port 80 an HTTP tunnel, for another
 * port a byte tunnel where a route allows it, else 405), routes, and
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
 *
 * The same port serves HTTP/2 with prior knowledge (h2c): a connection that
 * opens with the HTTP/2 preface goes to http/h2-edge.ts, and each of its
 * streams is a request that takes the same checks, routes and route stacks
 * below — streams are independent, so the one-at-a-time rule is HTTP/1.1's
 * alone.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { http } from './node-http.ts';
import net, { type Socket } from 'node:net';
import type { ListenerAddress, ListenerConfig } from '../config/types.ts';
import type { ErrorCode } from '../errors.ts';
import { Exchange } from '../pipeline/exchange.ts';
import { onClientError } from './client-error.ts';
import { kActive, kAuthority, kClosing, kEx, kWaiting, type EdgeSocket, type TrackedResponse } from './edge-socket.ts';
import { H2Sessions, h2Head, sniffPreface } from './h2-edge.ts';
import { hasRequestBody, hasUnderscoreHeader, headSize, isWebSocketUpgrade, malformedHead, parseTarget, requestIdOf } from './request-head.ts';
import { renderFailure } from './respond.ts';
import type { ListenerRoutes } from './listener-routes.ts';
import { connectRequest, upgradeRequest, type Takeover } from './takeover.ts';
import { BindError } from './bind-error.ts';

export { BindError };

export type { ExchangeObserver, ListenerRoutes, RouteEntry } from './listener-routes.ts';


/** Parser ceiling for request heads; the listener's own `headerSize` is enforced below it, exactly. */
const PARSER_HEADER_LIMIT = 64 * 1024;

export class ListenerServer {
  readonly address: ListenerAddress;
  readonly server: Server;
  /** Once set, new requests get `draining` and their connections close. */
  draining = false;
  inflight = 0;
  #boundPort = 0;
  readonly #sockets = new Set<Socket>();
  #idleWaiters: (() => void)[] = [];
  #current!: ListenerRoutes;
  /** node's own HTTP/1.1 connection handler, reached once a connection is known not to be HTTP/2. */
  readonly #http1: (socket: Socket) => void;
  readonly #h2: H2Sessions;
  /** What the Upgrade and CONNECT handlers (http/takeover.ts) read of this listener. */
  readonly #takeover: Takeover = {
    routes: () => this.#current,
    draining: () => this.draining,
    http1: (socket) => this.#http1(socket),
  };

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
    // This server accepts (its 'listening' starts node's headersTimeout and
    // requestTimeout checks), but a connection reaches node's own HTTP/1.1
    // handler only once its first bytes are known not to be the HTTP/2
    // preface (http/h2-edge.ts).
    const [http1] = this.server.listeners('connection') as ((socket: Socket) => void)[];
    this.server.removeListener('connection', http1!);
    this.#http1 = http1!.bind(this.server);
    this.#h2 = new H2Sessions(runtime.config.limits, this.#onH2Request);
    this.server.on('connection', (s: Socket) => {
      this.#sockets.add(s);
      s.once('close', () => this.#sockets.delete(s));
      sniffPreface(s, this.#current.config.limits.headerTimeout, this.#handOver);
    });
    this.server.on('clientError', (err: Error, socket: Socket) => onClientError(err, socket, this.#current));
    // CONNECT and Upgrade take the socket away from HTTP: each waits until
    // the answers to the requests before it on the connection are out.
    this.server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      this.#afterPending(socket as EdgeSocket, () => connectRequest(this.#takeover, req, socket as EdgeSocket, head));
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      this.#afterPending(socket as EdgeSocket, () => upgradeRequest(this.#takeover, req, socket as EdgeSocket, head));
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
    this.#h2.update(runtime.config.limits);
  }

  #handOver = (socket: Socket, h2: boolean): void => {
    if (!h2) return this.#http1(socket);
    // An HTTP/2 connection is its session's: drained and cut through it.
    this.#sockets.delete(socket);
    this.#h2.accept(socket);
  };

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
    this.#h2.goaway();
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
    // HTTP/2 sessions whose streams are all done have closed after their
    // GOAWAY; streams still open past the timeout are cut with their session.
    if (this.inflight > 0) this.#h2.destroy();
    // http.Server#close, now that every connection is ending: the only way to
    // stop node's connections-checking interval, which would otherwise keep
    // this listener (and the config it served) alive after a reload removed it.
    this.server.close();
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
    res.once('close', () => this.#onClose(res as TrackedResponse, lr, socket));
    // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
    // framing; answer it, then close.
    if (req.httpVersionMinor === 0 && req.headers['transfer-encoding'] !== undefined) res.shouldKeepAlive = false;
    // An Upgrade other than WebSocket (h2c...) is served as plain HTTP/1.1,
    // then the connection closes: node's parser stops reading a connection
    // after any Upgrade head, so a request behind it would never be answered.
    if (req.headers.upgrade !== undefined) res.shouldKeepAlive = false;
    this.#serve(ex, lr, bad ? 'bad_request' : null);
  }

  /**
   * An HTTP/2 stream: node's compatibility objects have what the exchange
   * reads of an HTTP/1.1 request and response (h2-edge.ts lists it), with
   * HTTP/2 flow control behind write() and 'drain'.
   */
  #onH2Request = (req: Http2ServerRequest, res: Http2ServerResponse): void => {
    // A stream the client reset before node handed it over (rapid reset:
    // HEADERS then RST_STREAM in one burst) is gone, session and all:
    // nothing to answer, count or forward.
    if (req.stream.destroyed || req.stream.session === undefined) return;
    const lr = this.#current;
    const head = h2Head(req);
    const r = req as unknown as IncomingMessage;
    const ex = new Exchange(r, res as unknown as ServerResponse, lr.config.name, requestIdOf(r), req.method, head === null ? '/' : head.target, head === null ? '' : head.host);
    const session = this.#h2.opened(req);
    res.once('close', () => {
      this.#h2.closed(session);
      // A stream reset before its answer ended is 'aborted'; node ends its
      // writable side then, so writableFinished alone does not tell.
      this.#done(ex, lr, res.stream.aborted || !res.writableFinished);
    });
    // CONNECT tunnels are HTTP/1.1's (SPEC §10.3); over HTTP/2, refused.
    this.#serve(ex, lr, head === null ? 'bad_request' : req.method === 'CONNECT' ? 'method_not_allowed' : null);
  };

  /** Both protocols: count the exchange, refuse what the listener refuses, route the rest. */
  #serve(ex: Exchange, lr: ListenerRoutes, malformed: ErrorCode | null): void {
    const req = ex.req;
    this.inflight++;
    lr.observer.started(ex);
    if (this.draining) return this.#reject(ex, 'draining', true);
    if (malformed !== null) return this.#reject(ex, malformed, true);
    if (headSize(req) > lr.config.limits.headerSize) return this.#reject(ex, 'header_too_large', true);
    if (lr.config.underscoreHeaders === 'reject' && hasUnderscoreHeader(req)) return this.#reject(ex, 'bad_request', true);
    // A declared body over the limit is refused before any of it is read.
    const bodySize = lr.config.limits.bodySize;
    if (bodySize !== null && Number(req.headers['content-length'] ?? 0) > bodySize) return this.#reject(ex, 'request_too_large', true);
    const target = ex.target;
    const q = target.indexOf('?');
    const route = lr.router.match(ex.host, q < 0 ? target : target.slice(0, q), ex.method, req);
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
    this.#done(res[kEx]!, lr, !res.writableFinished);
    this.#next(res, socket);
  }

  /** An exchange is over, whatever its protocol: release, count, log; a drain may be waiting for it. */
  #done(ex: Exchange, lr: ListenerRoutes, cutShort: boolean): void {
    ex.finish(cutShort);
    this.inflight--;
    lr.observer.finished(ex);
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
