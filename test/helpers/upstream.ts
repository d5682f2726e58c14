// A scriptable upstream for proxy tests: a real node:http server on
// 127.0.0.1 port 0 whose answer to the n-th request is decided by a Script.
// It records every request (body fully read) before answering, and counts
// connections and concurrent requests so bulkhead and pooling behaviour can be
// asserted from the outside.
import http from 'node:http';
import net from 'node:net';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { freePort } from './wait.ts';

export interface Step {
  /** Default 200. */
  status?: number;
  headers?: Record<string, string | string[]>;
  /** Default ''. Sent with content-length unless `chunks` is given. */
  body?: string | Buffer;
  /** Wait this long before sending headers (or before a reset). */
  delayMs?: number;
  /** Never answer; the socket stays open until the client goes away or close(). */
  hang?: boolean;
  /**
   * Reset the connection (TCP RST). `before-headers`: nothing is sent.
   * `mid-body`: headers and part of the body are sent first: with `body`,
   * content-length announces the whole body and half of it is written (a
   * 64-byte body is made up when none is given); with `chunks`, every chunk
   * but the last is written.
   */
  reset?: 'before-headers' | 'mid-body';
  /** Send the body in these chunks (chunked transfer-encoding)... */
  chunks?: (string | Buffer)[];
  /** ...with this gap between them (a slow body). Headers and the first chunk go at once. */
  chunkIntervalMs?: number;
  /** Sets Retry-After. */
  retryAfter?: string;
  /**
   * Answer with the request body, and describe the request in headers:
   * x-echo-method, x-echo-url, x-echo-headers (JSON of the request headers).
   */
  echo?: boolean;
}

/** An array gives step i to request i, its last step repeating; a function decides per request. */
export type Script = Step | Step[] | ((req: RecordedRequest, index: number) => Step);

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  /** Date.now() when the request (head and body) had fully arrived. */
  receivedAt: number;
}

export interface Upstream {
  readonly port: number;
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  /** Every request since start (or the last reset()), in arrival order. */
  readonly requests: RecordedRequest[];
  /** Requests that arrived and whose response has not ended (or been abandoned) yet. */
  readonly inFlight: number;
  /** The highest inFlight seen since start (or the last reset()). */
  readonly maxInFlight: number;
  /** TCP connections accepted since start (or the last reset()). */
  readonly connections: number;
  setScript(s: Script): void;
  /**
   * Clears the recorded requests and the counters, and starts the script
   * again at step 0. inFlight is a live gauge, not a record, so it is kept;
   * maxInFlight restarts from it.
   */
  reset(): void;
  /** Destroys every socket (hanging requests included) and closes the server. */
  close(): Promise<void>;
}

const MID_BODY_FILLER = 'x'.repeat(64);
// How long a mid-body reset waits after the partial response has been handed
// to the kernel, so the client has read the head before the RST arrives.
const MID_BODY_SETTLE_MS = 30;

export async function startUpstream(script: Script = {}): Promise<Upstream> {
  let current: Script = script;
  let requests: RecordedRequest[] = [];
  let nextIndex = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let connections = 0;
  let closing: Promise<void> | undefined;
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const releases = new Set<() => void>();

  // Timers are owned by the upstream so close() can cancel whatever is still
  // scheduled (delays, slow chunks) and leave no handle behind.
  const later = (ms: number, fn: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const stepFor = (rec: RecordedRequest, index: number): Step => {
    if (typeof current === 'function') return current(rec, index);
    if (Array.isArray(current)) return current[Math.min(index, current.length - 1)] ?? {};
    return current;
  };

  const server = http.createServer((req, res) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    // 'close' fires once the response has ended or the connection went away;
    // either way the request is no longer in flight. close() releases what is
    // left itself, so inFlight is 0 as soon as it resolves.
    const release = (): void => {
      if (!releases.delete(release)) return;
      inFlight--;
    };
    releases.add(release);
    res.once('close', release);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => {}); // the client went away mid-upload: nothing to answer
    req.on('end', () => {
      const rec: RecordedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks),
        receivedAt: Date.now(),
      };
      requests.push(rec);
      const index = nextIndex++;
      let step: Step;
      try {
        step = stepFor(rec, index);
      } catch (err) {
        res.statusCode = 500;
        res.end(`upstream script threw: ${String(err)}`);
        return;
      }
      const go = () => answer(req, res, rec, step, later);
      if (step.delayMs !== undefined && step.delayMs > 0) later(step.delayMs, go);
      else go();
    });
  });
  server.on('connection', (socket: Socket) => {
    connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    get requests() {
      return requests;
    },
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    get connections() {
      return connections;
    },
    setScript(s: Script) {
      current = s;
    },
    reset() {
      requests = [];
      nextIndex = 0;
      maxInFlight = inFlight;
      connections = 0;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        sockets.clear();
        for (const release of [...releases]) release();
      });
      return closing;
    },
  };
}

function answer(
  req: IncomingMessage,
  res: ServerResponse,
  rec: RecordedRequest,
  step: Step,
  later: (ms: number, fn: () => void) => void,
): void {
  if (res.destroyed || req.socket.destroyed) return; // the client gave up during delayMs
  if (step.hang) return;
  if (step.reset === 'before-headers') {
    rst(req.socket);
    return;
  }

  res.statusCode = step.status ?? 200;
  for (const [name, value] of Object.entries(step.headers ?? {})) res.setHeader(name, value);
  if (step.retryAfter !== undefined) res.setHeader('retry-after', step.retryAfter);

  let body: Buffer = toBuffer(step.body ?? '');
  if (step.echo) {
    body = rec.body;
    res.setHeader('x-echo-method', rec.method);
    res.setHeader('x-echo-url', rec.url);
    res.setHeader('x-echo-headers', JSON.stringify(rec.headers));
    const type = rec.headers['content-type'];
    if (type !== undefined && !res.hasHeader('content-type')) res.setHeader('content-type', type);
  }

  if (step.chunks !== undefined) {
    sendChunks(req, res, step, later);
    return;
  }

  if (step.reset === 'mid-body') {
    if (body.length === 0) body = Buffer.from(MID_BODY_FILLER);
    res.setHeader('content-length', body.length);
    const part = body.subarray(0, Math.max(1, Math.floor(body.length / 2)));
    res.write(part, () => later(MID_BODY_SETTLE_MS, () => rst(req.socket)));
    return;
  }

  // 1xx, 204 and 304 carry no body (and no content-length).
  const bodiless = res.statusCode < 200 || res.statusCode === 204 || res.statusCode === 304;
  if (bodiless) {
    res.end();
    return;
  }
  res.setHeader('content-length', body.length);
  res.end(req.method === 'HEAD' ? undefined : body);
}

function sendChunks(
  req: IncomingMessage,
  res: ServerResponse,
  step: Step,
  later: (ms: number, fn: () => void) => void,
): void {
  const chunks = (step.chunks ?? []).map(toBuffer);
  const gap = step.chunkIntervalMs ?? 0;
  // mid-body: everything but the last chunk, then the RST instead of it.
  const toSend = step.reset === 'mid-body' ? chunks.slice(0, Math.max(1, chunks.length - 1)) : chunks;
  res.removeHeader('content-length');
  res.flushHeaders();
  let i = 0;
  const next = (): void => {
    if (res.destroyed) return;
    if (i >= toSend.length) {
      if (step.reset === 'mid-body') later(MID_BODY_SETTLE_MS, () => rst(req.socket));
      else res.end();
      return;
    }
    const chunk = toSend[i++]!;
    // An empty write would not reach the wire as a chunk; skip it.
    const scheduleNext = () => (gap > 0 && i < toSend.length ? later(gap, next) : next());
    if (chunk.length === 0) scheduleNext();
    else res.write(chunk, () => scheduleNext());
  };
  next();
}

/** Abort the connection with a TCP RST, as a crashing or overloaded upstream would. */
function rst(socket: Socket): void {
  if (socket.destroyed) return;
  if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  else socket.destroy();
}

function toBuffer(b: string | Buffer): Buffer {
  return typeof b === 'string' ? Buffer.from(b) : b;
}

/** A loopback port with nothing listening on it (from outside the ephemeral range: see freePort). */
export function refusedPort(): Promise<number> {
  return freePort();
}
