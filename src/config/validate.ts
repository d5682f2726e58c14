/**
 * Cross-field rules: what one key cannot say about itself. They run on the
 * validated tree even when it has schema errors (values that failed are
 * simply absent), so one `validate` run lists every problem of the file.
 * Each rule reports at a config path; load.ts turns paths into line:column.
 */
import { checkGlobalLimits } from './redis.ts';
import { NEVER_LOGGED } from '../observability/never-logged.ts';
import { policyLayers } from './compile.ts';
import { innermost, mergeBlocks, type Layer } from './merge.ts';
import { isWildcard } from './net.ts';
import { fallbackSchema, type RawConfig, type RawFallback, type RawListener, type RawRoute, type RawTimeout, type RawUpstream } from './schema.ts';
import type { HostMatch, ListenerAddress } from './types.ts';
import { formatDuration } from './units.ts';
import { childPath } from './yaml-nodes.ts';

export type Report = (path: string, message: string) => void;

export function validateSemantics(raw: RawConfig, reportTo: Report): void {
  // A rule about an inherited block (defaults.fallback) would otherwise fire once per upstream.
  const seen = new Set<string>();
  const report: Report = (path, message) => {
    const key = `${path}\n${message}`;
    if (seen.has(key)) return;
    seen.add(key);
    reportTo(path, message);
  };
  const upstreams = raw.upstreams ?? new Map<string, RawUpstream | undefined>();
  const listeners = raw.listeners ?? [];
  checkLogHeaders(raw, report);
  checkGlobalLimits(raw, report);
  checkNames(listeners, report);
  checkAddresses(raw, listeners, report);
  checkTimeoutBlock('defaults.timeout', raw.defaults?.timeout, report);
  checkUpstreamRef('defaults.fallback.upstream', raw.defaults?.fallback?.upstream, upstreams, report, 'fallback');
  for (const [name, u] of upstreams) {
    if (u === undefined) continue;
    const p = childPath('upstreams', name);
    checkTimeoutBlock(`${p}.timeout`, u.timeout, report);
    checkProtocol(p, u, report);
    checkUpstreamRef(`${p}.fallback.upstream`, u.fallback?.upstream, upstreams, report, 'fallback');
    checkFallbackTarget(policyLayers(raw, 'fallback', name), report);
  }
  const cycles = checkFallbackCycles(raw, upstreams, report);
  listeners.forEach((l, i) => {
    if (l === undefined) return;
    const lp = `listeners[${i}]`;
    checkUpstreamRef(`${lp}.upstream`, l.upstream, upstreams, report, 'listener');
    l.routes?.forEach((r, j) => {
      if (r === undefined) return;
      const rp = `${lp}.routes[${j}]`;
      checkUpstreamRef(`${rp}.upstream`, r.upstream, upstreams, report, 'route');
      checkTimeoutBlock(`${rp}.timeout`, r.timeout, report);
      if (r.stripPrefix === true && r.match?.pathPrefix === undefined) {
        report(`${rp}.stripPrefix`, 'stripPrefix needs match.pathPrefix: there is no prefix to strip');
      }
      if (r.allowConnect === true) checkAllowConnect(rp, r, upstreams, report);
      const target = r.fallback?.upstream;
      if (typeof target === 'string') {
        checkUpstreamRef(`${rp}.fallback.upstream`, target, upstreams, report, 'fallback');
        const cycle = cycles.get(target);
        if (cycle !== undefined) report(`${rp}.fallback.upstream`, `fallback ${target} leads into the fallback cycle ${cycle}`);
      }
      if (r.fallback !== undefined && r.upstream !== undefined) {
        checkFallbackTarget(policyLayers(raw, 'fallback', r.upstream, { path: rp, raw: r }), report);
      }
    });
  });
}

/**
 * `protocol` (SPEC §10.1) against the endpoints' schemes: h2c is HTTP/2 in
 * cleartext, h2 is HTTP/2 negotiated by TLS ALPN; neither can mean the other.
 */
function checkProtocol(p: string, u: RawUpstream, report: Report): void {
  const proto = u.protocol;
  if (proto !== 'h2c' && proto !== 'h2') return;
  const endpoints = u.url !== undefined ? [u.url] : (u.endpoints ?? []);
  const wrong = proto === 'h2c' ? 'https:' : 'http:';
  if (endpoints.some((e) => e !== undefined && e.protocol === wrong)) {
    report(
      `${p}.protocol`,
      proto === 'h2c'
        ? 'h2c is HTTP/2 over cleartext and needs http:// endpoints: use h2 (or auto) for https:// endpoints'
        : 'h2 is HTTP/2 over TLS and needs https:// endpoints: use h2c for HTTP/2 over cleartext http:// endpoints',
    );
  }
}

/**
 * `allowConnect` (SPEC §10.3): a CONNECT tunnel is opaque (the client does
 * TLS end to end), so nothing but the host can decide it — a path, method or
 * header condition on such a route would look like a restriction the tunnel
 * never applies. And a tunnel only ever reaches one of the upstream's own
 * endpoints: a route whose host condition matches none of them (on a port
 * other than 80, which is served as plain HTTP) could never open one.
 */
function checkAllowConnect(rp: string, r: RawRoute, upstreams: ReadonlyMap<string, RawUpstream | undefined>, report: Report): void {
  for (const key of ['pathPrefix', 'methods', 'headers'] as const) {
    if (r.match?.[key] !== undefined) {
      report(
        `${rp}.match.${key}`,
        `a route with allowConnect matches CONNECT by host only: a tunnel's bytes are TLS breakwater cannot read, so match.${key} would not restrict it; put allowConnect on a route that matches by host alone`,
      );
    }
  }
  const u = r.upstream === undefined ? undefined : upstreams.get(r.upstream);
  if (u === undefined) return;
  const endpoints = u.url !== undefined ? [u.url] : (u.endpoints ?? []);
  const host = r.match?.host;
  const reachable = endpoints.some((e) => e !== undefined && e.port !== 80 && (host === undefined || hostMatchAccepts(host, e.authority.slice(0, e.authority.lastIndexOf(':')))));
  if (!reachable && endpoints.length > 0) {
    report(
      `${rp}.allowConnect`,
      `allowConnect: no endpoint of upstream ${r.upstream} is at a host this route matches, on a port other than 80; a CONNECT tunnel only ever reaches one of the upstream's own endpoints`,
    );
  }
}

function hostMatchAccepts(m: HostMatch, host: string): boolean {
  return m.kind === 'exact' ? host === m.host : host.length > m.suffix.length && host.endsWith(m.suffix);
}

function checkLogHeaders(raw: RawConfig, report: Report): void {
  raw.log?.headers?.forEach((h, i) => {
    if (h !== undefined && NEVER_LOGGED.has(h)) report(`log.headers[${i}]`, `${h} is never logged (it carries credentials): remove it from log.headers`);
  });
}

/** Listener names, and route names across all listeners: they are metric labels and keys of per-route state. */
function checkNames(listeners: readonly (RawListener | undefined)[], report: Report): void {
  const listenerNames = new Map<string, string>();
  const routeNames = new Map<string, string>();
  listeners.forEach((l, i) => {
    if (l?.name === undefined) return;
    const lp = `listeners[${i}]`;
    const prev = listenerNames.get(l.name);
    if (prev !== undefined) report(`${lp}.name`, `listener name ${l.name} is already used by ${prev}: listener names are unique`);
    else listenerNames.set(l.name, lp);
    const routes: { name: string; path: string; explicit: boolean }[] = [];
    if (l.routes !== undefined) {
      l.routes.forEach((r, j) => {
        if (r === undefined) return;
        const rp = `${lp}.routes[${j}]`;
        routes.push(r.name !== undefined ? { name: r.name, path: `${rp}.name`, explicit: true } : { name: `${l.name}/${j}`, path: rp, explicit: false });
      });
    } else if (l.upstream !== undefined) {
      routes.push({ name: l.name, path: `${lp}.upstream`, explicit: false });
    }
    for (const r of routes) {
      const prev = routeNames.get(r.name);
      if (prev === undefined) {
        routeNames.set(r.name, r.path);
        continue;
      }
      const how = r.explicit ? '' : ' (the name it gets by default)';
      report(r.path, `route name ${r.name}${how} is already used by ${prev}: route names are unique across all listeners`);
    }
  });
}

function checkAddresses(raw: RawConfig, listeners: readonly (RawListener | undefined)[], report: Report): void {
  const taken: { addr: ListenerAddress; what: string }[] = [];
  const admin = raw.admin?.address;
  if (admin !== undefined) taken.push({ addr: admin, what: 'the admin API (admin.address)' });
  listeners.forEach((l, i) => {
    const a = l?.address;
    if (a === undefined) return;
    // Port 0 asks the OS for a free port: any number of listeners may say so.
    if (a.port !== 0) {
      const clash = taken.find((t) => t.addr.port === a.port && (t.addr.host === a.host || isWildcard(t.addr.host) || isWildcard(a.host)));
      if (clash !== undefined) {
        const other = clash.addr.text === a.text ? '' : ` on ${clash.addr.text}`;
        report(`listeners[${i}].address`, `address ${a.text} is already taken by ${clash.what}${other}: two listeners cannot share an address`);
        return;
      }
    }
    taken.push({ addr: a, what: l?.name !== undefined ? `listener ${l.name} (listeners[${i}])` : `listeners[${i}]` });
  });
}

function checkTimeoutBlock(path: string, t: RawTimeout | undefined, report: Report): void {
  if (t?.perTry !== undefined && t.total !== undefined && t.perTry > t.total) {
    report(`${path}.perTry`, `perTry ${formatDuration(t.perTry)} is greater than total ${formatDuration(t.total)} in the same block: an attempt cannot outlast the request`);
  }
}

function checkUpstreamRef(
  path: string,
  ref: string | null | undefined,
  upstreams: ReadonlyMap<string, unknown>,
  report: Report,
  what: 'listener' | 'route' | 'fallback',
): void {
  if (typeof ref !== 'string' || upstreams.has(ref)) return;
  const known = [...upstreams.keys()];
  const list = known.length === 0 ? 'no upstreams are defined' : `defined: ${known.slice(0, 10).join(', ')}${known.length > 10 ? ', ...' : ''}`;
  const role = what === 'fallback' ? 'fallback upstream' : 'upstream';
  report(path, `unknown ${role} ${ref} (${list})`);
}

/** Once merged, a fallback must have somewhere to go. Reported at the most specific block that holds one. */
function checkFallbackTarget(layers: Layer<RawFallback>[], report: Report): void {
  const f = mergeBlocks(fallbackSchema, layers);
  if (f === undefined) return;
  if (typeof f.upstream === 'string' || (f.response !== undefined && f.response !== null)) return;
  const at = innermost(layers);
  if (at === null) return;
  report(at.path, 'a fallback needs upstream and/or response (after merging with defaults), found neither');
}

/**
 * Fallback upstreams form a graph with at most one edge per upstream (its
 * effective fallback.upstream), so one pass finds every cycle. Each cycle is
 * reported once, at the edge of its first member in file order. Returns, for
 * every upstream whose chain runs into a cycle, that cycle as text.
 */
function checkFallbackCycles(raw: RawConfig, upstreams: ReadonlyMap<string, RawUpstream | undefined>, report: Report): Map<string, string> {
  const inherited = raw.defaults?.fallback?.upstream;
  const edge = (name: string): { to: string; path: string } | null => {
    const own = upstreams.get(name)?.fallback;
    if (own !== undefined && own.upstream !== undefined) {
      return typeof own.upstream === 'string' && upstreams.has(own.upstream) ? { to: own.upstream, path: `${childPath('upstreams', name)}.fallback.upstream` } : null;
    }
    return typeof inherited === 'string' && upstreams.has(inherited) ? { to: inherited, path: 'defaults.fallback.upstream' } : null;
  };
  const leadsInto = new Map<string, string>();
  const done = new Set<string>();
  const reported = new Set<string>();
  for (const start of upstreams.keys()) {
    if (done.has(start)) continue;
    const chain: string[] = [];
    const onChain = new Map<string, number>();
    let cur: string | null = start;
    let found: string | null = null;
    while (cur !== null && !done.has(cur)) {
      if (onChain.has(cur)) {
        const members = chain.slice(onChain.get(cur)!);
        found = [...members, cur].join(' → ');
        const first = members[0]!;
        const e = edge(first)!;
        if (!reported.has(e.path + found)) {
          reported.add(e.path + found);
          report(e.path, `fallback chain has a cycle: ${found}`);
        }
        break;
      }
      onChain.set(cur, chain.length);
      chain.push(cur);
      cur = edge(cur)?.to ?? null;
    }
    // Everything on this chain runs into the cycle found, or into whatever the node we stopped at runs into.
    const into = found ?? (cur !== null ? (leadsInto.get(cur) ?? null) : null);
    for (const n of chain) {
      done.add(n);
      if (into !== null) leadsInto.set(n, into);
    }
  }
  return leadsInto;
}
