/**
 * HTTP/2 with prior knowledge (h2c) beside HTTP/1.1 on one listener port
 * (SPEC §10.1): telling the two apart, and everything about a client's
 * HTTP/2 connection that is not the request itself — settings, idle
 * sessions, GOAWAY on drain, and the HTTP/2 rules for a request head and a
 * response head. Requests then take the same edge checks, routes and route
 * stacks as HTTP/1.1 ones (http/server.ts).
 *
 * Telling them apart. A new connection's first bytes are read until they
 * either are the HTTP/2 connection preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`,
 * RFC 9113 §3.4) or differ from it — for an HTTP/1.1 request that is its
 * first, second or third byte (`GET`, `POST`, `PROPFIND`). What was read is
 * put back (`unshift`) and the socket goes to node's HTTP/1.1 server or to
 * its HTTP/2 server. Both take the socket's handle over (their native
 * parsers read it directly from then on), and both first consume what is
 * already buffered in the socket, on the next tick, before the event loop
 * can deliver another read: the bytes are seen once, in order (tested with a
 * preface and a request sent a byte at a time, and with a 1 MiB first body).
 * A connection costs one read through JS and a few closures; a request,
 * nothing more than over HTTP/1.1.
 *
 * Neither server listens: the listener's http.Server accepts (so node's
 * headersTimeout/requestTimeout checks, which start on its 'listening',
 * keep running), and its own connection handler is reached through
 * sniffPreface.
 *
 * Requests are node's compatibility objects (Http2ServerRequest/Response),
 * given to the Exchange as the HTTP/1.1 ones they imitate: they have every
 * member the pipeline reads — headers, rawHeaders (pseudo-headers first),
 * method, url (`:path`), socket.remoteAddress, the body as a Readable;
 * writeHead/write/end/addTrailers/destroy, headersSent, writableFinished,
 * 'drain', 'close'.
 */
// node:http2 is loaded by undici in any case: importing it here costs no memory.
import http2, { type Http2Server, type Http2ServerRequest, type ServerHttp2Session } from 'node:http2';
import type { OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { ListenerLimits } from '../config/types.ts';
import { hostOf, validHostHeader } from './request-head.ts';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * Reads `socket` until its first bytes are, or cannot be, the HTTP/2
 * preface; puts them back and calls `then`. A connection that sends nothing
 * decisive within `timeoutMs`, or ends first, is closed.
 */
export function sniffPreface(socket: Socket, timeoutMs: number, then: (socket: Socket, h2: boolean) => void): void {
  let seen: Buffer | null = null;
  const onReadable = (): void => {
    const chunk = socket.read() as Buffer | null;
    if (chunk === null) return;
    seen = seen === null ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, PREFACE.length);
    const prefix = seen.compare(PREFACE, 0, n, 0, n) === 0;
    if (prefix && n < PREFACE.length) return; // so far, both are possible
    stop();
    socket.unshift(seen);
    then(socket, prefix);
  };
  const onGone = (): void => {
    stop();
    socket.destroy();
  };
  const stop = (): void => {
    socket.setTimeout(0);
    socket.off('readable', onReadable);
    socket.off('end', onGone);
    socket.off('timeout', onGone);
    socket.off('error', onGone);
  };
  socket.setTimeout(timeoutMs);
  socket.on('readable', onReadable);
  socket.on('end', onGone);
  socket.on('timeout', onGone);
  socket.on('error', onGone);
}

/** Header pairs per request, as node's HTTP/1.1 parser allows (its `maxHeadersCount`). */
const MAX_HEADER_PAIRS = 2000;
/** Where a session without open streams is closed (GOAWAY) after no frame in either direction. */
const IDLE_SESSION_MS = 60_000;

/**
 * The listener's limits as HTTP/2 settings. `headerSize` is enforced at the
 * edge, exactly and with a 431 like HTTP/1.1; the list size advertised and
 * enforced by nghttp2 (RST_STREAM beyond it) is a ceiling above it, as the
 * HTTP/1.1 parser's is, with room for the 32 bytes HTTP/2 counts per field.
 */
function settingsFor(limits: ListenerLimits): http2.Settings {
  return {
    maxConcurrentStreams: limits.maxConcurrentStreams,
    maxHeaderListSize: Math.max(64 * 1024, limits.headerSize + 1024) + 32 * MAX_HEADER_PAIRS,
  };
}

const kOpen = Symbol('breakwater.openStreams');
type EdgeSession = ServerHttp2Session & { [kOpen]: number };

/** The HTTP/2 side of one listener: node's HTTP/2 server (never listening) and its sessions. */
export class H2Sessions {
  readonly #server: Http2Server;
  readonly #sessions = new Set<EdgeSession>();
  #limits: ListenerLimits;

  constructor(limits: ListenerLimits, onRequest: (req: Http2ServerRequest, res: http2.Http2ServerResponse) => void) {
    this.#limits = limits;
    this.#server = http2.createServer(
      {
        settings: settingsFor(limits),
        maxHeaderListPairs: MAX_HEADER_PAIRS,
        Http2ServerResponse: EdgeResponse,
        // node's defences against rapid reset (streamResetBurst/Rate),
        // invalid-frame floods and unbounded session memory stay at their defaults.
      },
      onRequest,
    );
    // CONNECT takes the request path too, where it is refused (405).
    this.#server.on('connect', onRequest);
    this.#server.on('session', (s: ServerHttp2Session) => {
      const session = s as EdgeSession;
      session[kOpen] = 0;
      this.#sessions.add(session);
      session.once('close', () => this.#sessions.delete(session));
    });
    // A client's idle connection is closed like an idle HTTP/1.1 one,
    // though later; one with a stream open (a long poll, a quiet gRPC
    // stream) is left alone.
    this.#server.setTimeout(IDLE_SESSION_MS);
    this.#server.on('timeout', (s: EdgeSession) => {
      if (s[kOpen] === 0) s.close();
    });
  }

  /** Hand over a connection whose first bytes were the preface. */
  accept(socket: Socket): void {
    this.#server.emit('connection', socket);
  }

  /** A stream became a request; `closed` is called when it is over. */
  opened(req: Http2ServerRequest): EdgeSession {
    const s = req.stream.session as EdgeSession;
    s[kOpen]++;
    return s;
  }

  closed(session: EdgeSession): void {
    session[kOpen]--;
  }

  /** A reload: new sessions get the new settings, open ones are sent them. */
  update(limits: ListenerLimits): void {
    const before = this.#limits;
    this.#limits = limits;
    if (before.maxConcurrentStreams === limits.maxConcurrentStreams && before.headerSize === limits.headerSize) return;
    const settings = settingsFor(limits);
    this.#server.updateSettings(settings);
    for (const s of this.#sessions) if (!s.closed && !s.destroyed) s.settings(settings);
  }

  /**
   * Drain (SPEC §7): GOAWAY on every session. Streams already open finish;
   * new ones are refused by HTTP/2 itself (a client retries them on a new
   * connection, even a POST); a session closes once its streams are done.
   */
  goaway(): void {
    for (const s of this.#sessions) s.close();
  }

  /**
   * Drain timeout: whatever is still open is cut, with an error code so
   * that no client reads a cut stream as a complete answer (a plain
   * destroy() would end it with NO_ERROR).
   */
  destroy(): void {
    for (const s of this.#sessions) s.destroy(new Error('drain.timeout passed'), http2.constants.NGHTTP2_INTERNAL_ERROR);
  }
}

/**
 * An HTTP/2 request head as the edge reads it: `:authority` plays Host (a
 * Host header alone is accepted too, RFC 9113 §8.3.1; both present must
 * agree), `:path` is origin-form. null: malformed (400). Connection-specific
 * headers and a `te` other than `trailers` never get here: nghttp2 answers
 * them as malformed with RST_STREAM PROTOCOL_ERROR (RFC 9113 §8.2.2).
 */
export function h2Head(req: Http2ServerRequest): { host: string; target: string } | null {
  const h = req.headers;
  const authority = h[':authority'];
  const host = h.host;
  const a = authority ?? host;
  if (typeof a !== 'string' || a === '' || !validHostHeader(a)) return null;
  if (authority !== undefined && host !== undefined && (typeof host !== 'string' || host.toLowerCase() !== authority.toLowerCase())) return null;
  if (req.method === 'CONNECT') return { host: hostOf(a), target: a };
  const path = h[':path'];
  if (typeof path !== 'string' || path.charCodeAt(0) !== 47 /* / */) return null;
  // HTTP/2 frames a body by END_STREAM, not by a header. One without
  // content-length is marked as HTTP/1.1 would mark it, for the code that
  // asks whether a request has a body; the mark is never forwarded (the
  // forwarded headers are built from rawHeaders, and it is hop-by-hop).
  if (!req.stream.endAfterHeaders && h['content-length'] === undefined) h['transfer-encoding'] = 'chunked';
  return { host: hostOf(a), target: path };
}

/** RFC 9113 §8.2.2: never in an HTTP/2 message. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);
function connectionSpecific(name: string): boolean {
  // breakwater writes lower-case names; a capital (a configured static answer's) is folded first.
  return CONNECTION_SPECIFIC.has(name) || (name.charCodeAt(0) < 97 && CONNECTION_SPECIFIC.has(name.toLowerCase()));
}

/**
 * The answer to an HTTP/2 request. The edge and the route stack write
 * HTTP/1.1-shaped heads; the framing headers among them (`connection: close`
 * on a refusal, `transfer-encoding` on a HEAD answer) are about an HTTP/1.1
 * connection and are left out here, where HTTP/2 would refuse them (node
 * throws on some, warns on others). And an answer cut short (the upstream
 * failed mid-body, `timeout.idle`) ends with RST_STREAM INTERNAL_ERROR, as
 * an HTTP/1.1 one ends with a cut connection: node's plain destroy() would
 * send NO_ERROR, which a client may read as a complete answer.
 */
class EdgeResponse extends http2.Http2ServerResponse {
  override destroy(err?: Error): this {
    super.destroy(err ?? new Error('answer cut short'));
    return this;
  }

  override writeHead(statusCode: number, a?: string | OutgoingHttpHeaders | readonly string[], b?: OutgoingHttpHeaders | readonly string[]): this {
    const headers = typeof a === 'string' ? b : a;
    return super.writeHead(statusCode, headers === undefined ? headers : withoutConnectionHeaders(headers));
  }

  override addTrailers(headers: OutgoingHttpHeaders): void {
    super.addTrailers(withoutConnectionHeaders(headers) as OutgoingHttpHeaders);
  }
}

function withoutConnectionHeaders(headers: OutgoingHttpHeaders | readonly string[]): OutgoingHttpHeaders | readonly string[] {
  if (Array.isArray(headers)) {
    const flat = headers as readonly string[];
    let i = 0;
    while (i < flat.length && !connectionSpecific(flat[i]!)) i += 2;
    if (i >= flat.length) return flat; // the common case: nothing to leave out, no copy
    const out = flat.slice(0, i);
    for (let j = i; j < flat.length; j += 2) if (!connectionSpecific(flat[j]!)) out.push(flat[j]!, flat[j + 1]!);
    return out;
  }
  let out: OutgoingHttpHeaders | null = null;
  for (const name in headers) {
    if (!connectionSpecific(name)) continue;
    out ??= { ...(headers as OutgoingHttpHeaders) };
    delete out[name];
  }
  return out ?? headers;
}
