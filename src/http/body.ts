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
import { Readable } from 'node:stream';
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
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onEnd);
      req.off('close', onEnd);
    };
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
      if (size > bufferLimit) {
        cleanup();
        req.pause();
        ex.flag('retry_body_too_large');
        ex.bytesIn = size;
        resolve(Readable.from(streamRest(ex, chunks, req, limit), { objectMode: false }));
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
