import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { refusedPort } from '../helpers/upstream.ts';

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
    const dead = await refusedPort();
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: ws, address: 127.0.0.1:0, upstream: echo }
  - { name: dead, address: 127.0.0.1:0, upstream: dead }
upstreams:
  echo:
    url: http://127.0.0.1:${port}
    bulkhead: { maxConcurrent: 1 }
    circuitBreaker: {}
  dead:
    url: http://127.0.0.1:${dead}
    bulkhead: { maxConcurrent: 1 }
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

  it('answers 503 connect_failure when the upstream refuses, and gives the slot back', async () => {
    const client = new WebSocket(`ws://127.0.0.1:${px.port('dead')}/chat`);
    const res = await new Promise<{ status: number; code: unknown }>((resolve) => {
      client.on('unexpected-response', (_req, r) => resolve({ status: r.statusCode ?? 0, code: r.headers['x-breakwater-error'] }));
      client.on('error', () => resolve({ status: 0, code: null }));
    });
    assert.deepEqual(res, { status: 503, code: 'connect_failure' });
    const end = Date.now() + 2000;
    let state;
    do {
      await new Promise((r) => setTimeout(r, 20));
      state = JSON.parse((await request(`${px.adminUrl}/upstreams`)).body);
    } while (state.dead.bulkhead.active !== 0 && Date.now() < end);
    assert.equal(state.dead.bulkhead.active, 0);
  });
});
