/**
 * What the edge does when node's parser refuses bytes on a connection
 * (`clientError`): a malformed head or body, a head over the parser's
 * ceiling, data after a request that closes the connection, a request that
 * arrived too slowly.
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { ERRORS, type ErrorCode } from '../errors.ts';
import { kActive, kEx, kWaiting, type EdgeSocket, type TrackedResponse } from './edge-socket.ts';
import type { ListenerRoutes } from './listener-routes.ts';
import { refuse, refuseSlow, TIMEOUT_408 } from './refused.ts';
import { writeRawError } from './respond.ts';

/** `lr`: the listener's routes when the error came (its access log and metrics record the refusal). */
export function onClientError(err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Socket, lr: ListenerRoutes): void {
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
      (s[kWaiting] ??= []).push(timedOut ? () => socket.destroySoon() : () => refuse(lr, socket, null, null, code, randomUUID()));
      return;
    }
    // The request whose body is malformed (or too slow) is the one being
    // answered: its answer has not started, and the error below is that
    // answer — recorded on its exchange, which logs and counts it once.
    const ex = (active as TrackedResponse)[kEx];
    if (ex !== undefined) {
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'HPE_HEADERS_TIMEOUT') {
        socket.end(TIMEOUT_408);
        ex.answeredRaw('request_timeout', 408, 0, null);
      } else {
        const code = clientErrorCode(err);
        const bytes = writeRawError(socket, code, ex.requestId);
        if (bytes >= 0) ex.answeredRaw(code, ERRORS[code].status, bytes, ERRORS[code].flag);
      }
      return;
    }
  }
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'HPE_HEADERS_TIMEOUT') {
    // Slow heads and slow requests: 408 and close.
    refuseSlow(lr, socket, randomUUID());
    return;
  }
  refuse(lr, socket, null, null, clientErrorCode(err), randomUUID());
}

function clientErrorCode(err: NodeJS.ErrnoException): ErrorCode {
  return err.code === 'HPE_HEADER_OVERFLOW' ? 'header_too_large' : 'bad_request';
}
