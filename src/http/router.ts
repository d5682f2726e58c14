/**
 * Route matching, compiled once per config load (SPEC §3). First match wins.
 *
 * Host routing is by map, not by scanning: for every exact host named in the
 * routes we precompute the ordered list of routes that could match it (routes
 * for that host plus routes without an exact host), so a listener with a
 * thousand host-routed upstreams costs one map lookup and a short scan.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { RouteConfig, RouteMatch } from '../config/types.ts';

export interface Routable<R> {
  readonly config: RouteConfig;
  readonly value: R;
}

export class Router<R> {
  readonly #byHost = new Map<string, Routable<R>[]>();
  /** Routes that may match a host not named by any exact-host route. */
  readonly #other: readonly Routable<R>[];

  constructor(routes: readonly Routable<R>[]) {
    // One pass in route order. A host's list starts as a copy of the
    // non-exact routes seen before its first route; every later non-exact
    // route is appended to every host's list. O(routes + hosts × wildcards),
    // not O(hosts × routes): 1,000 host routes build in well under a millisecond.
    const other: Routable<R>[] = [];
    const byHost = this.#byHost;
    for (const r of routes) {
      const h = r.config.match.host;
      if (h?.kind === 'exact') {
        let list = byHost.get(h.host);
        if (list === undefined) byHost.set(h.host, (list = other.slice()));
        list.push(r);
      } else {
        other.push(r);
        for (const list of byHost.values()) list.push(r);
      }
    }
    this.#other = other;
  }

  /**
   * Does some route's host condition accept `host` (path, method and headers
   * aside)? What `CONNECT host:80` needs to open a tunnel (SPEC §10.3).
   */
  hasHost(host: string): boolean {
    return this.findByHost(host, accept) !== null;
  }

  findByHost(host: string, accept: (value: R) => boolean): R | null {
    const candidates = this.#byHost.get(host) ?? this.#other;
    for (let i = 0; i < candidates.length; i++) {
      const r = candidates[i]!;
      if (hostMatches(r.config.match, host) && accept(r.value)) return r.value;
    }
    return null;
  }

  /** `host` lower-case without port; `path` without query; `method` upper-case. */
  match(host: string, path: string, method: string, req: HasHeaders): Routable<R> | null {
    const candidates = this.#byHost.get(host) ?? this.#other;
    for (let i = 0; i < candidates.length; i++) {
      const r = candidates[i]!;
      if (matches(r.config.match, host, path, method, req)) return r;
    }
    return null;
  }
}

/** The request, whose (lazily built) headers object is only read by header matchers. */
export interface HasHeaders {
  readonly headers: IncomingHttpHeaders;
}

function hostMatches(m: RouteMatch, host: string): boolean {
  const h = m.host;
  if (h === null) return true;
  if (h.kind === 'exact') return host === h.host;
  // `*.suffix` needs at least one label before the suffix, never the bare suffix.
  return host.length > h.suffix.length && host.endsWith(h.suffix);
}

function matches(m: RouteMatch, host: string, path: string, method: string, req: HasHeaders): boolean {
  if (!hostMatches(m, host)) return false;
  if (m.pathPrefix !== null && !path.startsWith(m.pathPrefix)) return false;
  if (m.methods !== null && !m.methods.has(method)) return false;
  if (m.headers !== null) {
    const headers = req.headers;
    for (let i = 0; i < m.headers.length; i++) {
      const [name, value] = m.headers[i]!;
      const v = headers[name];
      if (Array.isArray(v) ? !v.includes(value) : v !== value) return false;
    }
  }
  return true;
}

/** `stripPrefix`: /inventory/items with prefix /inventory/ → /items (query kept). */
export function stripPrefix(target: string, prefix: string): string {
  const rest = target.slice(prefix.length);
  if (rest === '' || rest[0] === '?') return '/' + rest;
  return rest[0] === '/' ? rest : '/' + rest;
}

function accept(): boolean {
  return true;
}
