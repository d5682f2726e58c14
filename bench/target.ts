/**
 * The benchmark upstream: a minimal node:http server that answers every
 * request with the same 128-byte body over keep-alive connections.
 *
 *   TARGET_PORT=18080 node bench/target.ts
 *
 * It is the default upstream because it is the same everywhere Node runs, so
 * results from two machines compare. nginx is a faster target (TARGET=nginx in
 * run.ts uses it when installed); with the node target, the "direct" row is
 * bounded by this server sharing core 0 with the load generator.
 */
import { createServer } from 'node:http';
import { exitWhenParentGoes } from './lib/child-guard.ts';

const port = Number(process.env['TARGET_PORT'] ?? 18080);
const host = process.env['TARGET_HOST'] ?? '127.0.0.1';

const BODY = Buffer.alloc(128, 'x');
const HEADERS = { 'content-type': 'text/plain', 'content-length': String(BODY.length) };

const server = createServer((req, res) => {
  // Drain any request body so the connection stays reusable.
  req.resume();
  res.writeHead(200, HEADERS);
  res.end(BODY);
});
// Longer than any proxy's pool idle timeout: the proxy, not the target, decides
// when a pooled connection goes away, so no request races a closing socket.
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;

server.listen(port, host, () => {
  const addr = server.address();
  const bound = typeof addr === 'object' && addr !== null ? addr.port : port;
  process.stdout.write(`target listening on http://${host}:${bound}\n`);
});
exitWhenParentGoes(() => server.close());
