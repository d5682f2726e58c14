/**
 * The stale-if-error cache's decisions (SPEC §11.2), pure: what may be
 * stored (RFC 9111 §3, as a shared cache), how long it is fresh (§4.2.1),
 * how long past that it may still answer a failure (RFC 5861 and §4.2.4),
 * its age (§4.2.3), and which request headers select a variant (`Vary`,
 * §4.1). The layer (layer.ts) and the store (store.ts) only apply them.
 *
 * Choices where the RFCs leave room, all on the safe side:
 * - Only GET responses are stored (a HEAD response has no body to serve a
 *   GET with); HEAD is answered from a GET's entry.
 * - Statuses: the heuristically cacheable ones (RFC 9110 §15.1: 200, 203,
 *   204, 300, 301, 308, 404, 405, 410, 414) without further ado; any other
 *   status below 500 only with explicit freshness (max-age, s-maxage,
 *   Expires) or `public`. Never 206 (ranges are not assembled), 304 (an
 *   answer to the client's own validators) or 5xx (the cache keeps the last
 *   *successful* response).
 * - A response that sets cookies is never stored: a cookie is one client's.
 * - `private` (qualified or not) and `no-store` are never stored; neither
 *   is any answer to a request with `no-store`, nor `Vary: *`.
 * - A request with `authorization` is stored only if the response says
 *   `public`, `s-maxage` or `must-revalidate` (RFC 9111 §3.5).
 * - Serving stale on error: the response's own `stale-if-error=N` wins (the
 *   origin's explicit permission, RFC 5861 §4); otherwise a response that
 *   forbids stale use (`no-cache`, `must-revalidate`, `proxy-revalidate`,
 *   `s-maxage`: RFC 9111 §4.2.4 and §5.2.2.10) is never served stale; otherwise
 *   the route's `staleIfError` is the window (the "out-of-band contract" of
 *   §4.2.4).
 */
import type { IncomingHttpHeaders } from 'node:http';

/** The Cache-Control directives the cache acts on; -1: absent. Seconds. */
export interface Directives {
  noStore: boolean;
  noCache: boolean;
  private: boolean;
  public: boolean;
  mustRevalidate: boolean;
  proxyRevalidate: boolean;
  maxAge: number;
  sMaxAge: number;
  staleIfError: number;
}

const NONE: Readonly<Directives> = Object.freeze({
  noStore: false,
  noCache: false,
  private: false,
  public: false,
  mustRevalidate: false,
  proxyRevalidate: false,
  maxAge: -1,
  sMaxAge: -1,
  staleIfError: -1,
});

/** Delta-seconds (RFC 9111 §1.2.2): a non-negative integer, else -1; huge values are capped, not refused. */
function deltaSeconds(v: string): number {
  if (v.length >= 2 && v.charCodeAt(0) === 34 && v.charCodeAt(v.length - 1) === 34) v = v.slice(1, -1);
  if (!/^\d+$/.test(v)) return -1;
  return Math.min(Number(v), 2 ** 31);
}

/** Parses Cache-Control (RFC 9111 §5.2); names are case-insensitive, unknown directives ignored. */
export function parseCacheControl(value: string | string[] | undefined): Readonly<Directives> {
  if (value === undefined) return NONE;
  const text = typeof value === 'string' ? value : value.join(',');
  if (text === '') return NONE;
  const d: Directives = { ...NONE };
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const name = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    const arg = eq < 0 ? '' : part.slice(eq + 1).trim();
    switch (name) {
      case 'no-store':
        d.noStore = true;
        break;
      case 'no-cache':
        d.noCache = true;
        break;
      case 'private':
        d.private = true;
        break;
      case 'public':
        d.public = true;
        break;
      case 'must-revalidate':
        d.mustRevalidate = true;
        break;
      case 'proxy-revalidate':
        d.proxyRevalidate = true;
        break;
      case 'max-age':
        d.maxAge = deltaSeconds(arg);
        // An invalid max-age makes the response stale (RFC 9111 §4.2.1).
        if (d.maxAge < 0) d.maxAge = 0;
        break;
      case 's-maxage':
        d.sMaxAge = deltaSeconds(arg);
        if (d.sMaxAge < 0) d.sMaxAge = 0;
        break;
      case 'stale-if-error':
        d.staleIfError = deltaSeconds(arg);
        break;
    }
  }
  return d;
}

/** Heuristically cacheable statuses (RFC 9110 §15.1), 501 left out: the cache keeps successes. */
const HEURISTIC = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414]);

/** Statuses never stored whatever the headers say. */
function neverStored(status: number): boolean {
  return status < 200 || status >= 500 || status === 206 || status === 304;
}

function one(v: string | string[] | undefined): string | undefined {
  return typeof v === 'string' ? v : v?.[0];
}

/** An HTTP date to epoch ms, NaN when absent or invalid. */
export function httpDate(v: string | string[] | undefined): number {
  const s = one(v);
  return s === undefined ? NaN : Date.parse(s);
}

/**
 * May this GET's response be stored (RFC 9111 §3, shared cache)? Returns
 * the response's directives when it may, null when it may not.
 */
export function storable(req: IncomingHttpHeaders, status: number, res: IncomingHttpHeaders): Readonly<Directives> | null {
  if (neverStored(status)) return null;
  if (res['set-cookie'] !== undefined) return null;
  const d = parseCacheControl(res['cache-control']);
  if (d.noStore || d.private) return null;
  const reqCc = req['cache-control'];
  if (reqCc !== undefined && parseCacheControl(reqCc).noStore) return null;
  // A request with credentials — `authorization`, or a `cookie` (a session:
  // a personalised page) — is answered for that client alone unless the
  // response says it may be shared (RFC 9111 §3.5 for authorization; the
  // same rule for cookies, or an outage would serve one user's page to
  // others), or names the cookie in its Vary.
  if (req.authorization !== undefined && !(d.public || d.sMaxAge >= 0 || d.mustRevalidate)) return null;
  if (req.cookie !== undefined && !(d.public || d.sMaxAge >= 0 || d.mustRevalidate || variesOnCookie(res.vary))) return null;
  if (req.range !== undefined) return null;
  const vary = res.vary;
  if (vary !== undefined && varyNames(vary) === STAR) return null;
  if (HEURISTIC.has(status)) return d;
  const explicit = d.public || d.maxAge >= 0 || d.sMaxAge >= 0 || res.expires !== undefined;
  return explicit ? d : null;
}

/** Freshness lifetime in ms (RFC 9111 §4.2.1), with the heuristic of §4.2.2 (10% of Last-Modified's age, at most a day). */
export function freshnessLifetime(d: Readonly<Directives>, status: number, res: IncomingHttpHeaders, now: number, date = httpDate(res.date)): number {
  if (d.sMaxAge >= 0) return d.sMaxAge * 1000;
  if (d.maxAge >= 0) return d.maxAge * 1000;
  const base = Number.isNaN(date) ? now : date;
  if (res.expires !== undefined) {
    const exp = httpDate(res.expires);
    return Number.isNaN(exp) ? 0 : Math.max(0, exp - base);
  }
  if (!HEURISTIC.has(status)) return 0;
  const lm = httpDate(res['last-modified']);
  if (Number.isNaN(lm) || lm >= base) return 0;
  return Math.min((base - lm) / 10, 86_400_000);
}

/**
 * How long past its freshness a stored response may answer a failure, ms;
 * 0: never stale (see the module comment for the order of the rules).
 */
export function staleWindow(d: Readonly<Directives>, routeWindow: number): number {
  if (d.staleIfError >= 0) return d.staleIfError * 1000;
  if (d.noCache || d.mustRevalidate || d.proxyRevalidate || d.sMaxAge >= 0) return 0;
  return routeWindow;
}

/**
 * The response's age when it was received, ms (RFC 9111 §4.2.3, with the
 * request's delay taken as nil): the larger of its `Age` and how long ago
 * its `Date` says it was made. `Date` has whole seconds, so its share is
 * rounded down to whole seconds, as `Age` is.
 */
export function initialAge(res: IncomingHttpHeaders, now: number, date = httpDate(res.date)): number {
  const age = res.age === undefined ? -1 : deltaSeconds(one(res.age) ?? '');
  const apparent = Number.isNaN(date) ? 0 : Math.max(0, Math.floor((now - date) / 1000) * 1000);
  return Math.max(age < 0 ? 0 : age * 1000, apparent);
}

/** Does the client refuse a stored answer without revalidation (`no-cache`, `max-age=0`, `Pragma: no-cache`)? */
export function requestWantsUpstream(req: IncomingHttpHeaders): boolean {
  const cc = req['cache-control'];
  if (cc !== undefined) {
    const d = parseCacheControl(cc);
    if (d.noCache || d.maxAge === 0) return true;
  } else if (req.pragma !== undefined && /no-cache/i.test(one(req.pragma) ?? '')) return true;
  return false;
}

/** `Vary: *`: the response varies on something outside the request; never stored. */
export const STAR: readonly string[] = Object.freeze(['*']);

/** The lower-case field names `Vary` lists; null when there are none, STAR for `*`. */
export function varyNames(value: string | string[] | undefined): readonly string[] | null {
  if (value === undefined) return null;
  const text = typeof value === 'string' ? value : value.join(',');
  let out: string[] | null = null;
  for (const part of text.split(',')) {
    const name = part.trim().toLowerCase();
    if (name === '') continue;
    if (name === '*') return STAR;
    (out ??= []).push(name);
  }
  return out === null ? null : out.sort();
}

function variesOnCookie(vary: string | string[] | undefined): boolean {
  if (vary === undefined) return false;
  const names = varyNames(vary);
  return names !== STAR && names !== null && names.includes('cookie');
}

const ABSENT = '\u0001';

/**
 * The request's values of the Vary'd headers, as one string: equal strings
 * select the same variant (RFC 9111 §4.1). An absent header differs from an
 * empty one; repeated headers are joined with ", " (their combined value).
 */
export function varyKey(names: readonly string[] | null, req: IncomingHttpHeaders): string {
  if (names === null) return '';
  let key = '';
  for (let i = 0; i < names.length; i++) {
    // Own properties only: a Vary naming `constructor` or `__proto__` is a header like any other.
    const name = names[i]!;
    const v = Object.hasOwn(req, name) ? req[name] : undefined;
    key += (v === undefined ? ABSENT : typeof v === 'string' ? v.trim() : v.join(', ')) + '\u0000';
  }
  return key;
}
