/**
 * Parsers for the network-shaped values of the config: listen addresses
 * (`host:port`, `[v6]:port`), upstream endpoint URLs and route host matches.
 * Like units.ts they return a value or what was expected, never throw, and
 * never echo their input (a URL may come from `${...}` and carry a secret).
 */
import { isIP, isIPv4, isIPv6 } from 'node:net';
import type { Endpoint, HostMatch, ListenerAddress } from './types.ts';
import type { Parsed } from './units.ts';

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const HOSTNAME_RE = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`, 'i');

export const ADDRESS_EXPECTED = 'an address host:port or [ipv6]:port with a port from 0 to 65535, such as 127.0.0.1:15001';

export function parseAddress(input: unknown): Parsed<ListenerAddress> {
  const bad = { ok: false, expected: ADDRESS_EXPECTED } as const;
  if (typeof input !== 'string') return bad;
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(\d{1,5})$/.exec(input);
  if (v6 !== null) {
    host = v6[1]!.toLowerCase();
    portText = v6[2]!;
    if (!isIPv6(host)) return bad;
  } else {
    const m = /^([^:[\]]+):(\d{1,5})$/.exec(input);
    if (m === null) return bad;
    host = m[1]!.toLowerCase();
    portText = m[2]!;
    if (!isIPv4(host) && !HOSTNAME_RE.test(host)) return bad;
  }
  const port = Number(portText);
  if (port > 65535) return bad;
  const text = isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
  return { ok: true, value: { host, port, text } };
}

/** 127.0.0.0/8, ::1 and localhost: the only places the admin API is safe by default. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  if (isIPv4(h)) return h.startsWith('127.');
  if (h.startsWith('::ffff:')) return isIPv4(h.slice(7)) && h.slice(7).startsWith('127.');
  return false;
}

/** 0.0.0.0 and :: take the port on every interface, so they clash with any other host on it. */
export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

export const URL_EXPECTED = 'an http:// or https:// URL with no path, query or fragment, such as http://payments:8080';

export function parseEndpoint(input: unknown): Parsed<Endpoint> {
  const bad = { ok: false, expected: URL_EXPECTED } as const;
  if (typeof input !== 'string') return bad;
  let u: URL;
  try {
    u = new URL(input);
  } catch {
    return bad;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return bad;
  if (u.username !== '' || u.password !== '') {
    return { ok: false, expected: 'a URL without credentials (inject them with requestHeaders.set)', secret: true };
  }
  if (u.pathname !== '/' || u.search !== '' || u.hash !== '' || /[?#]/.test(input)) return bad;
  const hostname = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  if (hostname === '') return bad;
  const protocol = u.protocol;
  const port = u.port === '' ? (protocol === 'https:' ? 443 : 80) : Number(u.port);
  const authority = isIPv6(hostname) ? `[${hostname}]:${port}` : `${hostname}:${port}`;
  return { ok: true, value: { origin: `${protocol}//${authority}`, protocol, hostname, port, authority } };
}

export const HOST_MATCH_EXPECTED = 'a host name such as payments.internal, or *.suffix such as *.svc.cluster.local';

/** Lower-case, port dropped (requests are matched without theirs). */
export function parseHostMatch(input: unknown): Parsed<HostMatch> {
  const bad = { ok: false, expected: HOST_MATCH_EXPECTED } as const;
  if (typeof input !== 'string') return bad;
  let h = input.toLowerCase();
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(h);
  if (bracketed !== null) {
    return isIPv6(bracketed[1]!) ? { ok: true, value: { kind: 'exact', host: `[${bracketed[1]!}]` } } : bad;
  }
  h = h.replace(/:\d{1,5}$/, '');
  if (h.startsWith('*.')) {
    const rest = h.slice(2);
    return HOSTNAME_RE.test(rest) ? { ok: true, value: { kind: 'suffix', suffix: `.${rest}` } } : bad;
  }
  if (isIP(h) === 4 || HOSTNAME_RE.test(h)) return { ok: true, value: { kind: 'exact', host: h } };
  return bad;
}
