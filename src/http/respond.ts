/**
 * The one rescue point: every reply — an upstream response, a static fallback,
 * or a failure — reaches the client through `respond`. Layers never write to
 * the response themselves (STYLE: one rescue point).
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ERRORS, REASON, errorBody, type ErrorCode } from '../errors.ts';
import { errorCodeFor } from '../pipeline/classify.ts';
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
    ex.bytesOut = Buffer.byteLength(reply.body);
    const headers: Record<string, string | number> = { ...reply.headers, 'x-breakwater-fallback': 'response', 'x-request-id': ex.requestId, 'content-length': ex.bytesOut };
    res.writeHead(reply.status, headers);
    res.end(reply.body);
    return;
  }
  renderFailure(ex, reply.code, reply.retryAfterMs, reply.close ? CLOSE : undefined);
}

const CLOSE = Object.freeze({ connection: 'close' });

/** Writes a generated response (SPEC §4.7) and records the code on the exchange. */
export function renderFailure(ex: Exchange, code: ErrorCode, retryAfterMs: number, extraHeaders?: Record<string, string>): void {
  const spec = ERRORS[code];
  ex.error = code;
  ex.status = spec.status;
  if (spec.flag !== null) ex.flag(spec.flag);
  const body = errorBody(code, ex.upstream, ex.route, ex.requestId);
  ex.bytesOut = Buffer.byteLength(body);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'x-breakwater-error': code,
    'x-request-id': ex.requestId,
    'content-length': ex.bytesOut,
    ...extraHeaders,
  };
  if (retryAfterMs > 0 || code === 'rate_limited' || code === 'circuit_open') {
    headers['retry-after'] = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
  }
  if (ex.fallback !== null) headers['x-breakwater-fallback'] = ex.fallback;
  const res: ServerResponse = ex.res;
  res.writeHead(spec.status, headers);
  res.end(body);
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
 * The connection is closed after it.
 */
export function writeRawError(socket: Socket, code: ErrorCode, requestId: string, at?: RawErrorContext): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const spec = ERRORS[code];
  const body = errorBody(code, at?.upstream ?? null, at?.route ?? null, requestId);
  const retryAfterMs = at?.retryAfterMs ?? 0;
  const retryAfter = retryAfterMs > 0 || code === 'rate_limited' || code === 'circuit_open' ? `retry-after: ${Math.max(1, Math.ceil(retryAfterMs / 1000))}\r\n` : '';
  socket.end(
    `HTTP/1.1 ${spec.status} ${REASON[spec.status] ?? 'Error'}\r\n` +
      'content-type: application/json\r\n' +
      `x-breakwater-error: ${code}\r\n` +
      `x-request-id: ${requestId}\r\n` +
      retryAfter +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      'connection: close\r\n\r\n' +
      body,
  );
  socket.destroySoon?.();
}
