import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { json, rawRequest, request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

describe('routing and forwarding (SPEC §3)', () => {
  let a: Upstream;
  let b: Upstream;
  let b2: Upstream;
  let px: TestProxy;
  const baseline = snapshotHandles();

  before(async () => {
    a = await startUpstream({ echo: true });
    b = await startUpstream({ status: 200, body: 'b1' });
    b2 = await startUpstream({ status: 200, body: 'b2' });
    px = await startProxy(
      `
version: 1
admin: { address: 127.0.0.1:0 }
log: { headers: [user-agent] }
listeners:
  - name: egress
    address: 127.0.0.1:0
    limits: { headerSize: 2KiB, bodySize: 1KiB }
    routes:
      - match: { host: payments.internal }
        upstream: a
      - name: wild
        match: { host: "*.svc.local" }
        upstream: balanced
      - name: inv
        match: { pathPrefix: /inventory/, methods: [GET, HEAD] }
        upstream: a
        stripPrefix: true
      - name: hdr
        match: { headers: { x-tenant: blue } }
        upstream: balanced
      - name: preserved
        match: { pathPrefix: /keep-host }
        upstream: keephost
  - name: single
    address: 127.0.0.1:0
    upstream: rewrite
upstreams:
  a: { url: ${a.origin} }
  keephost: { url: ${a.origin}, preserveHost: true }
  balanced:
    endpoints: [${b.origin}, ${b2.origin}]
    balance: round-robin
  rewrite:
    url: ${a.origin}
    requestHeaders:
      set: { authorization: "Bearer \${TOKEN}" }
      remove: [x-internal-debug]
`,
      { TOKEN: 's3cret-token' },
    );
  });

  beforeEach(() => {
    a.reset();
    b.reset();
    b2.reset();
  });

  after(async () => {
    await px.close();
    await Promise.all([a.close(), b.close(), b2.close()]);
    await assertNoLeaks(baseline);
  });

  it('routes by exact host, case-insensitively and ignoring the port', async () => {
    const r = await request(`${px.url('egress')}/pay?x=1`, { headers: { host: 'Payments.Internal:8080' } });
    assert.equal(r.status, 200);
    assert.equal(a.requests.length, 1);
    assert.equal(a.requests[0]!.url, '/pay?x=1');
  });

  it('routes *.suffix to one or more labels but not the bare suffix', async () => {
    assert.equal((await request(`${px.url('egress')}/`, { headers: { host: 'a.b.svc.local' } })).status, 200);
    assert.equal(b.requests.length + b2.requests.length, 1);
    const bare = await request(`${px.url('egress')}/`, { headers: { host: 'svc.local' } });
    assert.equal(bare.status, 404);
    assert.equal(bare.headers['x-breakwater-error'], 'no_route');
    const body = json(bare);
    assert.equal(body.error, 'no_route');
    assert.equal(body.route, null);
    assert.equal(body.upstream, null);
    assert.equal(typeof body.requestId, 'string');
    assert.equal(bare.headers['content-type'], 'application/json');
  });

  it('strips the prefix and honours methods', async () => {
    const r = await request(`${px.url('egress')}/inventory/items?q=1`, { headers: { host: 'other' } });
    assert.equal(r.status, 200);
    assert.equal(a.requests[0]!.url, '/items?q=1');
    const post = await request(`${px.url('egress')}/inventory/items`, { method: 'POST', headers: { host: 'other' }, body: 'x' });
    assert.equal(post.status, 404);
  });

  it('matches on exact header values', async () => {
    const r = await request(`${px.url('egress')}/t`, { headers: { host: 'other', 'x-tenant': 'blue' } });
    assert.equal(r.status, 200);
    assert.equal(b.requests.length + b2.requests.length, 1);
  });

  it('balances round-robin across endpoints', async () => {
    for (let i = 0; i < 4; i++) await request(`${px.url('egress')}/`, { headers: { host: 'x.svc.local' } });
    assert.equal(b.requests.length, 2);
    assert.equal(b2.requests.length, 2);
  });

  it('accepts absolute-form requests (HTTP_PROXY clients) and routes by their authority', async () => {
    const raw = await rawRequest(px.port('egress'), 'GET http://payments.internal/abs?q=2 HTTP/1.1\r\nHost: payments.internal\r\nConnection: close\r\n\r\n');
    assert.match(raw.raw, /^HTTP\/1\.1 200/);
    assert.equal(a.requests[0]!.url, '/abs?q=2');
    assert.equal(a.requests[0]!.headers['x-forwarded-host'], 'payments.internal');
  });

  it('is never an open proxy: an absolute-form request to an unrouted host gets no_route', async () => {
    const raw = await rawRequest(px.port('single'), 'GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n');
    // The single listener's catch-all forwards only to its own upstream, never to evil.example.
    assert.match(raw.raw, /^HTTP\/1\.1 200/);
    assert.equal(a.requests[0]!.headers.host, new URL(a.origin).host);
    const raw2 = await rawRequest(px.port('egress'), 'GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n');
    assert.match(raw2.raw, /^HTTP\/1\.1 404/);
  });

  it('answers CONNECT with 405 method_not_allowed', async () => {
    const raw = await rawRequest(px.port('egress'), 'CONNECT payments.internal:443 HTTP/1.1\r\nHost: payments.internal:443\r\n\r\n');
    assert.match(raw.raw, /^HTTP\/1\.1 405/);
    assert.match(raw.raw, /x-breakwater-error: method_not_allowed/);
  });

  it('removes hop-by-hop headers both ways and adds x-forwarded-*, x-request-id', async () => {
    a.setScript({ status: 200, headers: { 'keep-alive': 'timeout=5', 'x-hop': 'secret', connection: 'x-hop', 'x-end': 'kept' }, body: 'ok' });
    const r = await request(`${px.url('egress')}/h`, {
      headers: {
        host: 'payments.internal',
        connection: 'x-drop-me',
        'x-drop-me': '1',
        'proxy-authorization': 'Basic Zm9vOmJhcg==',
        te: 'trailers',
        'x-forwarded-for': '10.0.0.1',
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        tracestate: 'vendor=1',
      },
    });
    const h = a.requests[0]!.headers;
    assert.equal(h['x-drop-me'], undefined);
    assert.equal(h['proxy-authorization'], undefined);
    assert.equal(h.te, undefined);
    assert.equal(h['x-forwarded-for'], '10.0.0.1, 127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h['x-forwarded-host'], 'payments.internal');
    assert.equal(h.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    assert.equal(h.tracestate, 'vendor=1');
    assert.equal(h.host, new URL(a.origin).host, 'Host is rewritten to the endpoint authority');
    assert.match(String(h['x-request-id']), /^[0-9a-f-]{36}$/);
    assert.equal(r.headers['x-request-id'], h['x-request-id']);
    assert.equal(r.headers['x-hop'], undefined);
    assert.equal(r.headers['x-end'], 'kept');
    const lines = await px.waitForRequests(1);
    assert.equal(lines.at(-1)!.traceId, '0af7651916cd43dd8448eb211c80319c');
  });

  it('passes a client x-request-id through both ways', async () => {
    const r = await request(`${px.url('egress')}/h`, { headers: { host: 'payments.internal', 'x-request-id': 'abc-123' } });
    assert.equal(a.requests[0]!.headers['x-request-id'], 'abc-123');
    assert.equal(r.headers['x-request-id'], 'abc-123');
  });

  it('keeps the client Host with preserveHost', async () => {
    await request(`${px.url('egress')}/keep-host`, { headers: { host: 'orig.example:9000' } });
    assert.equal(a.requests[0]!.headers.host, 'orig.example:9000');
  });

  it('sets and removes request headers and never logs the secret', async () => {
    await request(`${px.url('single')}/r`, { headers: { 'x-internal-debug': '1', authorization: 'Bearer client' } });
    const h = a.requests[0]!.headers;
    assert.equal(h.authorization, 'Bearer s3cret-token');
    assert.equal(h['x-internal-debug'], undefined);
    const lines = await px.waitForRequests(1);
    for (const l of px.logs) assert.ok(!JSON.stringify(l).includes('s3cret-token'));
    assert.equal((lines.at(-1)!.headers as Record<string, string>).authorization, undefined);
    const cfg = await request(`${px.adminUrl}/config`);
    assert.ok(!cfg.body.includes('s3cret-token'));
  });

  it('answers 431 header_too_large over the listener headerSize', async () => {
    const r = await request(`${px.url('egress')}/`, { headers: { host: 'payments.internal', 'x-big': 'z'.repeat(3000) } });
    assert.equal(r.status, 431);
    assert.equal(r.headers['x-breakwater-error'], 'header_too_large');
    assert.equal(a.requests.length, 0);
  });

  it('answers 413 request_too_large over the listener bodySize', async () => {
    const r = await request(`${px.url('egress')}/`, { method: 'PUT', headers: { host: 'payments.internal' }, body: 'q'.repeat(2000) });
    assert.equal(r.status, 413);
    assert.equal(r.headers['x-breakwater-error'], 'request_too_large');
    assert.equal(a.requests.length, 0);
  });

  it('answers 400 bad_request to a smuggling shape (CL + TE)', async () => {
    const raw = await rawRequest(
      px.port('egress'),
      'POST / HTTP/1.1\r\nHost: payments.internal\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    );
    assert.match(raw.raw, /^HTTP\/1\.1 400/);
    assert.equal(a.requests.length, 0);
  });

  it('logs one access line per request with the route, upstream and status', async () => {
    await request(`${px.url('egress')}/inventory/x`, { headers: { host: 'h', 'user-agent': 'test-agent' } });
    const lines = await px.waitForRequests(1);
    const l = lines.at(-1)!;
    assert.equal(l.route, 'inv');
    assert.equal(l.upstream, 'a');
    assert.equal(l.listener, 'egress');
    assert.equal(l.status, 200);
    assert.equal(l.method, 'GET');
    assert.equal(l.path, '/inventory/x');
    assert.equal(l.attempts, 1);
    assert.deepEqual(l.headers, { 'user-agent': 'test-agent' });
    assert.equal(typeof l.durationMs, 'number');
  });
});
