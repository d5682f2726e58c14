import type { IncomingHttpHeaders } from 'node:http';

// RFC 9110 §7.6.1 plus the legacy ones proxies still drop (the SPEC §3 list).
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** A copy of `headers` without hop-by-hop headers and those named in `connection`. */
export function withoutHopByHop(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const named = headers['connection'];
  const extra = named === undefined ? null : new Set(named.toLowerCase().split(',').map((s) => s.trim()));
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || extra?.has(name) === true) continue;
    out[name] = value;
  }
  return out;
}
