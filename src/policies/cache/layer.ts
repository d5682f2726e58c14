/**
 * The stale-if-error cache layer (SPEC §11.2). It sits inside the fallback
 * layer (runtime/route-stack.ts), so that on a failure the stored response
 * is tried first and the fallback's upstream or static response only sees
 * failures the cache could not answer: it is a fallback kind, the first.
 *
 * - Success path: a GET's successful, storable response (rules.ts) is
 *   tapped as it streams to the client (UpstreamResponse.tap: each chunk
 *   kept by reference, copied once into one buffer when the body is
 *   complete) and stored; a body that does not complete stores nothing. A
 *   response that may not be stored costs one Cache-Control parse; a
 *   variant stored less than REFRESH_MS ago is not replaced (a lookup).
 * - Failure path (the fallback's `on` list): the request's stored variant,
 *   if still within its stale window, answers with `Age`,
 *   `x-breakwater-fallback: cache` and the flags `fallback` and
 *   `fallback_cache`; the failed reply is dropped.
 * - `serveFresh`: a fresh stored variant answers without going upstream
 *   (flag `cache_fresh`, no fallback header), unless the client asks for
 *   the origin (`no-cache`, `max-age=0`).
 * - An unsafe method (POST, PUT, DELETE, PATCH) that succeeds drops the
 *   URL's stored responses (RFC 9111 §4.4).
 *
 * Keys: the request's host and target (path and query as received), so a
 * HEAD is answered from its GET's entry; variants by the Vary'd headers.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { FallbackTrigger } from '../../config/types.ts';
import { connectionListed, isHopByHop } from '../../http/hop-by-hop.ts';
import { rewriteLocation } from '../../http/response-headers.ts';
import { ERRORS } from '../../errors.ts';
import { errorCodeFor } from '../../pipeline/classify.ts';
import type { Exchange } from '../../pipeline/exchange.ts';
import type { Handler, Layer, Reply, StaticReply } from '../../pipeline/handler.ts';
import type { BodyTap, UpstreamResponse } from '../../pipeline/upstream-response.ts';
import { fires } from '../fallback/fallback.ts';
import { freshnessLifetime, httpDate, initialAge, requestWantsUpstream, staleWindow, storable, varyKey, varyNames, type Directives } from './rules.ts';
import { ageOf, type ResponseCache, type StoredResponse } from './store.ts';

export interface CacheMetrics {
  /** A stored response answered: `stale` for a failure, `fresh` without asking the upstream. */
  hit(result: 'stale' | 'fresh'): void;
  /** Stored responses evicted by the bounds. */
  evicted(n: number): void;
}

export interface CacheParams {
  readonly store: ResponseCache;
  /** The route's window past freshness (ms), when the response names none. */
  readonly staleIfError: number;
  readonly serveFresh: boolean;
  /** The failures a stored response answers: the route's fallback `on`, else the fallback built-ins. */
  readonly on: ReadonlySet<FallbackTrigger>;
  readonly metrics: CacheMetrics;
  /** How often a URL variant's entry may be replaced, ms (built-in REFRESH_MS; 0: every answer is stored). */
  readonly refreshMs?: number;
}

/** A stored variant younger than this is not replaced: a stale answer is at most this much older than the newest success. */
export const REFRESH_MS = 1000;

/** Per stored response: a fixed share for the objects around body and headers. */
const ENTRY_OVERHEAD = 256;

export function cacheLayer(p: CacheParams): Layer {
  const { store, on, metrics } = p;
  const refreshMs = p.refreshMs ?? REFRESH_MS;

  /** The stored answer for `ex`, with its Age now. */
  const serve = (ex: Exchange, e: StoredResponse, now: number, stale: boolean): StaticReply => {
    const headers: Record<string, string | string[]> = { ...e.headers, age: String(Math.floor(ageOf(e, now) / 1000)) };
    const loc = headers.location;
    if (typeof loc === 'string') headers.location = rewriteLocation(loc, e.endpoint, ex.originalHost);
    const cloc = headers['content-location'];
    if (typeof cloc === 'string') headers['content-location'] = rewriteLocation(cloc, e.endpoint, ex.originalHost);
    if (stale) {
      ex.flag('fallback');
      ex.flag('fallback_cache');
      ex.fallback = 'cache';
    } else ex.flag('cache_fresh');
    metrics.hit(stale ? 'stale' : 'fresh');
    return { type: 'static', status: e.status, headers, body: e.body, fallback: stale ? 'cache' : null };
  };

  const tapIfStorable = (ex: Exchange, url: string, reply: UpstreamResponse): void => {
    const res = reply.headers;
    if (res === null) return;
    const d = storable(ex.req.headers, reply.status, res);
    if (d === null) return;
    if (refreshMs > 0) {
      // A hot URL's entry is replaced at most once per refreshMs: storing
      // every answer of a URL asked thousands of times a second buys nothing.
      const e = store.lookup(url, ex.req.headers);
      if (e !== null && Date.now() - e.storedAt < refreshMs) return;
    }
    const cl = res['content-length'];
    if (cl !== undefined && Number(cl) > store.maxEntrySize) return;
    // Only a body whose end is known: a length, or chunked framing. A body
    // delimited by the connection's close cannot tell a reset from its end
    // (undici takes both as the end), and a cut answer must never be served.
    if (cl === undefined && !chunked(res['transfer-encoding'])) return;
    reply.tap(new Collector(store, metrics, url, ex, reply.status, res, d, p.staleIfError));
  };

  return (next: Handler): Handler =>
    async (ex: Exchange): Promise<Reply> => {
      const method = ex.method;
      if (method !== 'GET' && method !== 'HEAD') {
        if (method === 'OPTIONS' || method === 'TRACE') return next(ex);
        const reply = await next(ex);
        // RFC 9111 §4.4: an unsafe method's non-error answer invalidates the URL.
        if (reply.type === 'upstream' && reply.status >= 200 && reply.status < 400) store.delete(urlOf(ex));
        return reply;
      }
      const url = urlOf(ex);
      const req = ex.req.headers;
      if (p.serveFresh && !requestWantsUpstream(req)) {
        const e = store.lookup(url, req);
        if (e !== null && !e.noCache) {
          const now = Date.now();
          if (ageOf(e, now) < e.lifetime) return serve(ex, e, now, false);
        }
      }
      const reply = await next(ex);
      if (ex.clientAborted) return reply;
      if (!fires(on, reply)) {
        if (method === 'GET' && reply.type === 'upstream' && reply.status !== 0) tapIfStorable(ex, url, reply);
        return reply;
      }
      if (reply.type === 'static') return reply; // a static answer never fires
      const e = store.lookup(url, req);
      if (e === null) return reply;
      const now = Date.now();
      if (ageOf(e, now) > e.lifetime + e.staleWindow) {
        // Past its window it can never answer again: its bytes go now, not when evicted.
        store.remove(url, e);
        return reply;
      }
      // The log says what the cache answered for: the flag the failure would have rendered.
      let flag: string | null;
      if (reply.type === 'upstream') {
        flag = reply.status === 0 ? ERRORS[errorCodeFor(reply.kind)].flag : null;
        reply.discard();
      } else flag = ERRORS[reply.code].flag;
      if (flag !== null) ex.flag(flag);
      return serve(ex, e, now, true);
    };
}

function urlOf(ex: Exchange): string {
  return `${ex.host}\u0000${ex.target}`;
}

/**
 * Keeps a body's chunks (by reference: each is the relay's own chunk, not
 * copied) while it streams to the client, and stores the response once it
 * is complete: one copy into one buffer. Over maxEntrySize it lets go.
 */
class Collector implements BodyTap {
  readonly #store: ResponseCache;
  readonly #metrics: CacheMetrics;
  readonly #url: string;
  readonly #ex: Exchange;
  readonly #status: number;
  readonly #res: IncomingHttpHeaders;
  readonly #d: Readonly<Directives>;
  readonly #routeWindow: number;
  readonly #at: number;
  #chunks: Buffer[] | null = [];
  #bytes = 0;

  constructor(store: ResponseCache, metrics: CacheMetrics, url: string, ex: Exchange, status: number, res: IncomingHttpHeaders, d: Readonly<Directives>, routeWindow: number) {
    this.#store = store;
    this.#metrics = metrics;
    this.#url = url;
    this.#ex = ex;
    this.#status = status;
    this.#res = res;
    this.#d = d;
    this.#routeWindow = routeWindow;
    this.#at = Date.now();
  }

  data(chunk: Buffer): void {
    const chunks = this.#chunks;
    if (chunks === null) return;
    this.#bytes += chunk.length;
    if (this.#bytes > this.#store.maxEntrySize) this.#chunks = null;
    else chunks.push(chunk);
  }

  end(): void {
    const chunks = this.#chunks;
    if (chunks === null) return;
    this.#chunks = null;
    const res = this.#res;
    // A length the body did not reach (or passed) is no whole answer.
    const cl = res['content-length'];
    if (cl !== undefined && Number(cl) !== this.#bytes) return;
    const headers = storedHeaders(res);
    let size = this.#bytes + ENTRY_OVERHEAD;
    for (const name in headers) {
      const v = headers[name]!;
      size += name.length + (typeof v === 'string' ? v.length : v.join('').length);
    }
    if (size > this.#store.maxEntrySize) return;
    const vary = varyNames(res.vary);
    const at = this.#at;
    const d = this.#d;
    const ex = this.#ex;
    const date = httpDate(res.date);
    this.#store.put(this.#url, {
      status: this.#status,
      headers,
      body: chunks.length === 1 ? Buffer.from(chunks[0]!) : Buffer.concat(chunks, this.#bytes),
      endpoint: ex.endpoint ?? '',
      storedAt: at,
      initialAge: initialAge(res, at, date),
      lifetime: freshnessLifetime(d, this.#status, res, at, date),
      staleWindow: staleWindow(d, this.#routeWindow),
      noCache: d.noCache,
      vary,
      varyKey: varyKey(vary, ex.req.headers),
      size,
    });
    const evicted = this.#store.takeEvicted();
    if (evicted > 0) this.#metrics.evicted(evicted);
  }
}

/** Headers never stored: about the connection, the exchange, or the body's framing (the stored body's length is served). */
const NOT_STORED = new Set(['age', 'content-length', 'x-request-id', 'x-breakwater-fallback', 'set-cookie']);

/** The head to store. */
function storedHeaders(h: IncomingHttpHeaders): Record<string, string | string[]> {
  const listed = h.connection === undefined ? null : connectionListed(h.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in h) {
    if (NOT_STORED.has(name) || isHopByHop(name)) continue;
    if (listed !== null && listed.has(name)) continue;
    const v = h[name];
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/** `transfer-encoding` ends in chunked: the body's end is in its framing. */
function chunked(te: string | string[] | undefined): boolean {
  if (te === undefined) return false;
  const v = (typeof te === 'string' ? te : te.join(',')).toLowerCase();
  return v.trimEnd().endsWith('chunked');
}
