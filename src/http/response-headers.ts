/**
 * An upstream's response head as the client gets it (SPEC §3).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Exchange } from '../pipeline/exchange.ts';
import { connectionListed, isHopByHop } from './hop-by-hop.ts';

/**
 * Hop-by-hop removed (and whatever the upstream's Connection header lists),
 * `x-request-id` set, no Content-Length on a 204 (RFC 9110 §8.6), and a
 * `Location` or `Content-Location` on the answering endpoint's own authority
 * rewritten to the authority the client used (nginx's `proxy_redirect
 * default`), so a client that follows a redirect comes back through
 * breakwater. Built as a flat [name, value, …] list, which node writes
 * without another copy.
 */
export function responseHeaders(h: IncomingHttpHeaders, ex: Exchange, status: number, endpoint: string): string[] {
  const listed = h.connection === undefined ? null : connectionListed(h.connection);
  const out: string[] = [];
  for (const name in h) {
    if (isHopByHop(name) || name === 'x-request-id') continue;
    if (listed !== null && listed.has(name)) continue;
    const v = h[name];
    if (v === undefined) continue;
    if (typeof v === 'string') {
      if (name === 'location' || name === 'content-location') out.push(name, rewriteLocation(v, endpoint, ex.originalHost));
      else if (name === 'content-length' && status === 204) continue;
      else out.push(name, v);
    } else for (let i = 0; i < v.length; i++) out.push(name, v[i]!);
  }
  // A HEAD answer says how a GET would be framed. With neither length nor
  // chunked, clients (llhttp) read it as close-delimited and drop the
  // connection; the GET would be chunked on this connection too.
  if (ex.method === 'HEAD' && h['transfer-encoding'] !== undefined && h['content-length'] === undefined) out.push('transfer-encoding', 'chunked');
  out.push('x-request-id', ex.requestId);
  return out;
}

/**
 * `http://ENDPOINT/path` → `http://CLIENT-AUTHORITY/path` when ENDPOINT is the
 * endpoint's `host:port` (or its host alone when the port is 80); any other
 * value is returned as is.
 */
export function rewriteLocation(value: string, endpoint: string, clientAuthority: string): string {
  if (clientAuthority === '' || value.length < 8 || value.slice(0, 7).toLowerCase() !== 'http://') return value;
  const start = 7;
  let end = start;
  while (end < value.length) {
    const c = value.charCodeAt(end);
    if (c === 47 || c === 63 || c === 35) break; // / ? #
    end++;
  }
  const authority = value.slice(start, end).toLowerCase();
  const ep = endpoint.toLowerCase();
  if (authority !== ep && !(ep.endsWith(':80') && authority === ep.slice(0, -3))) return value;
  return `http://${clientAuthority}${value.slice(end)}`;
}
