/**
 * Baseline of the `grpc` scenario: the smallest fair Node HTTP/2 forwarder —
 * an h2c server whose streams are forwarded on a few long-lived h2c sessions
 * to the upstream (node's http2 client, round-robin), head, body and trailers
 * relayed, no policies, no logs. What breakwater adds on top of this is the
 * cost of its features and of undici's HTTP/2 client.
 *
 *   LISTEN_PORT=18081 UPSTREAM=http://127.0.0.1:18080 SESSIONS=4 node bench/baselines/h2-forwarder.ts
 */
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { exitWhenParentGoes } from '../lib/child-guard.ts';

const port = Number(process.env['LISTEN_PORT'] ?? 18081);
const upstream = process.env['UPSTREAM'] ?? 'http://127.0.0.1:18080';
const count = Number(process.env['SESSIONS'] ?? 4);

const sessions: ClientHttp2Session[] = [];
function session(i: number): ClientHttp2Session {
  let s = sessions[i];
  if (s === undefined || s.closed || s.destroyed) {
    s = http2.connect(upstream);
    s.on('error', () => {});
    sessions[i] = s;
  }
  return s;
}
let next = 0;

/** Request headers to forward: the pseudo-headers a client request needs, and every regular field. */
function forwardHeaders(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in h) if (name !== ':scheme' && name !== ':authority') out[name] = h[name];
  return out;
}

const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
server.on('stream', (down, headers) => {
  down.on('error', () => {});
  next = (next + 1) % count;
  const up = session(next).request(forwardHeaders(headers));
  up.on('error', () => !down.destroyed && down.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
  down.on('close', () => !up.destroyed && up.close(http2.constants.NGHTTP2_CANCEL));
  up.on('response', (h) => {
    if (down.destroyed) return;
    let trailers: OutgoingHttpHeaders = {};
    up.once('trailers', (t) => (trailers = t));
    down.respond(h, { waitForTrailers: true });
    down.once('wantTrailers', () => down.sendTrailers(trailers));
    up.pipe(down);
  });
  down.pipe(up);
});
server.on('sessionError', () => {});
server.listen(port, '127.0.0.1');
exitWhenParentGoes(() => {
  server.close();
  for (const s of sessions) s?.destroy();
});
