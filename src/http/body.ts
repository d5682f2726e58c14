/**
 * The request body as upstream attempts see it (SPEC §4.2 bounded replay
 * buffer, §2 `limits.bodySize`).
 *
 * A body up to `bufferLimit` is read whole before the first attempt so that it
 * can be replayed on retry. A larger one streams through once: what was read
 * so far is sent first, then the rest of the request as it arrives, and that
 * request is not retried (flag `retry_body_too_large`). The listener's
 * `bodySize` is enforced on both paths.
 */
import type { IncomingMessage } from 'node:http';
import { PassThrough, Readable } from 'node:stream';
import type { Exchange, RequestBody } from '../pipeline/exchange.ts';

export class BodyTooLargeError extends Error {
  readonly code = 'BW_BODY_TOO_LARGE';
  constructor() {
    super('request body exceeds the listener limit');
  }
}

/** Does the request carry a body at all? (RFC 9112 §6.3) */
export function hasBody(req: IncomingMessage): boolean {
  const h = req.headers;
  if (h['transfer-encoding'] !== undefined) return true;
  const cl = h['content-length'];
  return cl !== undefined && cl !== '0';
}

/**
 * Resolves the body to send upstream, or 'too_large' when the declared or
 * received size is over `bodySize` before anything was forwarded.
 */
export function readBody(ex: Exchange, bufferLimit: number, bodySize: number | null, idle = Infinity): Promise<RequestBody | 'too_large' | 'timeout'> {
  const req = ex.req;
  if (!hasBody(req)) return Promise.resolve(null);
  const declared = req.headers['content-length'] === undefined ? -1 : Number(req.headers['content-length']);
  const limit = bodySize ?? Infinity;
  if (declared > limit) return Promise.resolve('too_large');
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // A client that stops sending mid-body must not hold the request: the
    // wait is bounded by `idle` between chunks and by what is left of `total`.
    let timer: NodeJS.Timeout | null = null;
    const arm = (): void => {
      if (timer !== null) clearTimeout(timer);
      const ms = Math.min(idle, ex.remaining());
      timer = Number.isFinite(ms) ? setTimeout(onTimeout, Math.max(0, ms)) : null;
    };
    const onTimeout = (): void => {
      cleanup();
      req.resume(); // drop the rest; the client gets its 504
      resolve('timeout');
    };
    const cleanup = (): void => {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      if (streamCheck !== null) clearTimeout(streamCheck);
      streamCheck = null;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onEnd);
      req.off('close', onEnd);
    };
    const stream = (flag: string): void => {
      cleanup();
      req.pause();
      ex.flag(flag);
      ex.bytesIn = size;
      resolve(Readable.from(streamRest(ex, chunks, req, limit), { objectMode: false }));
    };
    // The gRPC streaming switch happens from a timer, between 'data' events:
    // the request keeps flowing into a pass-through instead of being paused
    // and iterated (node's HTTP/2 compatibility request is not resumed by an
    // async iterator after pause()), with backpressure through pause/resume.
    const relay = (): void => {
      cleanup();
      ex.flag('retry_streaming');
      ex.bytesIn = size;
      const out = new PassThrough();
      for (const c of chunks) out.write(c);
      // Once the upstream side is gone (request over or aborted), the rest is read and dropped.
      out.once('close', () => req.resume());
      req.on('data', (chunk: Buffer) => {
        if (out.destroyed) return;
        ex.bytesIn += chunk.length;
        if (ex.bytesIn > limit) {
          ex.bodyTooLarge = true;
          out.destroy(new BodyTooLargeError());
          return;
        }
        if (!out.write(chunk)) {
          req.pause();
          out.once('drain', () => req.resume());
        }
      });
      req.once('end', () => out.end());
      req.once('error', (err: Error) => out.destroy(err));
      // A client that goes away mid-call ends the upstream's request body too.
      req.once('close', () => {
        if (!req.complete) out.destroy(new Error('client went away'));
      });
      resolve(out);
    };
    // A gRPC client or bidi stream may send one message and wait for an
    // answer before it sends more (or ends): waiting for the end to keep a
    // replayable copy would stall it. Once a whole message is in and the end
    // has not followed within a moment, the call streams through and is not
    // retried (SPEC §10.2: no retry once a message went past the replay buffer).
    let streamCheck: NodeJS.Timeout | null = null;
    const onData = (chunk: Buffer): void => {
      arm();
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.resume(); // drop the rest; the client gets its 413
        resolve('too_large');
        return;
      }
      chunks.push(chunk);
      if (size > bufferLimit) return stream('retry_body_too_large');
      if (ex.grpc && streamCheck === null && holdsGrpcMessage(chunks, size)) {
        streamCheck = setTimeout(relay, GRPC_END_GRACE_MS);
      }
    };
    const onEnd = (): void => {
      cleanup();
      ex.bytesIn = size;
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    arm();
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onEnd);
    req.on('close', onEnd);
  });
}

/** How long a gRPC request's end may lag its first whole message and the call still count as unary. */
const GRPC_END_GRACE_MS = 10;

/** Do the buffered bytes hold at least one whole gRPC message (1-byte flag, 4-byte length, payload)? */
function holdsGrpcMessage(chunks: readonly Buffer[], size: number): boolean {
  if (size < 5) return false;
  const head = chunks[0]!.length >= 5 ? chunks[0]! : Buffer.concat(chunks as Buffer[], 5); // only the 5-byte prefix is read
  return size >= 5 + head.readUInt32BE(1);
}

async function* streamRest(ex: Exchange, head: Buffer[], req: IncomingMessage, limit: number): AsyncGenerator<Buffer> {
  for (const c of head) yield c;
  for await (const chunk of req) {
    ex.bytesIn += (chunk as Buffer).length;
    if (ex.bytesIn > limit) {
      ex.bodyTooLarge = true;
      throw new BodyTooLargeError();
    }
    yield chunk as Buffer;
  }
}
