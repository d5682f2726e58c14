/**
 * Tunnels on GET /tap (SPEC §13, §3, §10.3): a WebSocket or CONNECT tunnel's
 * `tunnel` line reaches the tap when the tunnel closes or is refused — the
 * same JSON the log writes — under the status observability/tap.ts
 * `tunnelStatus` gives it, so the route, status and flag filters select
 * tunnel lines as they do request lines; nothing is built for the tap while
 * nobody listens; the access log off does not take them off the tap.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type LogLine, type TestProxy } from '../helpers/proxy.ts';
import { openTap, type Tap } from '../helpers/tap.ts';
import { refusedPort } from '../helpers/upstream.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

/** The lines a tap has received that are tunnel lines. */
const tunnelsOn = (t: Tap): Record<string, unknown>[] => t.lines.filter((l) => l['msg'] === 'tunnel');

/** A WebSocket through the proxy: one message echoed, then closed (resolves once the proxy's side has closed too). */
async function echoOnce(url: string): Promise<void> {
  const client = new WebSocket(url);
  await once(client, 'open');
  client.send('hello');
  const [msg] = await once(client, 'message');
  assert.equal(String(msg), 'echo:hello');
  client.close();
  await once(client, 'close');
}

/** A WebSocket handshake the proxy refuses: its status and x-breakwater-error. */
function refusedUpgrade(url: string): Promise<{ status: number; code: unknown }> {
  const client = new WebSocket(url);
  return new Promise((resolve) => {
    client.on('unexpected-response', (_req, r) => {
      resolve({ status: r.statusCode ?? 0, code: r.headers['x-breakwater-error'] });
      r.resume();
    });
    client.on('error', () => resolve({ status: 0, code: null }));
  });
}

/** Sends `CONNECT authority` and reads the answer's head: on 200 the socket is the open tunnel, else it is closed. */
async function connect(port: number, authority: string): Promise<{ status: number; code: string | undefined; socket: net.Socket }> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  let buf = Buffer.alloc(0);
  while (!buf.includes('\r\n\r\n')) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    buf = Buffer.concat([buf, chunk]);
  }
  const head = buf.subarray(0, buf.indexOf('\r\n\r\n')).toString('latin1');
  const status = Number(head.split(' ')[1]);
  const code = /x-breakwater-error: ([a-z_]+)/i.exec(head)?.[1];
  if (status !== 200) {
    socket.resume();
    await once(socket, 'close');
  }
  return { status, code, socket };
}

/** One round trip through an open CONNECT tunnel to the echo server, then the client closes it. */
async function pingThrough(socket: net.Socket): Promise<void> {
  socket.write('ping');
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  assert.equal(chunk.toString(), 'ping');
  socket.end();
  await once(socket, 'close');
}

const force = async (adminUrl: string, upstream: string, state: 'open' | 'auto'): Promise<void> => {
  const r = await request(`${adminUrl}/upstreams/${upstream}/circuit`, { method: 'POST', body: JSON.stringify({ state }) });
  assert.equal(r.status, 200, r.body);
};

/** A quiet moment for a line a filter must not pass to arrive, if it were (wrongly) sent: loopback delivers in well under a millisecond. */
const SETTLE_MS = 150;

describe('tunnel lines on GET /tap (SPEC §13)', () => {
  const baseline = snapshotHandles();
  let wsServer: http.Server;
  let wss: WebSocketServer;
  let echo: net.Server;
  let px: TestProxy;
  let echoPort: number;
  let deadPort: number;
  const logged = (): LogLine[] => px.logs.filter((l) => l.msg === 'tunnel');

  before(async () => {
    wsServer = http.createServer((_req, res) => res.end('plain'));
    wss = new WebSocketServer({ server: wsServer });
    wss.on('connection', (sock) => sock.on('message', (m) => sock.send(`echo:${m.toString()}`)));
    wsServer.listen(0, '127.0.0.1');
    await once(wsServer, 'listening');
    echo = net.createServer((s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    echoPort = (echo.address() as net.AddressInfo).port;
    deadPort = await refusedPort();
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: ws
    address: 127.0.0.1:0
    routes:
      - { name: chat, match: { pathPrefix: / }, upstream: chat }
  - name: deadws
    address: 127.0.0.1:0
    routes:
      - { name: deadws, match: { pathPrefix: / }, upstream: deadws }
  - name: egress
    address: 127.0.0.1:0
    routes:
      - { name: pipe, match: { host: 127.0.0.1 }, upstream: pipe, allowConnect: true }
  - name: gone
    address: 127.0.0.1:0
    routes:
      - { name: gone, match: { host: 127.0.0.1 }, upstream: gone, allowConnect: true }
upstreams:
  chat:
    url: http://127.0.0.1:${(wsServer.address() as net.AddressInfo).port}
    circuitBreaker: {}
  deadws:
    url: http://127.0.0.1:${deadPort}
  pipe:
    url: http://127.0.0.1:${echoPort}
    circuitBreaker: {}
  gone:
    url: http://127.0.0.1:${deadPort}
    retry: { maxRetries: 0 }
`);
  });

  after(async () => {
    await px.close();
    for (const c of wss.clients) c.terminate();
    wss.close();
    wsServer.closeAllConnections();
    wsServer.close();
    echo.close();
    await assertNoLeaks(baseline);
  });

  it('builds nothing for the tap while nobody listens; a subscriber gets both kinds of tunnel line', async () => {
    const offered = px.proxy.tap.offered;
    const before = logged().length;
    await echoOnce(`ws://127.0.0.1:${px.port('ws')}/quiet`);
    await pingThrough((await connect(px.port('egress'), `127.0.0.1:${echoPort}`)).socket);
    await waitFor('both tunnel lines logged', () => logged().length === before + 2);
    assert.equal(px.proxy.tap.active, false);
    assert.equal(px.proxy.tap.offered, offered, 'no tunnel line was built for the tap');
    const t = await openTap(px.adminUrl);
    await waitFor('subscribed', () => px.proxy.tap.subscribers === 1);
    await echoOnce(`ws://127.0.0.1:${px.port('ws')}/heard`);
    await pingThrough((await connect(px.port('egress'), `127.0.0.1:${echoPort}`)).socket);
    await waitFor('both tunnel lines on the tap', () => tunnelsOn(t).length === 2);
    assert.deepEqual(tunnelsOn(t).map((l) => l['protocol']).sort(), ['connect', 'websocket']);
    assert.equal(px.proxy.tap.offered, offered + 2);
    t.close();
    await waitFor('gone', () => px.proxy.tap.subscribers === 0);
  });

  it("streams a WebSocket tunnel's line when it closes, as the log writes it, under its 101", async () => {
    const all = await openTap(px.adminUrl);
    const ok = await openTap(px.adminUrl, '?status=1xx&route=chat&upstream=chat');
    const errors = await openTap(px.adminUrl, '?status=5xx');
    const other = await openTap(px.adminUrl, '?route=pipe');
    await waitFor('4 subscribers', () => px.proxy.tap.subscribers === 4);
    await echoOnce(`ws://127.0.0.1:${px.port('ws')}/chat?room=1`);
    await waitFor('the tunnel line on the tap', () => tunnelsOn(all).length === 1 && tunnelsOn(ok).length === 1);
    const line = tunnelsOn(all)[0]!;
    const log = logged().find((l) => l['requestId'] === line['requestId']);
    assert.ok(log !== undefined, 'the same tunnel is in the log');
    // The log's pino call and the tap's line each read the clock: they may be a millisecond apart.
    assert.deepEqual({ ...line, time: null }, { ...log, time: null }, 'the same JSON as the log line, field for field');
    assert.ok(Math.abs(Date.parse(line['time'] as string) - Date.parse(log.time as string)) < 1000);
    assert.equal(line['protocol'], 'websocket');
    assert.equal(line['path'], '/chat');
    assert.equal(line['status'], 101);
    assert.equal(line['outcome'], 'success');
    assert.ok((line['bytesIn'] as number) > 0 && (line['bytesOut'] as number) > 0);
    assert.deepEqual(ok.lines, [line]);
    await sleep(SETTLE_MS);
    assert.deepEqual(tunnelsOn(errors), [], 'status=5xx passes no 101');
    assert.deepEqual(tunnelsOn(other), [], 'route=pipe passes no line of route chat');
    for (const t of [all, ok, errors, other]) t.close();
    await waitFor('gone', () => px.proxy.tap.subscribers === 0);
  });

  it('streams a refused WebSocket (breaker forced open) under its 503, and one that could not connect under 503 too', async () => {
    const errors = await openTap(px.adminUrl, '?status=5xx');
    const ok = await openTap(px.adminUrl, '?status=1xx');
    await waitFor('2 subscribers', () => px.proxy.tap.subscribers === 2);
    await force(px.adminUrl, 'chat', 'open');
    try {
      assert.deepEqual(await refusedUpgrade(`ws://127.0.0.1:${px.port('ws')}/refused`), { status: 503, code: 'circuit_open' });
    } finally {
      await force(px.adminUrl, 'chat', 'auto');
    }
    await waitFor('the refusal on the tap', () => tunnelsOn(errors).length === 1);
    const refused = tunnelsOn(errors)[0]!;
    assert.equal(refused['outcome'], 'circuit_open');
    assert.equal(refused['status'], 503);
    assert.equal(refused['path'], '/refused');
    // No answer came from the upstream: the line's status is null, and the tap files it under the 503 the client got.
    assert.deepEqual(await refusedUpgrade(`ws://127.0.0.1:${px.port('deadws')}/nobody`), { status: 503, code: 'connect_failure' });
    await waitFor('the failure on the tap', () => tunnelsOn(errors).length === 2);
    const failed = tunnelsOn(errors)[1]!;
    assert.equal(failed['outcome'], 'connect_failure');
    assert.equal(failed['status'], null);
    assert.equal(failed['route'], 'deadws');
    await sleep(SETTLE_MS);
    assert.deepEqual(tunnelsOn(ok), []);
    for (const t of [errors, ok]) t.close();
    await waitFor('gone', () => px.proxy.tap.subscribers === 0);
  });

  it("streams a CONNECT tunnel's line when it closes, as the log writes it, under 200", async () => {
    const all = await openTap(px.adminUrl);
    const ok = await openTap(px.adminUrl, '?status=2xx&route=pipe');
    const other = await openTap(px.adminUrl, '?route=chat');
    const failures = await openTap(px.adminUrl, '?flag=connect_failure');
    await waitFor('4 subscribers', () => px.proxy.tap.subscribers === 4);
    const r = await connect(px.port('egress'), `127.0.0.1:${echoPort}`);
    assert.equal(r.status, 200);
    await pingThrough(r.socket);
    await waitFor('the tunnel line on the tap', () => tunnelsOn(all).length === 1 && tunnelsOn(ok).length === 1);
    const line = tunnelsOn(all)[0]!;
    const log = logged().find((l) => l['requestId'] === line['requestId']);
    assert.ok(log !== undefined, 'the same tunnel is in the log');
    // The log's pino call and the tap's line each read the clock: they may be a millisecond apart.
    assert.deepEqual({ ...line, time: null }, { ...log, time: null }, 'the same JSON as the log line, field for field');
    assert.ok(Math.abs(Date.parse(line['time'] as string) - Date.parse(log.time as string)) < 1000);
    assert.equal(line['protocol'], 'connect');
    assert.equal(line['authority'], `127.0.0.1:${echoPort}`);
    assert.equal(line['outcome'], 'success');
    assert.equal(line['bytesIn'], 4);
    assert.equal(line['bytesOut'], 4);
    assert.deepEqual(ok.lines, [line]);
    await sleep(SETTLE_MS);
    assert.deepEqual(tunnelsOn(other), [], 'route=chat passes no line of route pipe');
    assert.deepEqual(tunnelsOn(failures), [], 'flag=connect_failure passes no line without it');
    for (const t of [all, ok, other, failures]) t.close();
    await waitFor('gone', () => px.proxy.tap.subscribers === 0);
  });

  it('streams a refused CONNECT (breaker forced open) under its 503, and one that could not connect under 503 with its flag', async () => {
    const unavailable = await openTap(px.adminUrl, '?status=503');
    const ok = await openTap(px.adminUrl, '?status=2xx');
    const failures = await openTap(px.adminUrl, '?flag=connect_failure&route=gone');
    await waitFor('3 subscribers', () => px.proxy.tap.subscribers === 3);
    await force(px.adminUrl, 'pipe', 'open');
    try {
      const r = await connect(px.port('egress'), `127.0.0.1:${echoPort}`);
      assert.deepEqual([r.status, r.code], [503, 'circuit_open']);
    } finally {
      await force(px.adminUrl, 'pipe', 'auto');
    }
    await waitFor('the refusal on the tap', () => tunnelsOn(unavailable).length === 1);
    const refused = tunnelsOn(unavailable)[0]!;
    assert.equal(refused['protocol'], 'connect');
    assert.equal(refused['outcome'], 'circuit_open');
    assert.equal(refused['route'], 'pipe');
    assert.equal(refused['attempts'], 0);
    const r = await connect(px.port('gone'), `127.0.0.1:${deadPort}`);
    assert.deepEqual([r.status, r.code], [503, 'connect_failure']);
    await waitFor('the failure on the tap', () => tunnelsOn(unavailable).length === 2 && tunnelsOn(failures).length === 1);
    assert.equal(tunnelsOn(unavailable)[1]!['outcome'], 'connect_failure');
    assert.deepEqual(tunnelsOn(failures), [tunnelsOn(unavailable)[1]]);
    await sleep(SETTLE_MS);
    assert.deepEqual(tunnelsOn(ok), []);
    for (const t of [unavailable, ok, failures]) t.close();
    await waitFor('gone', () => px.proxy.tap.subscribers === 0);
  });
});

describe('tunnel lines on GET /tap with the access log off', () => {
  const baseline = snapshotHandles();
  let wsServer: http.Server;
  let wss: WebSocketServer;
  let echo: net.Server;
  before(async () => {
    wsServer = http.createServer((_req, res) => res.end('plain'));
    wss = new WebSocketServer({ server: wsServer });
    wss.on('connection', (sock) => sock.on('message', (m) => sock.send(`echo:${m.toString()}`)));
    wsServer.listen(0, '127.0.0.1');
    await once(wsServer, 'listening');
    echo = net.createServer((s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
  });
  after(async () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    wsServer.closeAllConnections();
    wsServer.close();
    echo.close();
    await assertNoLeaks(baseline);
  });

  it('still streams both kinds of tunnel line (built only for the tap)', async () => {
    const echoPort = (echo.address() as net.AddressInfo).port;
    const px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
log: { access: false }
listeners:
  - name: ws
    address: 127.0.0.1:0
    routes:
      - { name: chat, match: { pathPrefix: / }, upstream: chat }
  - name: egress
    address: 127.0.0.1:0
    routes:
      - { name: pipe, match: { host: 127.0.0.1 }, upstream: pipe, allowConnect: true }
upstreams:
  chat: { url: "http://127.0.0.1:${(wsServer.address() as net.AddressInfo).port}" }
  pipe: { url: "http://127.0.0.1:${echoPort}" }
`);
    try {
      const t = await openTap(px.adminUrl);
      await waitFor('subscribed', () => px.proxy.tap.subscribers === 1);
      await echoOnce(`ws://127.0.0.1:${px.port('ws')}/off`);
      await pingThrough((await connect(px.port('egress'), `127.0.0.1:${echoPort}`)).socket);
      await waitFor('both tunnel lines on the tap', () => tunnelsOn(t).length === 2);
      assert.deepEqual(tunnelsOn(t).map((l) => [l['protocol'], l['route'], l['outcome']]).sort(), [
        ['connect', 'pipe', 'success'],
        ['websocket', 'chat', 'success'],
      ]);
      assert.deepEqual(px.logs.filter((l) => l.msg === 'tunnel'), [], 'the access log stays off');
      t.close();
      await waitFor('gone', () => px.proxy.tap.subscribers === 0);
    } finally {
      await px.close();
    }
  });
});
