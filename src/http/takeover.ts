/**
 * Requests that take the socket away from HTTP: WebSocket upgrades (handed
 * to their route's tunnel, http/upgrade.ts) and CONNECT (SPEC §10.3). The
 * listener edge (http/server.ts) calls these once the answers to every
 * earlier request on the connection are out.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { connectAuthority } from './connect-tunnel.ts';
import { kActive, kAuthority, kWaiting, type EdgeSocket } from './edge-socket.ts';
import { connectHost80, hasRequestBody, hasUnderscoreHeader, headSize, malformedHead, parseTarget, requestIdOf } from './request-head.ts';
import { refuse } from './refused.ts';
import type { ListenerRoutes } from './listener-routes.ts';

/** What these handlers read of their listener. */
export interface Takeover {
  routes(): ListenerRoutes;
  draining(): boolean;
  /** Serves a socket as a new HTTP/1.1 connection (a CONNECT host:80 tunnel). */
  http1(socket: Socket): void;
}

export function upgradeRequest(l: Takeover, req: IncomingMessage, socket: EdgeSocket, head: Buffer): void {
  const rid = requestIdOf(req);
  const lr = l.routes();
  const t = malformedHead(req) || socket[kAuthority] !== undefined ? null : parseTarget(req);
  // A refusal logs the path as every request's line does: the origin-form
  // target, '/' for one refused as malformed (never userinfo, never a raw URL).
  const path = t === null ? '/' : t.target;
  if (l.draining()) return refuse(lr, socket, req, path, 'draining', rid);
  const config = lr.config;
  if (t === null) return refuse(lr, socket, req, path, 'bad_request', rid);
  if (headSize(req) > config.limits.headerSize) return refuse(lr, socket, req, path, 'header_too_large', rid);
  // A body on an Upgrade request would be read as tunnel data by one side
  // and as a request body by the other: a desync. Refused.
  if (hasRequestBody(req)) return refuse(lr, socket, req, path, 'bad_request', rid);
  if (config.underscoreHeaders === 'reject' && hasUnderscoreHeader(req)) return refuse(lr, socket, req, path, 'bad_request', rid);
  const q = t.target.indexOf('?');
  const route = lr.router.match(t.host, q < 0 ? t.target : t.target.slice(0, q), req.method ?? 'GET', req);
  if (route === null) return refuse(lr, socket, req, path, 'no_route', rid);
  route.value.upgrade(req, socket, head, rid);
}

/**
 * CONNECT (SPEC §10.3). `CONNECT host:80` where a route of this listener
 * matches `host` opens a tunnel in which breakwater itself serves HTTP/1.1:
 * every request inside is routed and handled like an absolute-form request
 * for that host (Node's fetch with NODE_USE_ENV_PROXY=1 and undici's
 * ProxyAgent reach http:// URLs so). `CONNECT host:PORT` for another port
 * is a byte tunnel (http/connect-tunnel.ts) where a route with
 * allowConnect matches `host` and `host:PORT` is one of its upstream's
 * endpoints. Anything else is 405, nothing dialled.
 */
export function connectRequest(l: Takeover, req: IncomingMessage, socket: EdgeSocket, head: Buffer): void {
  const rid = requestIdOf(req);
  const lr = l.routes();
  const a = socket[kAuthority] === undefined && !malformedHead(req) ? connectAuthority(req.url ?? '') : null;
  // Logged: the authority when it is one (host:port, nothing else), else null.
  const path = a === null ? null : (req.url ?? null);
  if (l.draining()) return refuse(lr, socket, req, path, 'draining', rid);
  if (a !== null && a.port !== 80) {
    const route = lr.router.findByHost(a.host, (r) => r.connect?.accepts(a.host, a.port) === true);
    if (route === null) return refuse(lr, socket, req, path, 'method_not_allowed', rid);
    return route.connect!.open(socket, head, a.host, a.port, rid);
  }
  const host = a === null ? null : connectHost80(req.url ?? '');
  if (host === null || !lr.router.hasHost(host)) return refuse(lr, socket, req, path, 'method_not_allowed', rid);
  socket.setTimeout(0);
  socket[kAuthority] = host;
  socket[kActive] = null;
  socket[kWaiting] = null;
  socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
  if (head.length > 0) socket.unshift(head);
  // The same server parses the tunnel's bytes as a new HTTP/1.1 connection.
  l.http1(socket);
}

