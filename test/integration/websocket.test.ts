import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';

describe('WebSocket tunnels (SPEC §3)', () => {
  let server: http.Server;
  let wss: WebSocketServer;
  let px: TestProxy;
  const baseline = snapshotHandles();

  before(async () => {
    server = http.createServer((_req, res) => res.end('plain'));
    wss = new WebSocketServer({ server });
    wss.on('connection', (sock) => sock.on('message', (m) => sock.send(`echo:${m.toString()}`)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: ws, address: 127.0.0.1:0, upstream: echo }
upstreams:
  echo:
    url: http://127.0.0.1:${port}
    bulkhead: { maxConcurrent: 1 }
    circuitBreaker: {}
`);
  });

  after(async () => {
    await px.close();
    for (const c of wss.clients) c.terminate();
    wss.close();
    server.closeAllConnections();
    server.close();
    await assertNoLeaks(baseline);
  });

  it('echoes through the proxy, holding one bulkhead slot per open tunnel', async () => {
    const client = new WebSocket(`ws://127.0.0.1:${px.port('ws')}/chat`);
    await once(client, 'open');
    client.send('hello');
    const [msg] = await once(client, 'message');
    assert.equal(String(msg), 'echo:hello');
    let state = JSON.parse((await request(`${px.adminUrl}/upstreams`)).body);
    assert.equal(state.echo.bulkhead.active, 1);
    // A second tunnel finds the bulkhead full.
    const second = new WebSocket(`ws://127.0.0.1:${px.port('ws')}/chat`);
    const err = await new Promise<string>((resolve) => {
      second.on('unexpected-response', (_req, res) => resolve(String(res.statusCode)));
      second.on('error', (e) => resolve(e.message));
    });
    assert.match(err, /503/);
    client.close();
    await once(client, 'close');
    const end = Date.now() + 2000;
    do {
      await new Promise((r) => setTimeout(r, 20));
      state = JSON.parse((await request(`${px.adminUrl}/upstreams`)).body);
    } while (state.echo.bulkhead.active !== 0 && Date.now() < end);
    assert.equal(state.echo.bulkhead.active, 0, 'the slot is released when the tunnel closes');
  });
});
