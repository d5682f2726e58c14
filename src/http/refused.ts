/**
 * Requests answered straight on the socket, with no ServerResponse: heads
 * node's parser refused (400, 431, 408 for a head or request that arrived
 * too slowly) and Upgrade/CONNECT requests refused before a route took them
 * (draining, malformed, no route, CONNECT not allowed). Each is still a
 * finished request: one access line and one `requests_total` sample under
 * the empty route, like every unrouted request (SPEC §5, §8), carrying the
 * request id the client read in its answer. A parser error has no method or
 * path to report: both are "" in its line (strings still, so a log pipeline
 * such as `jq 'select(.path | startswith("/api"))'` never meets a null;
 * method `OTHER` in metrics).
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { ERRORS, type ErrorCode } from '../errors.ts';
import type { AccessFields } from '../observability/access-log.ts';
import type { ListenerRoutes } from './listener-routes.ts';
import { writeRawError } from './respond.ts';

const NO_REQUEST = Object.freeze({ headers: Object.freeze({}) });
export const TIMEOUT_408 = 'HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';

/**
 * Answers `code` on the raw socket and records the request. `req` null: the
 * parser refused it before there was one. `path` is what its line shows:
 * the origin-form target as the edge parsed it, never the raw request line.
 */
export function refuse(lr: ListenerRoutes, socket: Socket, req: IncomingMessage | null, path: string | null, code: ErrorCode, requestId: string): void {
  const client = socket.remoteAddress ?? null;
  const bytesOut = writeRawError(socket, code, requestId);
  const flag = ERRORS[code].flag;
  record(lr, req, path, requestId, client, code, bytesOut < 0 ? 499 : ERRORS[code].status, Math.max(bytesOut, 0), flag);
}

/**
 * A head or request that arrived too slowly (the listener's headerTimeout or
 * requestTimeout): 408 and close. Logged with error `request_timeout`, a
 * code of the access log only (the answer carries no breakwater body).
 */
export function refuseSlow(lr: ListenerRoutes, socket: Socket, requestId: string): void {
  const client = socket.remoteAddress ?? null;
  const written = socket.writable;
  if (written) socket.end(TIMEOUT_408);
  else socket.destroy();
  record(lr, null, null, requestId, client, 'request_timeout', written ? 408 : 499, 0, null);
}

function record(
  lr: ListenerRoutes,
  req: IncomingMessage | null,
  path: string | null,
  requestId: string,
  client: string | null,
  error: string,
  status: number,
  bytesOut: number,
  flag: string | null,
): void {
  const flags = status === 499 ? (flag === null ? ['client_abort'] : [flag, 'client_abort']) : flag === null ? null : [flag];
  const line: AccessFields = {
    req: req ?? NO_REQUEST,
    trace: null,
    requestId,
    listener: lr.config.name,
    route: null,
    upstream: null,
    endpoint: null,
    method: req?.method ?? '',
    target: path ?? '',
    grpcStatus: null,
    upstreamMs: null,
    attempts: 0,
    tries: null,
    bytesIn: 0,
    bytesOut,
    client,
    flags,
    error,
  };
  lr.observer.refused(line, status);
}
