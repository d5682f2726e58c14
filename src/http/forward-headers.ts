/**
 * The request headers as they go upstream (SPEC §3): hop-by-hop removed,
 * `x-forwarded-for/-proto/-host` appended, `x-request-id` set, `traceparent`
 * and `tracestate` untouched; then each upstream's `requestHeaders` rewrite
 * and the Host header (its endpoint's authority, or the client's with
 * `preserveHost`).
 *
 * Built in one pass over rawHeaders into a flat [name, value, …] array that
 * undici takes as is; the Host value sits last so each attempt can set it
 * without copying.
 *
 * An HTTP/2 request (h2c, http/h2-edge.ts) arrives as the same kind of
 * rawHeaders with its pseudo-headers first: `:authority` is its Host, and no
 * `:` name ever goes upstream. Connection-specific headers never reach this
 * far over HTTP/2 (malformed, RFC 9113 §8.2.2), and would be removed here
 * as hop-by-hop anyway.
 */
import type { HeaderRewrite } from '../config/types.ts';
import type { Exchange } from '../pipeline/exchange.ts';
import { connectionListed, isHopByHop } from './hop-by-hop.ts';

/**
 * `allowUnderscores` false (the built-in): header names with `_` are dropped,
 * as nginx does — some servers read `Content_Length` as `Content-Length`.
 */
export function buildBaseHeaders(ex: Exchange, allowUnderscores = false): void {
  const req = ex.req;
  const raw = req.rawHeaders;
  let connection: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 10 && raw[i]!.toLowerCase() === 'connection') connection = connection === undefined ? raw[i + 1] : `${connection},${raw[i + 1]}`;
  }
  const listed = connection === undefined ? null : connectionListed(connection);
  const out: string[] = [];
  let xff: string | undefined;
  let xfp: string | undefined;
  let xfh: string | undefined;
  let host: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    if (name.charCodeAt(0) === 58 /* : */) {
      // The edge refused an HTTP/2 request whose Host differs from its :authority.
      if (name === ':authority') host = value;
      continue;
    }
    if (isHopByHop(name)) continue;
    if (listed !== null && listed.has(name)) continue;
    if (!allowUnderscores && name.includes('_')) continue;
    switch (name) {
      case 'host':
        host ??= value;
        continue;
      case 'x-request-id':
        continue;
      case 'x-forwarded-for':
        xff = xff === undefined ? value : `${xff}, ${value}`;
        continue;
      case 'x-forwarded-proto':
        xfp = xfp === undefined ? value : `${xfp}, ${value}`;
        continue;
      case 'x-forwarded-host':
        xfh = xfh === undefined ? value : `${xfh}, ${value}`;
        continue;
    }
    out.push(name, value);
  }
  // An absolute-form request's authority wins over its Host header (RFC 9112 §3.2.2).
  const url = req.url ?? '/';
  const authority = url.charCodeAt(0) === 47 ? (host ?? '') : authorityOf(url);
  const client = ex.client ?? '';
  out.push('x-forwarded-for', xff === undefined ? client : `${xff}, ${client}`);
  out.push('x-forwarded-proto', xfp === undefined ? 'http' : `${xfp}, http`);
  if (authority !== '') out.push('x-forwarded-host', xfh === undefined ? authority : `${xfh}, ${authority}`);
  else if (xfh !== undefined) out.push('x-forwarded-host', xfh);
  out.push('x-request-id', ex.requestId);
  out.push('host', authority);
  ex.originalHost = authority;
  ex.baseHeaders = out;
  ex.upstreamHeaders = out;
  ex.hostIndex = out.length - 1;
}

function authorityOf(url: string): string {
  const start = url.indexOf('//') + 2;
  let end = start;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 47 || c === 63 || c === 35) break; // / ? #
    end++;
  }
  const a = url.slice(start, end);
  const at = a.lastIndexOf('@');
  return at < 0 ? a : a.slice(at + 1);
}

/** Applies an upstream's `requestHeaders` to the base headers (a copy only when there is a rewrite). */
export function applyRewrite(ex: Exchange, rw: HeaderRewrite, removeSet: ReadonlySet<string>): void {
  const base = ex.baseHeaders;
  if (rw.set.length === 0 && rw.remove.length === 0) {
    ex.upstreamHeaders = base;
    ex.hostIndex = base.length - 1;
    return;
  }
  const out: string[] = [];
  // base ends with the host pair: keep it last.
  for (let i = 0; i < base.length - 2; i += 2) {
    const name = base[i]!;
    if (removeSet.has(name)) continue;
    out.push(name, base[i + 1]!);
  }
  for (const [name, value] of rw.set) out.push(name, value);
  out.push('host', ex.originalHost);
  ex.upstreamHeaders = out;
  ex.hostIndex = out.length - 1;
}
