/**
 * gRPC semantics on the upstream side (SPEC §10.1 HTTP/2 out, §10.2): an
 * h2c upstream (node's http2 server, gRPC framing written by hand) behind
 * breakwater, called by an HTTP/1.1 client that carries gRPC's headers and
 * reads trailers. Classification from grpc-status (trailers-only at the
 * head; in trailers at the end of the body), gRPC names in retry `on` and
 * breaker `failOn`, grpc-retry-pushback-ms, grpc-timeout, gRPC-shaped
 * generated answers, and `protocol` against an https server offering h2.
 */
import assert from 'node:assert/strict';
import http, { type IncomingHttpHeaders } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { CertFactory, opensslMissing } from '../helpers/certs.ts';
import { request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';

const baseline = snapshotHandles();
after(async () => {
  await assertNoLeaks(baseline);
});

/** One gRPC length-prefixed message (uncompressed). */
function frame(payload: string): Buffer {
  const p = Buffer.from(payload);
  const b = Buffer.alloc(5 + p.length);
  b.writeUInt32BE(p.length, 1);
  p.copy(b, 5);
  return b;
}

type Answer =
  | { kind: 'ok'; message?: string }
  /** grpc-status in the head, END_STREAM on it. */
  | { kind: 'trailers-only'; status: number; pushback?: string }
  /** A message, then grpc-status in the trailers. */
  | { kind: 'in-trailers'; status: number }
  | { kind: 'hang' };

interface GrpcUpstream {
  readonly port: number;
  /** Answers to give, in order; once empty, `ok`. */
  script: Answer[];
  /** What each call arrived with. */
  readonly calls: { path: string; headers: http2.IncomingHttpHeaders; at: number; body: Buffer }[];
  close(): Promise<void>;
}

/** An h2c (prior knowledge) server answering by script. */
async function grpcUpstream(): Promise<GrpcUpstream> {
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  const u: GrpcUpstream = {
    port: 0,
    script: [],
    calls: [],
    close: () =>
      new Promise<void>((r) => {
        for (const s of sessions) s.destroy();
        server.close(() => r());
      }),
  };
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', () => {});
    stream.on('end', () => {
      u.calls.push({ path: String(headers[':path']), headers, at: performance.now(), body: Buffer.concat(chunks) });
      const a = u.script.shift() ?? { kind: 'ok' };
      switch (a.kind) {
        case 'ok':
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': '' }));
          stream.end(frame(a.message ?? 'pong'));
          return;
        case 'trailers-only': {
          const h: http2.OutgoingHttpHeaders = { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(a.status), 'grpc-message': 'down' };
          if (a.pushback !== undefined) h['grpc-retry-pushback-ms'] = a.pushback;
          stream.respond(h, { endStream: true });
          return;
        }
        case 'in-trailers':
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': String(a.status), 'grpc-message': 'late' }));
          stream.end(frame('partial'));
          return;
        case 'hang':
          return;
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return Object.assign(u, { port: (server.address() as AddressInfo).port });
}

interface GrpcReply {
  status: number;
  headers: IncomingHttpHeaders;
  trailers: NodeJS.Dict<string>;
  body: Buffer;
  ms: number;
}

/** A unary gRPC call over HTTP/1.1 (the h2c listener is separate work): POST, gRPC headers, trailers read. */
function call(url: string, headers: Record<string, string> = {}, path = '/echo.Echo/Say'): Promise<GrpcReply> {
  const start = performance.now();
  const body = frame('ping');
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${url}${path}`,
      { method: 'POST', agent: false, headers: { 'content-type': 'application/grpc', te: 'trailers', 'content-length': String(body.length), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, trailers: res.trailers, body: Buffer.concat(chunks), ms: performance.now() - start }),
        );
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('call timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/** The gRPC status a client reads: trailers, else the head (trailers-only). */
function grpcStatusOf(r: GrpcReply): string | undefined {
  return r.trailers['grpc-status'] ?? (r.headers['grpc-status'] as string | undefined);
}

function metric(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

describe('gRPC on the upstream side (SPEC §10.1, §10.2)', () => {
  let up: GrpcUpstream;
  let px: TestProxy;

  before(async () => {
    up = await grpcUpstream();
    const url = `http://127.0.0.1:${up.port}`;
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: main, address: 127.0.0.1:0, upstream: svc }
  - { name: brk, address: 127.0.0.1:0, upstream: brk }
  - { name: late, address: 127.0.0.1:0, upstream: late }
  - { name: slow, address: 127.0.0.1:0, upstream: slow }
  - name: edge
    address: 127.0.0.1:0
    routes:
      - { name: limited, match: { host: limited.internal }, upstream: svc, rateLimit: { rate: 1/m, burst: 1 } }
upstreams:
  svc:
    url: ${url}
    protocol: h2c
    retry: { maxRetries: 2, on: [unavailable], backoff: { strategy: immediate } }
  brk:
    url: ${url}
    protocol: h2c
    retry: { maxRetries: 0 }
    circuitBreaker: { consecutiveFailures: 2, failureRate: null, failOn: [unavailable], openDuration: 1m }
  late:
    url: ${url}
    protocol: h2c
    retry: { maxRetries: 2, on: [unavailable, internal], backoff: { strategy: immediate } }
    circuitBreaker: { consecutiveFailures: 2, failureRate: null, failOn: [internal], openDuration: 1m }
  slow:
    url: ${url}
    protocol: h2c
    timeout: { total: 400ms }
    retry: { maxRetries: 0 }
`);
  });

  after(async () => {
    await px?.close();
    await up?.close();
  });

  it('relays a call to an h2c upstream over HTTP/2, te: trailers on, message and trailers back', async () => {
    up.calls.length = 0;
    const r = await call(px.url('main'));
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, frame('pong'));
    assert.equal(r.trailers['grpc-status'], '0');
    assert.equal(up.calls.length, 1);
    const h = up.calls[0]!.headers;
    assert.equal(h[':path'], '/echo.Echo/Say');
    assert.equal(h.te, 'trailers', 'te: trailers reaches an HTTP/2 upstream');
    assert.equal(h['content-type'], 'application/grpc');
    assert.deepEqual(up.calls[0]!.body, frame('ping'));
    const line = (await px.waitForRequests(1)).at(-1)!;
    assert.equal(line.grpcStatus, 0);
    assert.deepEqual(line.tries, [{ endpoint: `127.0.0.1:${up.port}`, outcome: 'success', status: 200, grpcStatus: 0, ms: (line.tries as { ms: number }[])[0]!.ms }]);
  });

  it('retries a trailers-only UNAVAILABLE per retry.on: [unavailable], although gRPC calls are POSTs', async () => {
    up.calls.length = 0;
    const before = px.requests().length;
    up.script = [{ kind: 'trailers-only', status: 14 }, { kind: 'trailers-only', status: 14 }];
    const r = await call(px.url('main'));
    assert.equal(grpcStatusOf(r), '0');
    assert.equal(up.calls.length, 3);
    const line = (await px.waitForRequests(before + 1)).at(-1)!;
    assert.deepEqual((line.tries as { outcome: string }[]).map((t) => t.outcome), ['grpc_error', 'grpc_error', 'success']);
    assert.deepEqual((line.tries as { grpcStatus: number }[]).map((t) => t.grpcStatus), [14, 14, 0]);
    assert.ok((line.flags as string[]).includes('retried'));
    const m = (await request(`${px.adminUrl}/metrics`)).body;
    assert.equal(metric(m, 'breakwater_retries_total', { upstream: 'svc', reason: 'unavailable' }), 2);
    assert.equal(metric(m, 'breakwater_upstream_attempts_total', { upstream: 'svc', result: 'grpc_error' }), 2);
  });

  it('counts a trailers-only UNAVAILABLE as a breaker failure per failOn: [unavailable]; the open breaker answers gRPC UNAVAILABLE', async () => {
    up.calls.length = 0;
    up.script = [{ kind: 'trailers-only', status: 14 }, { kind: 'trailers-only', status: 14 }];
    const a = await call(px.url('brk'));
    const b = await call(px.url('brk'));
    assert.equal(grpcStatusOf(a), '14');
    assert.equal(grpcStatusOf(b), '14');
    assert.equal(a.headers['x-breakwater-error'], undefined, 'the upstream’s own answer passes through');
    // Two failures in a row: open. The third call never reaches the upstream.
    const c = await call(px.url('brk'));
    assert.equal(up.calls.length, 2);
    assert.equal(c.status, 200);
    assert.equal(c.headers['content-type'], 'application/grpc');
    assert.equal(c.headers['grpc-status'], '14');
    assert.equal(c.headers['x-breakwater-error'], 'circuit_open');
    assert.match(String(c.headers['grpc-message']), /circuit_open/);
    assert.equal(c.body.length, 0);
  });

  it('records a grpc-status that arrives in trailers (log, metric, breaker) but never retries the call', async () => {
    up.calls.length = 0;
    const before = px.requests().length;
    up.script = [{ kind: 'in-trailers', status: 13 }];
    const r = await call(px.url('late'));
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, frame('partial'), 'the message reached the client: no retry may follow');
    assert.equal(r.trailers['grpc-status'], '13');
    assert.equal(r.trailers['grpc-message'], 'late');
    assert.equal(up.calls.length, 1);
    const line = (await px.waitForRequests(before + 1)).at(-1)!;
    assert.equal(line.grpcStatus, 13);
    assert.deepEqual((line.tries as { outcome: string; grpcStatus: number }[]).map((t) => [t.outcome, t.grpcStatus]), [['grpc_error', 13]]);
    assert.equal(line.attempts, 1);
    const m = (await request(`${px.adminUrl}/metrics`)).body;
    assert.equal(metric(m, 'breakwater_grpc_responses_total', { route: 'late', upstream: 'late', grpc_status: 'internal' }), 1);
    // The breaker is fed once per attempt, when the body ended: a second INTERNAL opens it (consecutiveFailures: 2).
    up.script = [{ kind: 'in-trailers', status: 13 }];
    await call(px.url('late'));
    const open = await call(px.url('late'));
    assert.equal(open.headers['x-breakwater-error'], 'circuit_open');
    assert.equal(up.calls.length, 2);
  });

  it('waits grpc-retry-pushback-ms before retrying, and does not retry when it is negative or malformed', async () => {
    up.calls.length = 0;
    up.script = [{ kind: 'trailers-only', status: 14, pushback: '150' }];
    const ok = await call(px.url('main'));
    assert.equal(grpcStatusOf(ok), '0');
    assert.equal(up.calls.length, 2);
    assert.ok(up.calls[1]!.at - up.calls[0]!.at >= 140, `retried after ${up.calls[1]!.at - up.calls[0]!.at} ms`);

    for (const pushback of ['-1', 'soon']) {
      up.calls.length = 0;
      const before = px.requests().length;
      up.script = [{ kind: 'trailers-only', status: 14, pushback }];
      const r = await call(px.url('main'));
      assert.equal(grpcStatusOf(r), '14', pushback);
      assert.equal(up.calls.length, 1, pushback);
      const line = (await px.waitForRequests(before + 1)).at(-1)!;
      assert.ok((line.flags as string[]).includes('retry_pushback'), pushback);
    }
  });

  it('lets grpc-timeout tighten timeout.total, never widen it: a hanging upstream answers DEADLINE_EXCEEDED on HTTP 200', async () => {
    up.script = [{ kind: 'hang' }];
    const tight = await call(px.url('main'), { 'grpc-timeout': '150m' });
    assert.ok(tight.ms < 2000, `answered after ${tight.ms} ms`);
    assert.equal(tight.status, 200);
    assert.equal(tight.headers['grpc-status'], '4');
    assert.equal(tight.headers['x-breakwater-error'], 'timeout');

    // `slow` has total 400ms: a client asking for 100 seconds still gets 400ms.
    const before = px.requests().length;
    up.script = [{ kind: 'hang' }];
    const wide = await call(px.url('slow'), { 'grpc-timeout': '100S' });
    assert.ok(wide.ms >= 350 && wide.ms < 5000, `answered after ${wide.ms} ms`);
    assert.equal(wide.headers['grpc-status'], '4');
    const line = (await px.waitForRequests(before + 1)).at(-1)!;
    assert.equal(line.status, 200);
    assert.equal(line.grpcStatus, 4);
    assert.equal(line.error, 'timeout');
  });

  it('answers a gRPC call gRPC-shaped when breakwater answers itself: rate limit 8, no route 12; plain HTTP still gets JSON', async () => {
    const first = await call(px.url('edge'), { host: 'limited.internal' });
    assert.equal(grpcStatusOf(first), '0');
    const limited = await call(px.url('edge'), { host: 'limited.internal' });
    assert.equal(limited.status, 200);
    assert.equal(limited.headers['grpc-status'], '8');
    assert.equal(limited.headers['x-breakwater-error'], 'rate_limited');
    assert.ok(Number(limited.headers['retry-after']) >= 1);

    const lost = await call(px.url('edge'), { host: 'nowhere.internal' });
    assert.equal(lost.status, 200);
    assert.equal(lost.headers['grpc-status'], '12');
    assert.equal(lost.headers['x-breakwater-error'], 'no_route');
    assert.equal(lost.headers['content-type'], 'application/grpc');

    const plain = await request(`${px.url('edge')}/x`, { headers: { host: 'nowhere.internal' } });
    assert.equal(plain.status, 404);
    assert.equal(plain.headers['content-type'], 'application/json');

    const m = (await request(`${px.adminUrl}/metrics`)).body;
    assert.equal(metric(m, 'breakwater_grpc_responses_total', { route: 'limited', grpc_status: 'resource-exhausted' }), 1);
    assert.equal(metric(m, 'breakwater_grpc_responses_total', { route: '', grpc_status: 'unimplemented' }), 1);
  });
});

const missing = opensslMissing();
const skip = missing !== null && process.env['CI'] !== 'true' ? missing : false;

describe('protocol against an https server that offers h2 and HTTP/1.1 (SPEC §10.1)', { skip }, () => {
  let certs: CertFactory;
  let server: http2.Http2SecureServer;
  let px: TestProxy;

  before(async () => {
    if (missing !== null) throw new Error(missing);
    certs = new CertFactory();
    const ca = certs.ca('h2-ca');
    const leaf = certs.leaf('h2-server', ca, ['IP:127.0.0.1']);
    // allowHTTP1: ALPN offers h2 and http/1.1; the answer says which one the request came over.
    server = http2.createSecureServer({ key: leaf.key, cert: leaf.cert, allowHTTP1: true }, (req, res) => {
      res.end(`http/${req.httpVersion}`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const tls = `{ ca: "${ca.certFile}" }`;
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: http1, address: 127.0.0.1:0, upstream: http1 }
  - { name: h2, address: 127.0.0.1:0, upstream: h2 }
  - { name: auto, address: 127.0.0.1:0, upstream: auto }
upstreams:
  http1: { url: "${url}", tls: ${tls} }
  h2: { url: "${url}", tls: ${tls}, protocol: h2 }
  auto: { url: "${url}", tls: ${tls}, protocol: auto }
`);
  });

  after(async () => {
    await px?.close();
    await new Promise<void>((r) => {
      if (server === undefined) return r();
      server.close(() => r());
    });
    certs?.close();
  });

  it('speaks HTTP/1.1 with protocol http1 (the built-in): h2 is never offered', async () => {
    for (let i = 0; i < 2; i++) assert.equal((await request(`${px.url('http1')}/`)).body, 'http/1.1');
  });

  it('speaks HTTP/2 with protocol h2 and with auto', async () => {
    assert.equal((await request(`${px.url('h2')}/`)).body, 'http/2.0');
    assert.equal((await request(`${px.url('auto')}/`)).body, 'http/2.0');
  });
});
