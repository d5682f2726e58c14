/**
 * HTTP/2 with prior knowledge (h2c) on a listener's port, beside HTTP/1.1
 * (SPEC §10.1): the same routes, policies, generated answers and access log
 * for both; HTTP/2's own limits (concurrent streams, header list) and
 * drain (GOAWAY); and HTTP/1.1 clients on the same port untouched, however
 * their first bytes arrive. Clients: node's http2 client, curl
 * --http2-prior-knowledge, and raw sockets where the bytes themselves matter.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { rawRequest, request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { startUpstream, type Step, type Upstream } from '../helpers/upstream.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

const IN_CI = process.env['CI'] === 'true';
// Probed before anything starts, so a synchronous call blocks nothing.
const CURL_H2 = ((): boolean => {
  try {
    return /\bHTTP2\b/.test(execFileSync('curl', ['-V'], { encoding: 'utf8', timeout: 10_000 }));
  } catch {
    return false;
  }
})();
/** Outside CI a curl without HTTP/2 skips its test; in CI it fails it. */
const skipCurl = CURL_H2 || IN_CI ? false : 'curl with HTTP/2 support is not installed';

interface H2Reply {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** One request on `session`; rejects on a stream error, or after 10 s. */
function h2(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer | string): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const s = session.request(headers, { endStream: body === undefined });
    const timer = setTimeout(() => {
      s.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`${String(headers[':path'])} timed out`));
    }, 10_000);
    let head: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    s.on('response', (h) => (head = h));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => {
      clearTimeout(timer);
      resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(chunks) });
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    if (body !== undefined) s.end(body);
  });
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const CONNECTION_SPECIFIC = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'];

const byPath = (req: { url: string; body: Buffer }): Step => {
  if (req.url.startsWith('/slow/')) return { status: 200, body: `slow ${req.url}`, delayMs: Number(req.url.split('/')[2]) };
  if (req.url === '/hang') return { hang: true };
  if (req.url === '/chunked') return { status: 200, chunks: ['a', 'b', 'c'] };
  if (req.url === '/cut') return { status: 200, chunks: ['first', 'second', 'never'], chunkIntervalMs: 50, reset: 'mid-body' };
  return { echo: true };
};

describe('HTTP/2 with prior knowledge (h2c) beside HTTP/1.1 on one port', () => {
  const baseline = snapshotHandles();
  let up: Upstream;
  let px: TestProxy;
  let base: string;
  const sessions: http2.ClientHttp2Session[] = [];
  const connect = (url = base, options: http2.ClientSessionOptions = {}): http2.ClientHttp2Session => {
    const s = http2.connect(url, options);
    s.on('error', () => {}); // a test that expects a session error asserts it on the stream
    sessions.push(s);
    return s;
  };

  before(async () => {
    up = await startUpstream(byPath);
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    limits: { headerSize: 4KiB, bodySize: 2MiB }
    routes:
      - { name: api, match: { host: api.test }, upstream: u }
      - { name: guarded, match: { host: guarded.test }, upstream: g }
  - name: small
    address: 127.0.0.1:0
    upstream: u
    limits: { bodySize: 1KiB, maxConcurrentStreams: 2 }
upstreams:
  u: { url: ${up.origin}, retry: { maxRetries: 0 } }
  g: { url: ${up.origin}, retry: { maxRetries: 0 }, bulkhead: { maxConcurrent: 1 } }
`);
    base = px.url('main');
  });

  after(async () => {
    for (const s of sessions) s.destroy();
    await px.close();
    await up.close();
    await assertNoLeaks(baseline);
  });

  it('serves GET, HEAD and POST over h2c to an HTTP/1.1 upstream: :authority is the Host, no pseudo-header goes upstream', async () => {
    const c = connect();
    up.reset();
    const get = await h2(c, { ':path': '/items?id=7', ':authority': 'api.test:8080', 'x-custom': 'yes' });
    assert.equal(get.status, 200);
    const seen = up.requests[0]!;
    assert.equal(seen.method, 'GET');
    assert.equal(seen.url, '/items?id=7');
    assert.equal(seen.headers.host, new URL(up.origin).host, 'Host is the endpoint’s authority');
    assert.equal(seen.headers['x-forwarded-host'], 'api.test:8080', 'the client’s :authority');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-custom'], 'yes');
    assert.equal(seen.rawHeaders.filter((_, i) => i % 2 === 0 && seen.rawHeaders[i]!.startsWith(':')).length, 0, 'no pseudo-header upstream');
    assert.equal(get.headers['x-request-id'], seen.headers['x-request-id']);

    // HEAD of a chunked answer: HTTP/1.1 would say transfer-encoding; HTTP/2 must not.
    const head = await h2(c, { ':path': '/chunked', ':method': 'HEAD', ':authority': 'api.test' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    const chunked = await h2(c, { ':path': '/chunked', ':authority': 'api.test' });
    assert.equal(chunked.body.toString(), 'abc');
    for (const r of [get, head, chunked]) for (const name of CONNECTION_SPECIFIC) assert.equal(r.headers[name], undefined, `no ${name} in an HTTP/2 answer`);

    const post = await h2(c, { ':path': '/form', ':method': 'POST', ':authority': 'api.test', 'content-type': 'text/plain' }, 'hello over h2c');
    assert.equal(post.status, 200);
    assert.equal(post.body.toString(), 'hello over h2c');
    assert.equal(post.headers['x-echo-method'], 'POST');
  });

  it('carries 1 MiB byte-exact both ways, with and without content-length', async () => {
    const c = connect();
    const body = randomBytes(1 << 20);
    const streamed = await h2(c, { ':path': '/upload', ':method': 'POST', ':authority': 'api.test' }, body);
    assert.equal(streamed.status, 200);
    assert.equal(streamed.body.length, body.length);
    assert.equal(sha(streamed.body), sha(body), 'echoed back intact (no content-length: END_STREAM frames the body)');
    const sized = await h2(c, { ':path': '/upload', ':method': 'PUT', ':authority': 'api.test', 'content-length': String(body.length) }, body);
    assert.equal(sha(sized.body), sha(body), 'echoed back intact (content-length)');
  });

  it('runs many streams of one connection at once, each its own request', async () => {
    const c = connect();
    up.reset();
    const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => h2(c, { ':path': `/slow/150/${i}`, ':authority': 'api.test' })));
    replies.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), `slow /slow/150/${i}`);
    });
    assert.ok(up.maxInFlight > 1, `streams reached the upstream concurrently (max ${up.maxInFlight})`);
    const ids = new Set(replies.map((r) => r.headers['x-request-id']));
    assert.equal(ids.size, 40, 'one request id per stream');
  });

  it('advertises limits.maxConcurrentStreams and never has more streams of a connection in flight', async () => {
    const c = connect(px.url('small'));
    const [settings] = (await once(c, 'remoteSettings')) as [http2.Settings];
    assert.equal(settings.maxConcurrentStreams, 2);
    up.reset();
    const replies = await Promise.all(Array.from({ length: 6 }, (_, i) => h2(c, { ':path': `/slow/100/${i}` })));
    assert.deepEqual(
      replies.map((r) => r.status),
      [200, 200, 200, 200, 200, 200],
    );
    assert.ok(up.maxInFlight <= 2, `at most 2 at once (saw ${up.maxInFlight})`);
  });

  it('answers a head over headerSize with 431, and resets a stream whose header list is beyond what it accepts at all', async () => {
    const c = connect(base, { maxSendHeaderBlockLength: 1 << 20 });
    up.reset();
    const big = await h2(c, { ':path': '/big', ':authority': 'api.test', 'x-big': 'x'.repeat(5000) });
    assert.equal(big.status, 431);
    assert.equal(big.headers['x-breakwater-error'], 'header_too_large');
    assert.equal(JSON.parse(big.body.toString()).error, 'header_too_large');
    // Beyond the advertised SETTINGS_MAX_HEADER_LIST_SIZE: a stream error, the connection lives on.
    const huge: http2.OutgoingHttpHeaders = { ':path': '/huge', ':authority': 'api.test' };
    for (let i = 0; i < 4; i++) huge[`x-huge-${i}`] = 'x'.repeat(35_000); // 140 kB: over the ceiling, under nghttp2's CONTINUATION-flood bound
    await assert.rejects(h2(c, huge), /ENHANCE_YOUR_CALM/);
    assert.equal(up.requests.length, 0, 'neither was forwarded');
    const ok = await h2(c, { ':path': '/after', ':authority': 'api.test' });
    assert.equal(ok.status, 200, 'the connection is still usable');
  });

  it('answers a body over bodySize with 413, declared or streamed, and keeps the connection', async () => {
    const c = connect(px.url('small'));
    up.reset();
    const declared = await h2(c, { ':path': '/d', ':method': 'POST', 'content-length': '2000' }, Buffer.alloc(2000));
    assert.equal(declared.status, 413);
    assert.equal(declared.headers['x-breakwater-error'], 'request_too_large');
    const streamed = await h2(c, { ':path': '/s', ':method': 'POST' }, Buffer.alloc(2000));
    assert.equal(streamed.status, 413);
    assert.equal(up.requests.length, 0, 'nothing was forwarded');
    assert.equal((await h2(c, { ':path': '/small', ':method': 'POST' }, 'fits')).body.toString(), 'fits');
  });

  it('answers no_route, a Host that contradicts :authority, and CONNECT with the generated answers', async () => {
    const c = connect();
    const none = await h2(c, { ':path': '/x', ':authority': 'elsewhere.test' });
    assert.equal(none.status, 404);
    assert.equal(JSON.parse(none.body.toString()).error, 'no_route');
    const contradicting = await h2(c, { ':path': '/x', ':authority': 'api.test', host: 'evil.test' });
    assert.equal(contradicting.status, 400);
    assert.equal(contradicting.headers['x-breakwater-error'], 'bad_request');
    const tunnel = await h2(c, { ':method': 'CONNECT', ':authority': 'api.test:443' });
    assert.equal(tunnel.status, 405);
    assert.equal(tunnel.headers['x-breakwater-error'], 'method_not_allowed');
  });

  it('refuses connection-specific headers as malformed (RST_STREAM PROTOCOL_ERROR), forwarding nothing', async () => {
    up.reset();
    for (const [name, value] of [
      ['connection', 'close'],
      ['te', 'gzip'],
    ] as const) {
      const frames = await rawH2(px.port('main'), [[':authority', 'api.test'], [name, value]]);
      const rst = frames.find((f) => f.type === 0x3 && f.stream === 1);
      assert.ok(rst, `a RST_STREAM for ${name}: ${value} (frames: ${frames.map((f) => f.type).join(',')})`);
      assert.equal(rst.payload.readUInt32BE(0), http2.constants.NGHTTP2_PROTOCOL_ERROR);
    }
    assert.equal(up.requests.length, 0);
  });

  it('writes the access-log line an HTTP/1.1 request would get, with the request’s own method', async () => {
    const c = connect();
    const viaH2 = await h2(c, { ':path': '/logged?q=secret', ':method': 'PUT', ':authority': 'api.test', 'content-length': '3' }, 'abc');
    const viaH1 = await request(`${base}/logged?q=secret`, { method: 'PUT', headers: { host: 'api.test' }, body: 'abc' });
    const lineOf = async (id: unknown): Promise<Record<string, unknown>> => {
      await waitFor('its access line', () => px.requests().some((l) => l['requestId'] === id));
      return px.requests().find((l) => l['requestId'] === id)!;
    };
    const a = await lineOf(viaH2.headers['x-request-id']);
    const b = await lineOf(viaH1.headers['x-request-id']);
    assert.equal(a['method'], 'PUT');
    assert.equal(a['path'], '/logged');
    assert.equal(a['status'], 200);
    assert.equal(a['route'], 'api');
    const same = ['listener', 'route', 'upstream', 'endpoint', 'method', 'path', 'status', 'attempts', 'bytesIn', 'bytesOut', 'client', 'flags', 'error', 'traceId'];
    for (const k of same) assert.deepEqual(a[k], b[k], `${k} is the same over HTTP/2 as over HTTP/1.1`);
    assert.deepEqual(Object.keys(a), Object.keys(b), 'the same fields, in the same order');
  });

  it('cuts the stream (RST_STREAM, not a clean end) when the upstream fails mid-body', async () => {
    const c = connect();
    await assert.rejects(h2(c, { ':path': '/cut', ':authority': 'api.test' }), /INTERNAL_ERROR|stream/i);
    assert.equal((await h2(c, { ':path': '/after-cut', ':authority': 'api.test' })).status, 200, 'the connection is still usable');
  });

  it('aborts the upstream request and frees the bulkhead slot when the client resets its stream', async () => {
    const c = connect();
    up.reset();
    const s = c.request({ ':path': '/hang', ':authority': 'guarded.test' });
    s.on('error', () => {});
    await waitFor('the request reached the upstream', () => up.inFlight === 1);
    const full = await h2(c, { ':path': '/second', ':authority': 'guarded.test' });
    assert.equal(full.headers['x-breakwater-error'], 'bulkhead_full', 'the one slot is taken');
    s.close(http2.constants.NGHTTP2_CANCEL);
    await waitFor('the upstream request was aborted', () => up.inFlight === 0);
    const next = await h2(c, { ':path': '/third', ':authority': 'guarded.test' });
    assert.equal(next.status, 200, 'the slot was given back');
    await waitFor('the reset stream’s access line', () => px.requests().some((l) => l['path'] === '/hang'));
    const line = px.requests().find((l) => l['path'] === '/hang')!;
    assert.ok((line['flags'] as string[]).includes('client_abort'), `flags ${JSON.stringify(line['flags'])}`);
  });

  it('holds the upstream back while an HTTP/2 client does not read (flow control reaches it), and delivers every byte once it does', async () => {
    const TOTAL = 64 * 1024 * 1024;
    let written = 0;
    const source = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-length': String(TOTAL) });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const pump = (): void => {
        while (written < TOTAL) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    source.listen(0, '127.0.0.1');
    await once(source, 'listening');
    const local = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: f, address: 127.0.0.1:0, upstream: s }
upstreams:
  s: { url: http://127.0.0.1:${(source.address() as net.AddressInfo).port}, retry: { maxRetries: 0 }, timeout: { idle: 30s } }
`);
    try {
      const c = connect(local.url('f'));
      const s = c.request({ ':path': '/big' });
      await once(s, 'response');
      s.pause();
      // Wait until the upstream is stalled: two looks 300 ms apart that agree.
      let before = -1;
      await waitFor('the upstream to stall', async () => {
        const now = written;
        await sleep(300);
        const stalled = now === written && now === before;
        before = written;
        return stalled;
      });
      assert.ok(written < TOTAL / 2, `the upstream was held back at ${written} of ${TOTAL} bytes`);
      let got = 0;
      s.on('data', (c: Buffer) => (got += c.length));
      s.resume();
      await once(s, 'end');
      assert.equal(got, TOTAL, 'every byte arrived once the client read');
    } finally {
      await local.close();
      source.closeAllConnections();
      source.close();
    }
  });

  it('serves curl --http2-prior-knowledge', { skip: skipCurl }, async () => {
    const run = promisify(execFile);
    const { stdout } = await run('curl', ['-sS', '--max-time', '10', '--http2-prior-knowledge', '-H', 'Host: api.test', '-d', 'from curl', '-i', `${base}/curl`]);
    assert.match(stdout, /^HTTP\/2 200/);
    assert.match(stdout, /x-echo-method: POST/);
    assert.match(stdout, /\r\n\r\nfrom curl$/);
  });

  describe('HTTP/1.1 on the same port', () => {
    it('still serves pipelined requests, in order', async () => {
      const one = (p: string): string => `GET ${p} HTTP/1.1\r\nHost: api.test\r\n\r\n`;
      const { raw } = await rawRequest(px.port('main'), one('/p1') + one('/p2') + `GET /p3 HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n`, { timeoutMs: 5000 });
      const order = [...raw.matchAll(/x-echo-url: (\/p\d)/g)].map((m) => m[1]);
      assert.deepEqual(order, ['/p1', '/p2', '/p3']);
    });

    it('loses no byte of a 1 MiB first request body (the bytes read to tell the protocols apart are put back)', async () => {
      const body = randomBytes(1 << 20);
      const r = await request(`${base}/first`, { method: 'POST', headers: { host: 'api.test' }, body });
      assert.equal(r.status, 200);
      // request() decodes as UTF-8; compare what the upstream received instead.
      const seen = up.requests.find((q) => q.url === '/first')!;
      assert.equal(sha(seen.body), sha(body));
    });

    it('reads a request whose first bytes arrive one at a time, even ones that start like the HTTP/2 preface', async () => {
      for (const method of ['GET', 'PRI', 'PROPFIND']) {
        const socket = net.connect(px.port('main'), '127.0.0.1');
        await once(socket, 'connect');
        let got = '';
        socket.on('data', (c: Buffer) => (got += c.toString()));
        socket.on('error', () => {}); // an answer that closes early may meet bytes still coming
        const closed = once(socket, 'close');
        const text = `${method} /trickle HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n`;
        for (const ch of text) {
          if (socket.destroyed) break;
          socket.write(ch);
          await sleep(2);
        }
        await closed;
        assert.match(got, method === 'PRI' ? /^HTTP\/1\.1 400/ : /^HTTP\/1\.1 200/, `${method}: ${got.slice(0, 40)}`);
      }
    });
  });

  it('reads an HTTP/2 connection whose preface and first request arrive one byte at a time', async () => {
    // A relay in front of the listener that passes the client's first 200 bytes one at a time.
    const relay = net.createServer((client) => {
      const server = net.connect(px.port('main'), '127.0.0.1');
      let left = 200;
      let queue = Promise.resolve();
      client.on('data', (chunk: Buffer) => {
        queue = queue.then(async () => {
          for (let i = 0; i < chunk.length; i++) {
            if (left <= 0) {
              server.write(chunk.subarray(i));
              return;
            }
            left--;
            server.write(chunk.subarray(i, i + 1));
            await sleep(1);
          }
        });
      });
      server.pipe(client);
      client.on('error', () => server.destroy());
      server.on('error', () => client.destroy());
      client.on('close', () => server.destroy());
    });
    relay.listen(0, '127.0.0.1');
    await once(relay, 'listening');
    try {
      const c = connect(`http://127.0.0.1:${(relay.address() as net.AddressInfo).port}`);
      const r = await h2(c, { ':path': '/slowly', ':method': 'POST', ':authority': 'api.test' }, 'byte by byte');
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'byte by byte');
      c.destroy();
    } finally {
      relay.close();
    }
  });

  it('closes a connection that sends nothing decisive within headerTimeout: nothing, or only part of the preface', async () => {
    const local = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: q, address: 127.0.0.1:0, upstream: u, limits: { headerTimeout: 300ms } }
upstreams:
  u: { url: ${up.origin} }
`);
    try {
      for (const bytes of ['', 'PRI * HTTP/2.0\r\n']) {
        const started = Date.now();
        const { closed } = await rawRequest(local.port('q'), bytes, { timeoutMs: 5000 });
        assert.equal(closed, true, `closed after ${JSON.stringify(bytes)}`);
        assert.ok(Date.now() - started >= 250, 'not before headerTimeout');
      }
    } finally {
      await local.close();
    }
  });

  it('gives open and new connections the maxConcurrentStreams of a reload', async () => {
    const yaml = (streams: number): string => `
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: r, address: 127.0.0.1:0, upstream: u, limits: { maxConcurrentStreams: ${streams} } }
upstreams:
  u: { url: ${up.origin} }
`;
    const local = await startProxy(yaml(10));
    try {
      const open = connect(local.url('r'));
      assert.equal(((await once(open, 'remoteSettings')) as [http2.Settings])[0].maxConcurrentStreams, 10);
      local.write(yaml(3));
      const updated = once(open, 'remoteSettings');
      assert.equal((await local.proxy.reload('test')).result, 'success');
      assert.equal(((await updated) as [http2.Settings])[0].maxConcurrentStreams, 3, 'sent to the open connection');
      const fresh = connect(local.url('r'));
      assert.equal(((await once(fresh, 'remoteSettings')) as [http2.Settings])[0].maxConcurrentStreams, 3, 'a new connection starts with it');
      assert.equal((await h2(open, { ':path': '/still' })).status, 200);
    } finally {
      await local.close();
    }
  });

  it('drain sends GOAWAY, lets an in-flight stream finish, and closes the connection after it', async () => {
    const local = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
drain: { delay: 0s, timeout: 5s }
listeners:
  - { name: d, address: 127.0.0.1:0, upstream: u }
upstreams:
  u: { url: ${up.origin}, retry: { maxRetries: 0 } }
`);
    try {
      const c = connect(local.url('d'));
      assert.equal((await h2(c, { ':path': '/warm' })).status, 200);
      up.reset();
      const inflight = h2(c, { ':path': '/slow/500/inflight' });
      await waitFor('the stream reached the upstream', () => up.inFlight === 1);
      const goaway = once(c, 'goaway');
      const closed = new Promise((resolve) => c.once('close', resolve));
      const drained = local.proxy.drain();
      const [code] = (await goaway) as [number];
      assert.equal(code, http2.constants.NGHTTP2_NO_ERROR);
      await assert.rejects(async () => h2(c, { ':path': '/after-goaway' }), /GOAWAY/, 'no new stream on a connection that got GOAWAY');
      const r = await inflight;
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'slow /slow/500/inflight');
      await closed;
      await drained;
      const done = local.logs.find((l) => l.msg === 'drain_complete');
      assert.equal(done?.['abandoned'], 0);
    } finally {
      await local.close();
    }
  });

  it('cuts a stream still open when drain.timeout passes, and the drain completes', async () => {
    const local = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
drain: { delay: 0s, timeout: 300ms }
listeners:
  - { name: d, address: 127.0.0.1:0, upstream: u }
upstreams:
  u: { url: ${up.origin}, retry: { maxRetries: 0 }, timeout: { total: 30s } }
`);
    try {
      const c = connect(local.url('d'));
      up.reset();
      const stuck = h2(c, { ':path': '/hang' }).then(
        () => 'answered',
        (err: Error) => err.message,
      );
      await waitFor('the stream reached the upstream', () => up.inFlight === 1);
      const closed = new Promise((resolve) => c.once('close', resolve));
      const started = Date.now();
      await local.proxy.drain();
      assert.ok(Date.now() - started >= 250, 'drain waited for drain.timeout');
      assert.match(await stuck, /error code 2/, 'the stream was cut (INTERNAL_ERROR), not answered');
      await closed;
      assert.equal(local.logs.find((l) => l.msg === 'drain_complete')?.['abandoned'], 1);
    } finally {
      await local.close();
    }
  });
});

/** Frames of a raw HTTP/2 exchange, parsed from what the server sent. */
interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/**
 * Sends the preface, an empty SETTINGS and one GET (stream 1) whose extra
 * header fields are literal HPACK (no Huffman, no indexing): the way to send
 * what no HTTP/2 client library will send. Collects the server's frames
 * until a RST_STREAM or GOAWAY, the server closing, or 2 s.
 */
function rawH2(port: number, fields: [string, string][]): Promise<Frame[]> {
  const str = (s: string): Buffer => Buffer.concat([Buffer.from([s.length]), Buffer.from(s, 'latin1')]);
  const block = Buffer.concat([
    Buffer.from([0x82, 0x86, 0x84]), // :method GET, :scheme http, :path / (static table)
    ...fields.map(([n, v]) => Buffer.concat([Buffer.from([0x00]), str(n), str(v)])),
  ]);
  const frame = (type: number, flags: number, stream: number, payload: Buffer): Buffer => {
    const h = Buffer.alloc(9);
    h.writeUIntBE(payload.length, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(stream, 5);
    return Buffer.concat([h, payload]);
  };
  const bytes = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(0x4, 0, 0, Buffer.alloc(0)), frame(0x1, 0x5, 1, block)]);
  return new Promise((resolve, reject) => {
    let raw = Buffer.alloc(0);
    const frames: Frame[] = [];
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(frames);
    };
    const timer = setTimeout(finish, 2000);
    socket.on('data', (c: Buffer) => {
      raw = Buffer.concat([raw, c]);
      while (raw.length >= 9 && raw.length >= 9 + raw.readUIntBE(0, 3)) {
        const len = raw.readUIntBE(0, 3);
        const f = { type: raw[3]!, flags: raw[4]!, stream: raw.readUInt32BE(5) & 0x7fffffff, payload: raw.subarray(9, 9 + len) };
        frames.push(f);
        raw = raw.subarray(9 + len);
        if (f.type === 0x3 || f.type === 0x7) return finish();
      }
    });
    socket.on('close', finish);
    socket.on('error', (err) => (frames.length > 0 ? finish() : reject(err)));
  });
}
