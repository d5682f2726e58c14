/**
 * Baseline: the smallest fair Node forwarder — a node:http server and an
 * undici Pool whose `stream()` writes the upstream response straight into the
 * server response. Keep-alive on both sides, hop-by-hop headers removed in
 * both directions, no policies, no logs. What breakwater adds on top of this
 * is the cost of its features.
 *
 *   LISTEN_PORT=18081 UPSTREAM=http://127.0.0.1:18080 CONNECTIONS=32 node bench/baselines/undici-proxy.ts
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { exitWhenParentGoes } from '../lib/child-guard.ts';
import { withoutHopByHop } from './hop-by-hop.ts';

const port = Number(process.env['LISTEN_PORT'] ?? 18081);
const upstream = process.env['UPSTREAM'] ?? 'http://127.0.0.1:18080';
const connections = Number(process.env['CONNECTIONS'] ?? 32);

const pool = new Pool(upstream, { connections, pipelining: 1, keepAliveTimeout: 30_000 });

// One factory for every request: the response travels as `opaque`, so no
// closure is allocated per request.
function intoResponse({ statusCode, headers, opaque }: Dispatcher.StreamFactoryData<ServerResponse>): ServerResponse {
  opaque.writeHead(statusCode, withoutHopByHop(headers));
  return opaque;
}

function hasBody(h: IncomingHttpHeaders): boolean {
  return h['content-length'] !== undefined || h['transfer-encoding'] !== undefined;
}

const server = createServer((req, res) => {
  const headers = withoutHopByHop(req.headers);
  delete headers['host']; // undici sets the upstream's authority
  pool.stream(
    {
      path: req.url ?? '/',
      method: req.method as Dispatcher.HttpMethod,
      headers,
      body: hasBody(req.headers) ? req : null,
      opaque: res,
    },
    intoResponse,
    (err) => {
      if (err === null) return;
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end('bad gateway\n');
      } else {
        res.destroy(err);
      }
    },
  );
});
server.keepAliveTimeout = 65_000;

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`undici baseline on http://127.0.0.1:${port} -> ${upstream}\n`);
});
exitWhenParentGoes(() => {
  server.close();
  void pool.close();
});
