/**
 * What the listener edge does with byte streams real clients and hostile
 * ones send (SPEC §3): answers in request order, nothing processed behind an
 * answer that closes the connection, strict Host, HTTP/1.0 framing, the
 * Upgrade path under the same header rules, underscore names, h2c, and slow
 * request bodies bounded. Judged by what reaches the upstream as much as by
 * what the client reads.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { WebSocketServer } from 'ws';
import { rawRequest } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

/** Status lines of every response in a raw byte stream, in order. */
function statuses(raw: string): number[] {
  return [...raw.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
}

/** 'closed' if the socket closes within `ms`, else 'open'; leaves no timer behind. */
function closedWithin(socket: net.Socket, ms: number): Promise<'closed' | 'open'> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve('open'), ms);
    socket.once('close', () => {
      clearTimeout(t);
      resolve('closed');
    });
  });
}

describe('the listener edge with raw byte streams (SPEC §3)', () => {
  let up: Upstream;
  let canary: net.Server;
  let canaryHits = 0;
  let px: TestProxy;
  const baseline = snapshotHandles();

  before(async () => {
    up = await startUpstream((req) => (req.url.startsWith('/slow') ? { delayMs: 300, body: 'slow' } : { echo: true }));
    canary = net.createServer((s) => {
      canaryHits++;
      s.destroy();
    });
    canary.listen(0, '127.0.0.1');
    await once(canary, 'listening');
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: egress
    address: 127.0.0.1:0
    limits: { headerSize: 2KiB, bodySize: 1KiB }
    routes:
      - match: { host: api.test }
        upstream: up
  - name: direct
    address: 127.0.0.1:0
    upstream: up
upstreams:
  up:
    url: ${up.origin}
    requestHeaders: { remove: [x-internal] }
`);
  });

  beforeEach(() => up.reset());

  after(async () => {
    await px.close();
    await up.close();
    canary.close();
    await assertNoLeaks(baseline);
  });

  it('answers a pipelined GET before a refused CONNECT, then closes (RFC 9112 §9.3)', async () => {
    const port = px.port('egress');
    const r = await rawRequest(port, `GET /slow HTTP/1.1\r\nHost: api.test\r\n\r\nCONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\n\r\n`);
    assert.deepEqual(statuses(r.raw), [200, 405]);
    // By status line: a random x-request-id in the 200's head may contain "405".
    assert.ok(r.raw.indexOf('slow') < r.raw.indexOf('HTTP/1.1 405'), 'the GET body comes before the 405');
    assert.equal(r.closed, true);
    assert.equal(canaryHits, 0);
  });

  it('answers a pipelined GET before an Upgrade to an unrouted host', async () => {
    const r = await rawRequest(
      px.port('egress'),
      `GET /slow HTTP/1.1\r\nHost: api.test\r\n\r\nGET /ws HTTP/1.1\r\nHost: nowhere.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    assert.deepEqual(statuses(r.raw), [200, 404]);
    assert.ok(r.raw.indexOf('slow') < r.raw.indexOf('HTTP/1.1 404'), 'the GET body comes before the 404');
  });

  for (const [name, first] of [
    ['a duplicate Host (400)', 'GET /a HTTP/1.1\r\nHost: api.test\r\nHost: api.test\r\n\r\n'],
    ['userinfo in absolute-form (400)', 'GET http://u@api.test/a HTTP/1.1\r\nHost: api.test\r\n\r\n'],
    ['a declared body over bodySize (413)', 'POST /a HTTP/1.1\r\nHost: api.test\r\nContent-Length: 5000\r\n\r\n'],
    ['a head over headerSize (431)', `GET /a HTTP/1.1\r\nHost: api.test\r\nX-Big: ${'b'.repeat(3000)}\r\n\r\n`],
  ] as const) {
    it(`does not process a request pipelined after ${name} (RFC 9112 §9.6)`, async () => {
      const r = await rawRequest(px.port('egress'), `${first}GET /second HTTP/1.1\r\nHost: api.test\r\n\r\n`);
      const s = statuses(r.raw);
      assert.equal(s.length, 1, `one answer only, got ${r.raw.slice(0, 300)}`);
      assert.ok(s[0]! >= 400);
      assert.equal(r.closed, true);
      assert.equal(up.requests.length, 0, 'nothing reached the upstream');
    });
  }

  for (const host of ['evil.example@api.test', 'api.test,other.test', 'api.test/x', 'api.test:junk', 'api.test:99999', 'api.test\x80', 'api .test']) {
    it(`answers Host ${JSON.stringify(host)} with 400 and routes nothing (RFC 9110 §7.2)`, async () => {
      const r = await rawRequest(px.port('egress'), Buffer.from(`GET /a HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 'latin1'));
      assert.match(r.raw, /^HTTP\/1\.1 400/);
      assert.equal(up.requests.length, 0);
    });
  }

  it('closes after an HTTP/1.0 request with Transfer-Encoding and processes nothing behind it (RFC 9112 §6.1)', async () => {
    const r = await rawRequest(
      px.port('direct'),
      'POST /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    assert.equal(statuses(r.raw.replaceAll('HTTP/1.0', 'HTTP/1.1')).length, 1, r.raw.slice(0, 300));
    assert.equal(r.closed, true);
    assert.deepEqual(
      up.requests.map((q) => q.url),
      ['/a'],
    );
  });

  it('answers a request executed upstream even when bytes after its Connection: close are malformed', async () => {
    const r = await rawRequest(px.port('direct'), 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nokGET /b HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.deepEqual(statuses(r.raw), [200]);
    assert.equal(r.closed, true);
    assert.deepEqual(
      up.requests.map((q) => q.url),
      ['/a'],
    );
  });

  it('answers a request executed upstream, then a 400 for the malformed request pipelined behind it', async () => {
    const r = await rawRequest(px.port('direct'), 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n');
    assert.deepEqual(statuses(r.raw), [200, 400]);
    assert.equal(r.closed, true);
  });

  it('ignores Upgrade on an HTTP/1.0 request (RFC 9110 §7.8)', async () => {
    const r = await rawRequest(
      px.port('direct'),
      'GET /ws HTTP/1.0\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    assert.match(r.raw, /^HTTP\/1\.1 200/);
    assert.equal(up.requests[0]?.headers.upgrade, undefined);
  });

  it('drops header names with underscores before the upstream (as nginx does)', async () => {
    const r = await rawRequest(px.port('direct'), 'GET /u HTTP/1.1\r\nHost: x\r\nContent_Length: 5\r\nX_Tenant: a\r\nX-Kept: 1\r\nConnection: close\r\n\r\n');
    assert.match(r.raw, /^HTTP\/1\.1 200/);
    const h = up.requests[0]!.headers;
    assert.equal(h['content_length'], undefined);
    assert.equal(h['x_tenant'], undefined);
    assert.equal(h['x-kept'], '1');
  });

  it('serves an h2c upgrade request as plain HTTP/1.1, without Upgrade or HTTP2-Settings upstream, then closes', async () => {
    const r = await rawRequest(
      px.port('direct'),
      'GET /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    // Answered, then closed: nothing behind an Upgrade head is processed.
    assert.deepEqual(statuses(r.raw), [200]);
    assert.equal(r.closed, true);
    assert.match(r.raw, /connection: close/i);
    assert.deepEqual(
      up.requests.map((q) => q.url),
      ['/h2c'],
    );
    const h = up.requests[0]!.headers;
    assert.equal(h.upgrade, undefined);
    assert.equal(h['http2-settings'], undefined);
  });

  it('closes the connection of an unrouted request whose body trickles in, instead of reading it at the client’s pace', async () => {
    const socket = net.connect(px.port('egress'), '127.0.0.1');
    await once(socket, 'connect');
    socket.write('POST /a HTTP/1.1\r\nHost: nowhere.test\r\nContent-Length: 1000\r\n\r\n');
    let got = '';
    socket.on('data', (c: Buffer) => (got += c.toString()));
    socket.on('error', () => {});
    const drip = setInterval(() => socket.writable && socket.write('x'), 100);
    const outcome = await closedWithin(socket, 3000);
    clearInterval(drip);
    socket.destroy();
    assert.equal(outcome, 'closed');
    assert.match(got, /^HTTP\/1\.1 404/);
    assert.match(got, /connection: close/i);
  });
});

describe('slow requests are bounded by the listener limits', () => {
  let up: Upstream;
  let px: TestProxy;

  before(async () => {
    up = await startUpstream({ echo: true });
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: l
    address: 127.0.0.1:0
    upstream: up
    limits: { headerTimeout: 500ms, requestTimeout: 1s }
upstreams:
  up:
    url: ${up.origin}
    retry: { maxRetries: 0 }
    timeout: { total: 30s, idle: 30s }
`);
  });

  after(async () => {
    await px.close();
    await up.close();
  });

  it('answers a body trickled past requestTimeout with 408 or closes, within a few seconds', async () => {
    const socket = net.connect(px.port('l'), '127.0.0.1');
    await once(socket, 'connect');
    const started = Date.now();
    socket.write('POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n');
    let got = '';
    socket.on('data', (c: Buffer) => (got += c.toString()));
    socket.on('error', () => {});
    const drip = setInterval(() => socket.writable && socket.write('x'), 200);
    const outcome = await closedWithin(socket, 6000);
    clearInterval(drip);
    socket.destroy();
    assert.equal(outcome, 'closed', 'the connection was closed');
    assert.ok(Date.now() - started < 6000);
    if (got !== '') assert.match(got, /^HTTP\/1\.1 408/);
  });

  it('answers a head that never completes within headerTimeout with 408', async () => {
    const socket = net.connect(px.port('l'), '127.0.0.1');
    await once(socket, 'connect');
    socket.write('GET /a HTTP/1.1\r\nHost: x\r\n');
    let got = '';
    socket.on('data', (c: Buffer) => (got += c.toString()));
    socket.on('error', () => {});
    const drip = setInterval(() => socket.writable && socket.write('X-A: b\r\n'), 100);
    const outcome = await closedWithin(socket, 5000);
    clearInterval(drip);
    socket.destroy();
    assert.equal(outcome, 'closed');
    assert.match(got, /^HTTP\/1\.1 408/);
  });
});

describe('WebSocket handshakes follow the header rules (SPEC §3)', () => {
  let server: http.Server;
  let wss: WebSocketServer;
  let px: TestProxy;
  const handshakes: http.IncomingHttpHeaders[] = [];

  before(async () => {
    server = http.createServer((_req, res) => res.end('plain'));
    wss = new WebSocketServer({ server });
    wss.on('headers', (_h, req) => handshakes.push(req.headers));
    wss.on('connection', (sock) => sock.close());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: ws, address: 127.0.0.1:0, upstream: echo, limits: { headerSize: 2KiB } }
upstreams:
  echo:
    url: http://127.0.0.1:${port}
    requestHeaders: { set: { x-injected: yes }, remove: [x-internal] }
`);
  });

  after(async () => {
    await px.close();
    for (const c of wss.clients) c.terminate();
    wss.close();
    server.closeAllConnections();
    server.close();
  });

  const handshake = (extra: string): string =>
    `GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, X-Listed\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

  it('strips hop-by-hop and Connection-listed headers, drops underscore names, applies requestHeaders', async () => {
    handshakes.length = 0;
    const r = await rawRequest(
      px.port('ws'),
      handshake('Proxy-Authorization: Basic c2VjcmV0\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nX-Listed: 1\r\nX-Internal: secret\r\nX_Under: 1\r\nX-Kept: 1\r\n'),
      { timeoutMs: 1000 },
    );
    assert.match(r.raw, /^HTTP\/1\.1 101/);
    const h = handshakes[0]!;
    for (const gone of ['proxy-authorization', 'keep-alive', 'te', 'x-listed', 'x-internal', 'x_under']) assert.equal(h[gone], undefined, `${gone} must not reach the upstream`);
    assert.equal(h['x-kept'], '1');
    assert.equal(h['x-injected'], 'yes');
    assert.equal(h.upgrade, 'websocket');
  });

  it('refuses an Upgrade request with a body (a desync) with 400', async () => {
    handshakes.length = 0;
    const r = await rawRequest(px.port('ws'), handshake('Content-Length: 5\r\n') + 'hello', { timeoutMs: 1000 });
    assert.match(r.raw, /^HTTP\/1\.1 400/);
    assert.equal(handshakes.length, 0);
  });

  it('answers an Upgrade head over headerSize with 431', async () => {
    handshakes.length = 0;
    const r = await rawRequest(px.port('ws'), handshake(`X-Big: ${'b'.repeat(3000)}\r\n`), { timeoutMs: 1000 });
    assert.match(r.raw, /^HTTP\/1\.1 431/);
    assert.equal(handshakes.length, 0);
  });
});
