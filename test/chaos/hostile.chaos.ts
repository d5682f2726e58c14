/**
 * Hostile input on raw sockets: request-smuggling shapes, malformed heads,
 * oversized heads and bodies, bad methods and targets, absolute-form requests
 * to hosts breakwater does not route, truncated uploads, slow heads and slow
 * bodies, pipelined floods. Each is answered with its SPEC §4.7 code (or the
 * connection is closed), NEVER forwarded upstream, and never takes the proxy
 * down: a normal request still works after every case.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { rawRequest, request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { admin, checkGenerated, parseResponses } from './lib.ts';

const H = 'Host: svc.internal\r\n';

interface Case {
  readonly name: string;
  readonly bytes: string | Buffer;
  /** Expected status of the first answer, with its §4.7 code. */
  readonly status: number;
  readonly code: string;
  /** Another acceptable answer (status, code). */
  readonly or?: readonly [number, string];
  /** The connection may also be closed without an answer (the error is only seen mid-body). */
  readonly orClosed?: boolean;
  /** Listener to send to (default `edge`). */
  readonly listener?: 'edge' | 'stream';
}

const CASES: readonly Case[] = [
  // --- request smuggling shapes ---
  { name: 'Content-Length with Transfer-Encoding (CL.TE)', bytes: `POST /open/x HTTP/1.1\r\n${H}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'bad_request' },
  { name: 'Transfer-Encoding before Content-Length (TE.CL)', bytes: `POST /open/x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n0\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'two Content-Length headers with different values', bytes: `POST /open/x HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 30\r\n\r\nhelloGET /smuggled HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'bad_request' },
  { name: 'a Content-Length list with different values', bytes: `POST /open/x HTTP/1.1\r\n${H}Content-Length: 5, 30\r\n\r\nhelloGET /smuggled HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'bad_request' },
  { name: 'Transfer-Encoding folded onto a continuation line (obs-fold)', bytes: `POST /open/x HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'bad_request' },
  { name: 'Transfer-Encoding: chunked, identity (chunked not last)', bytes: `POST /open/x HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'odd-cased Transfer-Encoding together with Content-Length', bytes: `POST /open/x HTTP/1.1\r\n${H}Transfer-Encoding: ChUnKeD\r\nContent-Length: 4\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'an unknown transfer coding (xchunked)', bytes: `POST /open/x HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'two Transfer-Encoding headers (chunked, then identity)', bytes: `POST /open/x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'an invalid chunk size', bytes: `POST /open/x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`, status: 400, code: 'bad_request', orClosed: true },
  { name: 'a chunk size that overflows 64 bits', bytes: `POST /open/x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhello\r\n0\r\n\r\n`, status: 400, code: 'bad_request', orClosed: true },
  { name: 'chunk data longer than its size', bytes: `POST /open/x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n`, status: 400, code: 'bad_request', orClosed: true },
  { name: 'a negative Content-Length', bytes: `POST /open/x HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\nx`, status: 400, code: 'bad_request' },
  // --- malformed heads ---
  { name: 'bare LF line endings', bytes: `GET /open/x HTTP/1.1\nHost: svc.internal\n\n`, status: 400, code: 'bad_request' },
  { name: 'a bare LF ending one header line', bytes: `GET /open/x HTTP/1.1\r\nHost: svc.internal\nX-A: b\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'a NUL byte in a header value', bytes: `GET /open/x HTTP/1.1\r\n${H}X-A: a\0b\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'a NUL byte in the request target', bytes: `GET /open/x\0y HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'bad_request' },
  { name: 'a bare CR inside a header value (header injection)', bytes: `GET /open/x HTTP/1.1\r\n${H}X-A: a\rInjected: yes\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'a CR LF inside the request target (header injection)', bytes: `GET /open/x\r\nInjected: yes HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'bad_request' },
  { name: 'whitespace between a header name and its colon', bytes: `GET /open/x HTTP/1.1\r\nHost : svc.internal\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'a header name with a forbidden character', bytes: `GET /open/x HTTP/1.1\r\n${H}X(A): b\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'an HTTP/1.1 request without Host', bytes: `GET /open/x HTTP/1.1\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'two Host headers', bytes: `GET /open/x HTTP/1.1\r\nHost: svc.internal\r\nHost: evil.example\r\n\r\n`, status: 400, code: 'bad_request' },
  // --- methods and targets ---
  { name: 'a method with a forbidden character', bytes: `G@T /open/x HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'bad_request' },
  { name: 'an unknown method', bytes: `FOO /open/x HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'bad_request' },
  { name: 'a relative target without a slash (GET foo)', bytes: `GET foo HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'bad_request' },
  { name: 'an absolute-form target with no authority (GET http://)', bytes: `GET http:// HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'bad_request' },
  { name: 'an absolute-form target with an empty authority and a routed path', bytes: `GET http:///open/x HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'bad_request' },
  { name: 'an asterisk-form target on GET', bytes: `GET * HTTP/1.1\r\n${H}\r\n`, status: 400, code: 'bad_request' },
  { name: 'a malformed HTTP version', bytes: `GET /open/x HTTP/9.9\r\n${H}\r\n`, status: 400, code: 'bad_request', orClosed: true },
  { name: 'a request line without an HTTP version (HTTP/0.9 shape) followed by headers', bytes: `GET /open/x\r\n${H}\r\n`, status: 400, code: 'bad_request' },
  { name: 'HTTP/2.0 in an HTTP/1 request line', bytes: `GET /open/x HTTP/2.0\r\n${H}\r\n`, status: 400, code: 'bad_request' },
  { name: 'CONNECT', bytes: `CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n`, status: 405, code: 'method_not_allowed' },
  // --- absolute form to hosts breakwater does not route (never an open proxy) ---
  { name: 'absolute-form to an unrouted host', bytes: `GET http://evil.example/ HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, status: 404, code: 'no_route' },
  { name: 'absolute-form https to an unrouted host', bytes: `GET https://evil.example:8443/ HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, status: 404, code: 'no_route' },
  { name: 'absolute-form whose userinfo names the routed host', bytes: `GET http://svc.internal:80@evil.example/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n`, status: 404, code: 'no_route', or: [400, 'bad_request'] },
  { name: 'an upgrade to an unrouted host', bytes: `GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`, status: 404, code: 'no_route' },
  // --- sizes ---
  { name: 'a head over the listener limit', bytes: `GET /open/x HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(6000)}\r\n\r\n`, status: 431, code: 'header_too_large' },
  { name: 'a head over the parser limit', bytes: `GET /open/x HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(70_000)}\r\n\r\n`, status: 431, code: 'header_too_large' },
  { name: 'many small headers adding up over the limit', bytes: `GET /open/x HTTP/1.1\r\n${H}${Array.from({ length: 3000 }, (_, i) => `X-${i}: v\r\n`).join('')}\r\n`, status: 431, code: 'header_too_large' },
  { name: 'a declared body over the limit', bytes: `POST /open/x HTTP/1.1\r\n${H}Content-Length: 2048\r\n\r\n${'b'.repeat(2048)}`, status: 413, code: 'request_too_large' },
  { name: 'a chunked body over the limit', bytes: `POST /open/x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${'400\r\n' + 'c'.repeat(1024) + '\r\n'}${'400\r\n' + 'c'.repeat(1024) + '\r\n'}0\r\n\r\n`, status: 413, code: 'request_too_large' },
  {
    name: 'a streamed (over bufferLimit) chunked body over the limit',
    listener: 'stream',
    bytes: `POST /x HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n${('800\r\n' + 'd'.repeat(2048) + '\r\n').repeat(6)}0\r\n\r\n`,
    status: 413,
    code: 'request_too_large',
  },
];

/** Sends `bytes` and reports when the first bytes of an answer came back (null: none within `timeoutMs`). */
function firstBytes(port: number, bytes: string, timeoutMs: number): Promise<{ ms: number | null; head: string; waited: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect({ port, host: '127.0.0.1' }, () => s.write(bytes));
    let done = false;
    const finish = (ms: number | null, head: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ ms, head, waited: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish(null, ''), timeoutMs);
    s.on('data', (d: Buffer) => finish(Date.now() - t0, d.toString('latin1')));
    s.on('error', () => finish(null, ''));
    s.on('close', () => finish(null, ''));
  });
}

describe('hostile input on raw sockets', () => {
  let up: Upstream;
  let px: TestProxy;
  const baseline = snapshotHandles();

  before(async () => {
    up = await startUpstream((req) => ({ status: 200, body: req.url }));
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
log: { level: info }
listeners:
  - name: edge
    address: 127.0.0.1:0
    limits: { headerSize: 4KiB, bodySize: 1KiB }
    routes:
      - { name: svc, match: { host: svc.internal }, upstream: svc, timeout: { total: 1s, idle: 500ms } }
      - { name: open, match: { pathPrefix: /open/ }, upstream: svc, timeout: { total: 1s, idle: 500ms } }
      - { name: buffered, match: { pathPrefix: /buffered/ }, upstream: replayable, timeout: { total: 1s, idle: 500ms } }
  - name: stream
    address: 127.0.0.1:0
    limits: { bodySize: 8KiB }
    upstream: streamy
upstreams:
  svc: { url: ${up.origin}, retry: { maxRetries: 0 } }
  replayable: { url: ${up.origin}, retry: { maxRetries: 2 } }
  streamy: { url: ${up.origin}, retry: { maxRetries: 1, bufferLimit: 1KiB } }
`);
  });

  beforeEach(() => up.reset());

  after(async () => {
    await px?.close();
    await up?.close();
    await assertNoLeaks(baseline, { settleMs: 3000 });
  });

  /** Nothing reached the upstream (give a forwarded request time to arrive first). */
  async function assertNotForwarded(what: string): Promise<void> {
    await sleep(150);
    assert.deepEqual(
      up.requests.map((r) => `${r.method} ${r.url} (${r.body.length} body bytes)`),
      [],
      `${what}: the upstream must see nothing`,
    );
    assert.equal(up.inFlight, 0, `${what}: no request left open upstream`);
  }

  async function assertStillServing(): Promise<void> {
    const r = await request(`${px.url('edge')}/open/alive`, { timeoutMs: 3000 });
    assert.equal(r.status, 200);
    assert.equal(r.body, '/open/alive');
    assert.equal((await admin(px, '/readyz')).status, 200);
    up.reset();
  }

  for (const c of CASES) {
    it(`answers ${c.status} ${c.code} (or closes) for ${c.name}, and forwards nothing`, async () => {
      const r = await rawRequest(px.port(c.listener ?? 'edge'), c.bytes, { timeoutMs: 1500 });
      const responses = parseResponses(r.raw);
      const first = responses[0];
      if (first === undefined) {
        assert.ok(c.orClosed === true, `expected ${c.status}, got no answer (closed: ${r.closed}): ${JSON.stringify(r.raw.slice(0, 120))}`);
        assert.ok(r.closed, 'a request with no answer must have its connection closed');
      } else {
        const [status, code] = c.or !== undefined && first.status === c.or[0] ? c.or : [c.status, c.code];
        assert.equal(first.status, status, `first answer: ${r.raw.slice(0, 200)}`);
        assert.equal(checkGenerated(first, new Set([code])), null);
        assert.ok(r.closed || c.code === 'no_route', 'the connection is closed after a malformed request');
      }
      assert.ok(!up.requests.some((q) => q.url.includes('smuggled')), 'a smuggled request reached the upstream');
      await assertNotForwarded(c.name);
      await assertStillServing();
    });
  }

  it('logs a request whose streamed body went over the limit (the access log survives node detaching the socket)', async () => {
    // A streamed body destroyed for being too large makes node set req.socket
    // to null before the response's 'close'; the access log must not read it
    // then (an exception there escapes every handler and ends the process).
    const before = px.requests().length;
    const crashes: Error[] = [];
    const onCrash = (err: Error): void => void crashes.push(err);
    process.prependListener('uncaughtException', onCrash);
    try {
      const chunk = `400\r\n${'c'.repeat(1024)}\r\n`;
      await rawRequest(px.port('edge'), `POST /open/big HTTP/1.1\r\nHost: big.example\r\nTransfer-Encoding: chunked\r\n\r\n${chunk}${chunk}0\r\n\r\n`, { timeoutMs: 1000 });
      await sleep(200);
    } finally {
      process.off('uncaughtException', onCrash);
    }
    assert.deepEqual(crashes.map((e) => e.stack?.split('\n').slice(0, 3).join(' | ')), [], 'an exception escaped to the process');
    const lines = px.requests().slice(before);
    assert.equal(lines.length, 1, 'one access-log line for the request');
    assert.equal(lines[0]!.client, '127.0.0.1');
    await assertStillServing();
  });

  it('accepts a well-formed chunked body with an odd-cased Transfer-Encoding and forwards it exactly once', async () => {
    const r = await rawRequest(px.port('edge'), `POST /open/odd HTTP/1.1\r\n${H}Transfer-Encoding: ChUnKeD\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, { timeoutMs: 2000 });
    const [first] = parseResponses(r.raw);
    assert.equal(first?.status, 200, r.raw.slice(0, 200));
    assert.equal(up.requests.length, 1);
    assert.equal(up.requests[0]!.body.toString(), 'hello');
  });

  it('never forwards an upload the client cut off before its declared length', async () => {
    const r = await rawRequest(px.port('edge'), `POST /open/cut HTTP/1.1\r\n${H}Content-Length: 100\r\n\r\n0123456789`, { timeoutMs: 300 });
    assert.equal(r.closed, false);
    await assertNotForwarded('a truncated Content-Length upload');
    await assertStillServing();
  });

  it('never forwards a chunked upload the client cut off before its last chunk', async () => {
    const r = await rawRequest(px.port('edge'), `POST /open/cut HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`, { timeoutMs: 300 });
    assert.equal(r.closed, false);
    await assertNotForwarded('a truncated chunked upload');
    await assertStillServing();
  });

  for (const route of ['open', 'buffered'] as const) {
    it(`answers a request whose body stalls mid-upload by timeout.total (+ margin) and forwards nothing (${route === 'open' ? 'streamed body' : 'replay-buffered body'})`, async () => {
      // total 1s, idle 500ms on this route: a body that stops after 10 of its
      // 100 bytes must not hold the request (and its socket) forever.
      // (Host is not svc.internal, so the path prefix picks the route.)
      const t = await firstBytes(px.port('edge'), `POST /${route}/stall HTTP/1.1\r\nHost: stall.example\r\nContent-Length: 100\r\n\r\n0123456789`, 4000);
      assert.ok(t.ms !== null, `a stalled upload had no answer after ${t.waited} ms`);
      assert.ok(t.ms <= 2500, `a stalled upload was answered after ${t.ms} ms (total is 1 s)`);
      assert.match(t.head, /^HTTP\/1\.1 (504|408) /);
      await assertNotForwarded('a stalled upload');
    });
  }

  it('answers 100 pipelined requests on one connection, all in order', async () => {
    const n = 100;
    let bytes = '';
    for (let i = 0; i < n; i++) bytes += `GET /open/p/${i} HTTP/1.1\r\n${H}${i === n - 1 ? 'Connection: close\r\n' : ''}\r\n`;
    const r = await rawRequest(px.port('edge'), bytes, { timeoutMs: 15_000 });
    const responses = parseResponses(r.raw);
    assert.equal(responses.length, n, `got ${responses.length} answers`);
    responses.forEach((res, i) => {
      assert.equal(res.status, 200);
      assert.equal(res.body, `/open/p/${i}`, `answer ${i} is out of order`);
    });
    assert.equal(up.requests.length, n);
  });

  it('never answers an earlier pipelined request with the 400 of a later smuggling shape, and forwards nothing after it', async () => {
    let bytes = '';
    for (let i = 0; i < 10; i++) bytes += `GET /open/p/${i} HTTP/1.1\r\n${H}\r\n`;
    bytes += `POST /open/x HTTP/1.1\r\n${H}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`;
    for (let i = 10; i < 20; i++) bytes += `GET /open/after/${i} HTTP/1.1\r\n${H}\r\n`;
    const r = await rawRequest(px.port('edge'), bytes, { timeoutMs: 5000 });
    const responses = parseResponses(r.raw);
    assert.ok(r.closed, 'the connection is closed at the malformed request');
    // HTTP/1.1 pairs answers with requests by order: answer i belongs to request i.
    responses.slice(0, 10).forEach((res, i) => {
      assert.equal(res.status, 200, `answer ${i} (to GET /open/p/${i}) is ${res.status} ${res.body.slice(0, 80)}`);
      assert.equal(res.body, `/open/p/${i}`);
    });
    if (responses.length > 10) assert.equal(responses[10]!.status, 400);
    assert.ok(responses.length <= 11);
    await sleep(150);
    assert.deepEqual(
      up.requests.map((q) => q.url).filter((u) => !u.startsWith('/open/p/')),
      [],
    );
  });

  it('keeps serving others while slowloris connections trickle their heads', async () => {
    // Node's headersTimeout (20 s, checked every 30 s) eventually closes these;
    // the suite does not wait that long unless CHAOS_SLOWLORIS_FULL=1.
    const full = process.env['CHAOS_SLOWLORIS_FULL'] === '1';
    const socks: net.Socket[] = [];
    const closed = new Set<net.Socket>();
    for (let i = 0; i < 30; i++) {
      const s = net.connect({ port: px.port('edge'), host: '127.0.0.1' });
      s.on('error', () => {});
      s.on('close', () => closed.add(s));
      s.on('data', () => {});
      s.write(`GET /open/slow/${i} HTTP/1.1\r\n${H}`);
      socks.push(s);
    }
    const trickle = setInterval(() => {
      for (const s of socks) if (!s.destroyed) s.write(`X-Slow-${Math.floor(Math.random() * 1e6)}: z\r\n`);
    }, 200);
    try {
      const latencies: number[] = [];
      for (let i = 0; i < 40; i++) {
        const t0 = performance.now();
        const r = await request(`${px.url('edge')}/open/ok/${i}`, { timeoutMs: 3000 });
        latencies.push(performance.now() - t0);
        assert.equal(r.status, 200);
        await sleep(25);
      }
      latencies.sort((a, b) => a - b);
      assert.ok(latencies[Math.floor(latencies.length * 0.95)]! < 500, `p95 latency ${latencies.at(-2)} ms while under slowloris`);
      assert.ok(!up.requests.some((q) => q.url.startsWith('/open/slow/')), 'a partial head was forwarded');
      if (full) {
        const end = Date.now() + 60_000;
        while (closed.size < socks.length && Date.now() < end) await sleep(500);
        assert.equal(closed.size, socks.length, 'every slowloris connection is eventually closed');
      }
    } finally {
      clearInterval(trickle);
      for (const s of socks) s.destroy();
    }
  });
});
