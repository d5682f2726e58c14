/**
 * Baseline: http-proxy 1.18 (what breakwater uses for upgrade tunnels only)
 * forwarding plain HTTP through a keep-alive agent. It shows what the classic
 * Node proxy library costs per request next to undici.
 *
 *   LISTEN_PORT=18081 UPSTREAM=http://127.0.0.1:18080 CONNECTIONS=32 node bench/baselines/http-proxy.ts
 */
import { Agent, createServer } from 'node:http';
import httpProxy from 'http-proxy';
import { exitWhenParentGoes } from '../lib/child-guard.ts';

const port = Number(process.env['LISTEN_PORT'] ?? 18081);
const upstream = process.env['UPSTREAM'] ?? 'http://127.0.0.1:18080';
const connections = Number(process.env['CONNECTIONS'] ?? 32);

const agent = new Agent({ keepAlive: true, maxSockets: connections, keepAliveMsecs: 30_000 });
const proxy = httpProxy.createProxyServer({ target: upstream, agent, xfwd: false });

proxy.on('error', (_err, _req, res) => {
  // `res` is a Socket for upgrade errors; plain requests get a 502.
  if ('writeHead' in res && !res.headersSent) {
    res.writeHead(502, { 'content-type': 'text/plain' });
    res.end('bad gateway\n');
  } else {
    res.destroy();
  }
});

const server = createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 65_000;

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`http-proxy baseline on http://127.0.0.1:${port} -> ${upstream}\n`);
});
exitWhenParentGoes(() => {
  server.close();
  proxy.close();
  agent.destroy();
});
