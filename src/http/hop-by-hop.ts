/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) are about one connection and never
 * cross the proxy, in either direction. `proxy-*` covers proxy-connection,
 * proxy-authorization and proxy-authenticate: credentials meant for breakwater
 * itself (a client using HTTP_PROXY) must never reach an upstream.
 */
const HOP = new Set([
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  // Connection-specific by RFC 9113 §8.2.2 / RFC 7540 §3.2.1: a request
  // asking to upgrade to h2c is served as HTTP/1.1, and its settings must
  // not reach an upstream (h2c smuggling).
  'http2-settings',
  // Not hop-by-hop by RFC, but breakwater answers it itself (node sends
  // `100 Continue`), and undici refuses to forward it.
  'expect',
]);

/** `name` is lower-case. */
export function isHopByHop(name: string): boolean {
  return HOP.has(name) || name.startsWith('proxy-');
}

/**
 * The extra names listed in a `Connection` header value ("close, x-foo"),
 * lower-cased; null when there are none beyond close/keep-alive (the common case).
 */
export function connectionListed(value: string | string[] | undefined): Set<string> | null {
  if (value === undefined) return null;
  const text = Array.isArray(value) ? value.join(',') : value;
  let out: Set<string> | null = null;
  for (const part of text.split(',')) {
    const name = part.trim().toLowerCase();
    if (name === '' || name === 'close' || name === 'keep-alive') continue;
    (out ??= new Set()).add(name);
  }
  return out;
}
