/**
 * The one rescue point: every reply — an upstream response, a static fallback,
 * or a failure — reaches the client through `respond`. Layers never write to
 * the response themselves (STYLE: one rescue point).
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ERRORS, REASON, errorBody, type ErrorCode } from '../errors.ts';
import { errorCodeFor } from '../pipeline/classify.ts';
import { GRPC, NO_GRPC_STATUS, encodeGrpcMessage, grpcStatusFromHttp, parseGrpcStatus } from '../pipeline/grpc.ts';
import type { Exchange } from '../pipeline/exchange.ts';
import type { Reply } from '../pipeline/handler.ts';

export function respond(ex: Exchange, reply: Reply): void {
  const res = ex.res;
  if (ex.clientAborted || res.headersSent || res.destroyed) {
    if (reply.type === 'upstream') reply.discard();
    return;
  }
  if (reply.type === 'upstream') {
    if (reply.status !== 0) {
      if (ex.fallback !== null) res.setHeader('x-breakwater-fallback', ex.fallback);
      reply.commitTo(ex);
      return;
    }
    // The last attempt produced no response: breakwater answers itself.
    // A body cut off for being over the limit is the client's fault, not the upstream's.
    if (ex.bodyTooLarge) {
      renderFailure(ex, 'request_too_large', 0, { connection: 'close' });
      return;
    }
    renderFailure(ex, errorCodeFor(reply.kind), 0);
    return;
  }
  if (reply.type === 'static') {
    ex.status = reply.status;
    if (ex.grpc) ex.grpcStatus = staticGrpcStatus(reply.status, reply.headers);
    const length = typeof reply.body === 'string' ? Buffer.byteLength(reply.body) : reply.body.length;
    // A HEAD answer says how long the GET's body is, and sends none (node drops it).
    ex.bytesOut = ex.method === 'HEAD' ? 0 : length;
    const fallback = reply.fallback === undefined ? 'response' : reply.fallback;
    const headers: Record<string, string | string[] | number> = { ...reply.headers, 'x-request-id': ex.requestId };
    if (fallback !== null) headers['x-breakwater-fallback'] = fallback;
    // No Content-Length on a 204 or 304 (RFC 9110 §8.6): a stored one may be served.
    if (reply.status !== 204 && reply.status !== 304) headers['content-length'] = length;
    res.writeHead(reply.status, headers);
    res.end(reply.body);
    return;
  }
  renderFailure(ex, reply.code, reply.retryAfterMs, reply.close ? CLOSE : undefined);
}

const CLOSE = Object.freeze({ connection: 'close' });

/**
 * Writes a generated response (SPEC §4.7) and records the code on the
 * exchange. A gRPC call gets it gRPC-shaped (SPEC §10.2): HTTP 200, no body,
 * `grpc-status` and `grpc-message` in the head (trailers-only), so a gRPC
 * client reads UNAVAILABLE, RESOURCE_EXHAUSTED... instead of an HTTP status
 * it cannot parse; `x-breakwater-error` and `retry-after` as for HTTP.
 */
export function renderFailure(ex: Exchange, code: ErrorCode, retryAfterMs: number, extraHeaders?: Record<string, string>): void {
  const spec = ERRORS[code];
  ex.error = code;
  if (spec.flag !== null) ex.flag(spec.flag);
  if (ex.grpc) {
    renderGrpcFailure(ex, code, retryAfterMs, extraHeaders);
    return;
  }
  ex.status = spec.status;
  const body = errorBody(code, ex.upstream, ex.route, ex.requestId);
  ex.bytesOut = Buffer.byteLength(body);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'x-breakwater-error': code,
    'x-request-id': ex.requestId,
    'content-length': ex.bytesOut,
    ...extraHeaders,
  };
  const ra = retryAfter(code, retryAfterMs);
  if (ra !== null) headers['retry-after'] = ra;
  if (ex.fallback !== null) headers['x-breakwater-fallback'] = ex.fallback;
  const res: ServerResponse = ex.res;
  res.writeHead(spec.status, headers);
  res.end(body);
}

/** SPEC §10.2: the gRPC status of each generated answer. */
export function grpcStatusFor(code: ErrorCode): number {
  switch (code) {
    case 'rate_limited':
      return GRPC.RESOURCE_EXHAUSTED;
    case 'timeout':
      return GRPC.DEADLINE_EXCEEDED;
    case 'no_route':
      return GRPC.UNIMPLEMENTED;
    case 'bad_request':
      return GRPC.INTERNAL;
    default:
      return GRPC.UNAVAILABLE;
  }
}

/** Pre-encoded `grpc-message` per code: the catalogue's message, with its code as a prefix a log search finds. */
const GRPC_MESSAGES = Object.freeze(
  Object.fromEntries(Object.values(ERRORS).map((e) => [e.code, encodeGrpcMessage(`breakwater ${e.code}: ${e.message}`)])) as Record<ErrorCode, string>,
);

function renderGrpcFailure(ex: Exchange, code: ErrorCode, retryAfterMs: number, extraHeaders?: Record<string, string>): void {
  const grpc = grpcStatusFor(code);
  ex.status = 200;
  ex.grpcStatus = grpc;
  ex.bytesOut = 0;
  // Headers set one by one and `end()` with no body, not writeHead(): on an
  // HTTP/2 stream that is what puts END_STREAM on the HEADERS frame, i.e. a
  // real trailers-only response (gRPC clients read the status of a head
  // without END_STREAM as metadata, then fail the call as INTERNAL). Over
  // HTTP/1.1 node adds `content-length: 0`.
  const res = ex.res;
  res.statusCode = 200;
  res.setHeader('content-type', 'application/grpc');
  res.setHeader('grpc-status', String(grpc));
  res.setHeader('grpc-message', GRPC_MESSAGES[code]);
  res.setHeader('x-breakwater-error', code);
  res.setHeader('x-request-id', ex.requestId);
  const ra = retryAfter(code, retryAfterMs);
  if (ra !== null) res.setHeader('retry-after', ra);
  if (ex.fallback !== null) res.setHeader('x-breakwater-fallback', ex.fallback);
  if (extraHeaders !== undefined) for (const name in extraHeaders) res.setHeader(name, extraHeaders[name]!);
  res.end();
}

/** A static fallback answer to a gRPC call: its own `grpc-status`, else what a gRPC client derives from its HTTP status. */
function staticGrpcStatus(status: number, headers: Readonly<Record<string, string | string[]>>): number | null {
  const g = parseGrpcStatus(headers['grpc-status']);
  if (g !== NO_GRPC_STATUS) return g;
  return status === 200 ? null : grpcStatusFromHttp(status);
}

/** What a tunnel (WebSocket, CONNECT) knows when it refuses: its route and upstream, and the guard's Retry-After. */
export interface RawErrorContext {
  readonly route?: string;
  readonly upstream?: string;
  readonly retryAfterMs?: number;
}

/**
 * A generated response written straight onto a socket, for requests node's
 * parser rejected before a ServerResponse existed (400, 431) and for CONNECT.
 * The connection is closed after it. Returns the body's length in bytes, or
 * -1 when the socket could no longer be written (the client is gone).
 */
export function writeRawError(socket: Socket, code: ErrorCode, requestId: string, at?: RawErrorContext): number {
  if (!socket.writable) {
    socket.destroy();
    return -1;
  }
  const spec = ERRORS[code];
  const body = errorBody(code, at?.upstream ?? null, at?.route ?? null, requestId);
  const length = Buffer.byteLength(body);
  const retryAfterMs = at?.retryAfterMs ?? 0;
  const ra = retryAfter(code, retryAfterMs);
  const retryAfterLine = ra === null ? '' : `retry-after: ${ra}\r\n`;
  socket.end(
    `HTTP/1.1 ${spec.status} ${REASON[spec.status] ?? 'Error'}\r\n` +
      'content-type: application/json\r\n' +
      `x-breakwater-error: ${code}\r\n` +
      `x-request-id: ${requestId}\r\n` +
      retryAfterLine +
      `content-length: ${length}\r\n` +
      'connection: close\r\n\r\n' +
      body,
  );
  socket.destroySoon?.();
  return length;
}

/** Retry-After in whole seconds, rounded up (SPEC §4.5, §4.7): always for rate_limited and circuit_open, else when a wait is known. */
function retryAfter(code: ErrorCode, ms: number): string | null {
  return ms > 0 || code === 'rate_limited' || code === 'circuit_open' ? String(Math.max(1, Math.ceil(ms / 1000))) : null;
}
