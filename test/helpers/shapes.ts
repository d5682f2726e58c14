// An upstream that writes HTTP/1.1 responses byte by byte on raw sockets, so
// a test controls framing exactly: Content-Length or chunked or
// close-delimited, a 204 with or without a (sloppy) Content-Length, 1xx
// interim responses nobody asked for, trailers. node:http would repair or
// refuse several of these shapes, which is why this is not built on it.
//
// The response shape is chosen by the request path, `/shape/<id>` (the ids are
// SHAPE_IDS). Every response carries the same end-to-end headers whatever the
// shape, describing the request as it arrived:
//   x-shape                  the shape id
//   x-request-method         the request's method
//   x-request-body-length    bytes of request body received
//   x-request-body-sha256    sha256 (hex) of those bytes
//   x-multi: a / x-multi: b  one header repeated, to check repeated fields survive
// A HEAD gets exactly the head a GET would get (Content-Length or
// Transfer-Encoding included) and no body. A request carrying
// `Expect: 100-continue` gets `100 Continue` before its body is read, as
// node:http does.
import { createHash } from 'node:crypto';
import net from 'node:net';
import type { Socket } from 'node:net';

export const SHAPE_IDS = [
  'content-length',
  'chunked',
  'close-delimited',
  'no-content',
  'no-content-length-0',
  'not-modified',
  'unprompted-continue',
  'early-hints',
  'expect-continue',
  'trailers',
  'empty',
  'large',
] as const;
export type ShapeId = (typeof SHAPE_IDS)[number];

/** The ETag of every `not-modified` representation; send it in If-None-Match to get the 304. */
export const ETAG = '"shape-v1"';
/** Size of the `large` shape's body. */
export const LARGE_SIZE = 3 * 1024 * 1024;

export function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Deterministic, not compressible-looking bytes: a byte-exactness check catches a shifted or dropped chunk. */
export function patternBytes(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    // xorshift32
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

const LARGE_BODY = patternBytes(LARGE_SIZE, 0x5eed);

/** The body the upstream sends for a shape on a GET (HEAD: the same head, no body). */
export function shapeBody(id: ShapeId): Buffer {
  switch (id) {
    case 'no-content':
    case 'no-content-length-0':
    case 'not-modified':
    case 'empty':
      return Buffer.alloc(0);
    case 'large':
      return LARGE_BODY;
    default:
      return Buffer.from(`body of the ${id} shape\n`.repeat(3));
  }
}

export interface ShapeRequest {
  method: string;
  target: string;
  /** Lower-case name → values in arrival order. */
  headers: Map<string, string[]>;
  body: Buffer;
}

export interface ShapesUpstream {
  readonly port: number;
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  /** Every request received, in arrival order. */
  readonly requests: ShapeRequest[];
  /** TCP connections accepted. */
  readonly connections: number;
  /** Destroys every socket and closes the server. */
  close(): Promise<void>;
}

const MAX_HEAD = 64 * 1024;
const MAX_BODY = 16 * 1024 * 1024;
const MAX_REQUESTS_PER_CONNECTION = 10_000;

class Closed extends Error {}

/** Pulls bytes from a socket on demand: a delimiter-terminated piece, or exactly n bytes. */
class Reader {
  #chunks: Buffer[] = [];
  #size = 0;
  #ended = false;
  #wake: (() => void) | null = null;

  constructor(socket: Socket) {
    socket.on('data', (c: Buffer) => {
      this.#chunks.push(c);
      this.#size += c.length;
      this.#notify();
    });
    const end = () => {
      this.#ended = true;
      this.#notify();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  #flat(): Buffer {
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks)];
    return this.#chunks[0] ?? Buffer.alloc(0);
  }

  #take(n: number, skip = 0): Buffer {
    const all = this.#flat();
    const out = all.subarray(0, n);
    const rest = all.subarray(n + skip);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#size = rest.length;
    return out;
  }

  async #more(): Promise<void> {
    if (this.#ended) throw new Closed('connection closed');
    await new Promise<void>((r) => (this.#wake = r));
  }

  /** The bytes before `delim` (consumed with it); null if the peer closed cleanly before any byte. */
  async until(delim: string, max: number): Promise<Buffer | null> {
    for (;;) {
      const i = this.#flat().indexOf(delim, 0, 'latin1');
      if (i >= 0) return this.#take(i, delim.length);
      if (this.#size > max) throw new Error(`more than ${max} bytes without ${JSON.stringify(delim)}`);
      if (this.#ended && this.#size === 0) return null;
      await this.#more();
    }
  }

  async exactly(n: number): Promise<Buffer> {
    while (this.#size < n) await this.#more();
    return this.#take(n);
  }
}

function parseHead(head: Buffer): { method: string; target: string; headers: Map<string, string[]> } {
  const lines = head.toString('latin1').split('\r\n');
  const [method, target, version] = (lines[0] ?? '').split(' ');
  if (method === undefined || target === undefined || version === undefined) throw new Error(`bad request line ${lines[0]}`);
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`bad header line ${line}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const list = headers.get(name);
    if (list === undefined) headers.set(name, [value]);
    else list.push(value);
  }
  return { method, target, headers };
}

async function readBody(r: Reader, headers: Map<string, string[]>): Promise<Buffer> {
  const te = headers.get('transfer-encoding')?.join(',').toLowerCase();
  if (te !== undefined && te.includes('chunked')) {
    const parts: Buffer[] = [];
    let total = 0;
    for (;;) {
      const sizeLine = await r.until('\r\n', 1024);
      if (sizeLine === null) throw new Closed('closed inside a chunked body');
      const size = Number.parseInt(sizeLine.toString('latin1').split(';')[0]!.trim(), 16);
      if (!Number.isFinite(size) || size < 0) throw new Error(`bad chunk size ${sizeLine.toString('latin1')}`);
      if (size === 0) {
        // Trailer section: lines until an empty one.
        for (let i = 0; i < 100; i++) {
          const line = await r.until('\r\n', MAX_HEAD);
          if (line === null) throw new Closed('closed inside the trailer section');
          if (line.length === 0) return Buffer.concat(parts);
        }
        throw new Error('too many trailer lines');
      }
      total += size;
      if (total > MAX_BODY) throw new Error('request body too large');
      parts.push(await r.exactly(size));
      await r.exactly(2); // CRLF after the chunk data
    }
  }
  const cl = headers.get('content-length');
  if (cl === undefined) return Buffer.alloc(0);
  const n = Number(cl[0]);
  if (!Number.isSafeInteger(n) || n < 0 || n > MAX_BODY) throw new Error(`bad content-length ${cl[0]}`);
  return n === 0 ? Buffer.alloc(0) : Buffer.from(await r.exactly(n));
}

function head(statusLine: string, fields: [string, string][]): string {
  let s = `HTTP/1.1 ${statusLine}\r\n`;
  for (const [k, v] of fields) s += `${k}: ${v}\r\n`;
  return s + '\r\n';
}

/**
 * Writes the response for one request; resolves false when the connection
 * must close afterwards (close-delimited body, or the request asked for it).
 */
function respond(socket: Socket, req: ShapeRequest): boolean {
  const isHead = req.method === 'HEAD';
  const path = req.target.split('?')[0] ?? '';
  const id = path.startsWith('/shape/') ? (path.slice('/shape/'.length) as ShapeId) : null;
  const common: [string, string][] = [
    ['content-type', 'text/plain; charset=utf-8'],
    ['x-shape', id ?? 'unknown'],
    ['x-request-method', req.method],
    ['x-request-body-length', String(req.body.length)],
    ['x-request-body-sha256', sha256(req.body)],
    ['x-multi', 'a'],
    ['x-multi', 'b'],
  ];
  const wantsClose = (req.headers.get('connection') ?? []).some((v) => /\bclose\b/i.test(v));
  const fixed = (status: string, body: Buffer, extra: [string, string][] = []): void => {
    socket.write(head(status, [...common, ...extra, ['content-length', String(body.length)]]));
    if (!isHead && body.length > 0) socket.write(body);
  };

  if (id === null || !(SHAPE_IDS as readonly string[]).includes(id)) {
    fixed('404 Not Found', Buffer.from(`no shape at ${path}\n`));
    return !wantsClose;
  }
  const body = shapeBody(id);
  switch (id) {
    case 'content-length':
    case 'expect-continue': // the 100 Continue, if asked for, went out before the body was read
    case 'empty':
    case 'large':
      fixed('200 OK', body);
      break;
    case 'chunked': {
      socket.write(head('200 OK', [...common, ['transfer-encoding', 'chunked']]));
      if (!isHead) {
        const third = Math.ceil(body.length / 3);
        for (let i = 0; i < body.length; i += third) {
          const piece = body.subarray(i, i + third);
          socket.write(`${piece.length.toString(16)}\r\n`);
          socket.write(piece);
          socket.write('\r\n');
        }
        socket.write('0\r\n\r\n');
      }
      break;
    }
    case 'close-delimited':
      socket.write(head('200 OK', [...common, ['connection', 'close']]));
      if (!isHead) socket.write(body);
      return false;
    case 'no-content':
      socket.write(head('204 No Content', common));
      break;
    case 'no-content-length-0':
      socket.write(head('204 No Content', [...common, ['content-length', '0']]));
      break;
    case 'not-modified': {
      const validators: [string, string][] = [
        ['etag', ETAG],
        ['cache-control', 'max-age=0, must-revalidate'],
      ];
      const inm = req.headers.get('if-none-match') ?? [];
      if (inm.includes(ETAG)) socket.write(head('304 Not Modified', [...common, ...validators]));
      else fixed('200 OK', Buffer.from('fresh representation\n'), validators);
      break;
    }
    case 'unprompted-continue':
      socket.write('HTTP/1.1 100 Continue\r\n\r\n');
      fixed('200 OK', body);
      break;
    case 'early-hints':
      socket.write(head('103 Early Hints', [['link', '</style.css>; rel=preload; as=style']]));
      fixed('200 OK', body, [['link', '</style.css>; rel=preload; as=style']]);
      break;
    case 'trailers': {
      socket.write(head('200 OK', [...common, ['transfer-encoding', 'chunked'], ['trailer', 'x-checksum']]));
      if (!isHead) {
        socket.write(`${body.length.toString(16)}\r\n`);
        socket.write(body);
        socket.write(`\r\n0\r\nx-checksum: ${sha256(body)}\r\n\r\n`);
      }
      break;
    }
  }
  return !wantsClose;
}

async function serve(socket: Socket, requests: ShapeRequest[]): Promise<void> {
  const r = new Reader(socket);
  for (let n = 0; n < MAX_REQUESTS_PER_CONNECTION; n++) {
    const headBytes = await r.until('\r\n\r\n', MAX_HEAD);
    if (headBytes === null) break;
    const { method, target, headers } = parseHead(headBytes);
    if ((headers.get('expect') ?? []).some((v) => v.toLowerCase() === '100-continue')) {
      socket.write('HTTP/1.1 100 Continue\r\n\r\n');
    }
    const body = await readBody(r, headers);
    const req: ShapeRequest = { method, target, headers, body };
    requests.push(req);
    if (!respond(socket, req)) break;
  }
  socket.end();
}

export async function startShapesUpstream(): Promise<ShapesUpstream> {
  const requests: ShapeRequest[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  let closing: Promise<void> | undefined;
  const server = net.createServer((socket) => {
    connections++;
    // Heads and bodies go out in separate writes; without this, Nagle's
    // algorithm and the peer's delayed ACK add ~40 ms to many responses.
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    serve(socket, requests).catch(() => socket.destroy());
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
    requests,
    get connections() {
      return connections;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        sockets.clear();
      });
      return closing;
    },
  };
}
