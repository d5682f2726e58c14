import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import { request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { waitFor } from '../helpers/wait.ts';
import { refusedPort, startUpstream, type Upstream } from '../helpers/upstream.ts';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

function parseTp(v: unknown): { traceId: string; spanId: string; flags: string } {
  const m = TRACEPARENT.exec(String(v));
  assert.ok(m, `a W3C traceparent, got ${String(v)}`);
  return { traceId: m[1]!, spanId: m[2]!, flags: m[3]! };
}

const serverOf = (spans: ReceivedSpan[], traceId: string): ReceivedSpan | undefined => spans.find((s) => s.traceId === traceId && s.kind === 'server');
const clientsOf = (spans: ReceivedSpan[], server: ReceivedSpan): ReceivedSpan[] =>
  spans.filter((s) => s.parentSpanId === server.spanId && s.kind === 'client').sort((a, b) => Number(a.attributes['breakwater.attempt']) - Number(b.attributes['breakwater.attempt']));

describe('tracing (SPEC §13): spans exported over OTLP/HTTP', () => {
  let up: Upstream;
  let otlp: OtlpReceiver;
  let px: TestProxy;
  let dead: number;
  const baseline = snapshotHandles();

  before(async () => {
    // The resources package's env detector reads the process's environment (as in a pod).
    process.env.OTEL_RESOURCE_ATTRIBUTES = 'k8s.pod.name=pod-1,k8s.namespace.name=ns-a';
    up = await startUpstream();
    otlp = await startOtlpReceiver();
    dead = await refusedPort();
    px = await startProxy(
      `
version: 1
admin: { address: 127.0.0.1:0 }
tracing:
  endpoint: ${otlp.url}
  sampleRatio: 1
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: api
        match: { pathPrefix: /api }
        upstream: svc
      - name: guarded
        match: { pathPrefix: /guarded }
        upstream: guarded
      - name: degraded
        match: { pathPrefix: /degraded }
        upstream: gone
upstreams:
  svc:
    url: ${up.origin}
    retry: { maxRetries: 3, backoff: { strategy: immediate } }
  guarded:
    url: ${up.origin}
    retry: { maxRetries: 0 }
    circuitBreaker: { consecutiveFailures: 1, failureRate: null, openDuration: 30s }
  gone:
    url: http://127.0.0.1:${dead}
    retry: { maxRetries: 1, backoff: { strategy: immediate } }
    fallback:
      response: { status: 200, body: degraded }
`,
      { OTEL_SERVICE_NAME: 'checkout-sidecar' },
    );
  });

  beforeEach(() => up.reset());

  after(async () => {
    delete process.env.OTEL_RESOURCE_ATTRIBUTES;
    await px.close();
    await otlp.close();
    await up.close();
    await assertNoLeaks(baseline);
  });

  it('a retried request: one server span continuing the client’s trace, one client span per attempt, retry events, traceparent per attempt upstream', async () => {
    up.setScript([{ status: 503 }, { status: 503 }, { status: 200, body: 'ok' }]);
    const incomingTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const incomingParent = '00f067aa0ba902b7';
    const r = await request(`${px.url('main')}/api/x?secret=1`, { headers: { traceparent: `00-${incomingTrace}-${incomingParent}-01` } });
    assert.equal(r.status, 200);
    assert.equal(up.requests.length, 3);
    const sent = up.requests.map((q) => parseTp(q.headers.traceparent));
    for (const tp of sent) {
      assert.equal(tp.traceId, incomingTrace, 'the upstream sees the client’s trace');
      assert.equal(tp.flags, '01');
    }
    assert.equal(new Set(sent.map((t) => t.spanId)).size, 3, 'each attempt has its own span id');

    const spans = await otlp.waitForSpans((s) => {
      const srv = serverOf(s, incomingTrace);
      return srv !== undefined && clientsOf(s, srv).length === 3;
    });
    const server = serverOf(spans, incomingTrace)!;
    assert.equal(server.parentSpanId, incomingParent, 'the server span continues the incoming traceparent');
    assert.equal(server.name, 'GET api');
    assert.equal(server.attributes['http.request.method'], 'GET');
    assert.equal(server.attributes['url.path'], '/api/x', 'no query string in the span');
    assert.equal(server.attributes['http.response.status_code'], 200);
    assert.equal(server.attributes['breakwater.route'], 'api');
    assert.equal(server.attributes['breakwater.upstream'], 'svc');
    assert.equal(server.attributes['breakwater.attempts'], 3);
    assert.deepEqual(
      server.events.filter((e) => e.name === 'retry').map((e) => [e.attributes['breakwater.attempt'], e.attributes['breakwater.retry_reason']]),
      [
        [2, '503'],
        [3, '503'],
      ],
    );
    assert.ok(server.events.some((e) => e.name === 'retried'), 'the access-log flag is an event too');
    assert.equal(server.status.code, 'unset');
    assert.equal(server.resource['service.name'], 'checkout-sidecar', '$OTEL_SERVICE_NAME when the config names none');
    assert.equal(server.resource['service.version'], '0.1.0');
    assert.equal(server.resource['k8s.pod.name'], 'pod-1', 'OTEL_RESOURCE_ATTRIBUTES reach the resource');
    assert.equal(server.resource['k8s.namespace.name'], 'ns-a');

    const clients = clientsOf(spans, server);
    assert.deepEqual(clients.map((c) => c.attributes['breakwater.attempt']), [1, 2, 3]);
    assert.deepEqual(clients.map((c) => c.attributes['breakwater.outcome']), ['5xx', '5xx', 'success']);
    assert.deepEqual(clients.map((c) => c.attributes['http.response.status_code']), [503, 503, 200]);
    assert.deepEqual(clients.map((c) => c.status.code), ['error', 'error', 'unset']);
    assert.deepEqual(clients.map((c) => c.attributes['breakwater.retry_reason'] ?? null), [null, '503', '503']);
    for (const c of clients) {
      assert.equal(c.attributes['server.address'], `127.0.0.1:${up.port}`);
      assert.ok(c.startNs >= server.startNs && c.endNs <= server.endNs, 'each client span lies within its server span');
    }
    for (let i = 1; i < clients.length; i++) assert.ok(clients[i - 1]!.endNs <= clients[i]!.startNs, 'attempts follow one another');
    // The upstream saw, on each attempt, exactly that attempt's client span.
    assert.deepEqual(sent.map((t) => t.spanId), clients.map((c) => c.spanId));
  });

  it('a client span lasts until its response is over: a retried attempt’s ends at its head, before the next one starts; the last one’s after its body streamed', async () => {
    up.setScript([{ status: 503 }, { status: 200, chunks: ['a', 'b', 'c', 'd'], chunkIntervalMs: 60 }]);
    const r = await request(`${px.url('main')}/api/slow-body`, { headers: { traceparent: '00-77777777777777777777777777777777-6666666666666666-01' } });
    assert.equal(r.body, 'abcd');
    const spans = await otlp.waitForSpans((s) => {
      const srv = serverOf(s, '7'.repeat(32));
      return srv !== undefined && clientsOf(s, srv).length === 2;
    });
    const server = serverOf(spans, '7'.repeat(32))!;
    const [first, last] = clientsOf(spans, server);
    assert.ok(first!.endNs <= last!.startNs, 'the dropped 503 ended at its head');
    // Three 60 ms gaps between chunks: the span covers them (a lower bound only).
    assert.ok(last!.endNs - last!.startNs >= 150_000_000n, `the streamed attempt lasted ${(last!.endNs - last!.startNs) / 1_000_000n} ms`);
    assert.ok(last!.endNs <= server.endNs, 'within its server span');
  });

  it('a breaker rejection: the server span records circuit_open as an event and has no client span', async () => {
    up.setScript({ status: 500 });
    assert.equal((await request(`${px.url('main')}/guarded/1`)).status, 500); // opens the breaker
    const r = await request(`${px.url('main')}/guarded/2`, { headers: { traceparent: '00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb-01' } });
    assert.equal(r.status, 503);
    assert.equal(up.requests.length, 1, 'the rejected request never went upstream');
    const spans = await otlp.waitForSpans((s) => serverOf(s, 'a'.repeat(32)) !== undefined);
    const server = serverOf(spans, 'a'.repeat(32))!;
    assert.ok(server.events.some((e) => e.name === 'circuit_open' && e.attributes['breakwater.error'] === 'circuit_open'));
    assert.equal(server.attributes['breakwater.error'], 'circuit_open');
    assert.equal(server.attributes['http.response.status_code'], 503);
    assert.equal(server.status.code, 'error');
    assert.deepEqual(clientsOf(spans, server), []);
  });

  it('a fallback: the failed attempts are client spans and the fallback is an event on the server span', async () => {
    const r = await request(`${px.url('main')}/degraded/1`, { headers: { traceparent: '00-cccccccccccccccccccccccccccccccc-dddddddddddddddd-01' } });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'degraded');
    const spans = await otlp.waitForSpans((s) => {
      const srv = serverOf(s, 'c'.repeat(32));
      return srv !== undefined && clientsOf(s, srv).length === 2;
    });
    const server = serverOf(spans, 'c'.repeat(32))!;
    assert.ok(server.events.some((e) => e.name === 'fallback' && e.attributes['breakwater.fallback'] === 'response'), JSON.stringify(server.events));
    assert.deepEqual(clientsOf(spans, server).map((c) => c.attributes['breakwater.outcome']), ['connect_failure', 'connect_failure']);
  });

  it('a client that sends two traceparent headers: the upstream gets exactly one, breakwater’s', async () => {
    up.setScript({ status: 200 });
    const status = await new Promise<number>((resolve, reject) => {
      const r = http.request(`${px.url('main')}/api/two`, { headers: { traceparent: ['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'] } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      r.on('error', reject);
      r.end();
    });
    assert.equal(status, 200);
    const raw = up.requests[0]!.headers.traceparent;
    assert.equal(typeof raw, 'string');
    const tp = parseTp(raw);
    assert.notEqual(tp.traceId, '0af7651916cd43dd8448eb211c80319c', 'the joined pair is no valid parent: a new trace');
    assert.notEqual(tp.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
  });

  it('a request without traceparent starts a trace and sends it upstream', async () => {
    up.setScript({ status: 200 });
    await request(`${px.url('main')}/api/new`);
    const tp = parseTp(up.requests[0]!.headers.traceparent);
    assert.equal(tp.flags, '01');
    const spans = await otlp.waitForSpans((s) => serverOf(s, tp.traceId) !== undefined);
    const server = serverOf(spans, tp.traceId)!;
    assert.equal(server.parentSpanId, '');
    const line = (await px.waitForRequests(1)).find((l) => l['path'] === '/api/new');
    assert.equal(line?.['traceId'], tp.traceId, 'the access log names the trace breakwater started');
    assert.deepEqual(clientsOf(spans, server).map((c) => c.spanId), [tp.spanId]);
  });

  it('an HTTP/2 (h2c) request is traced like any other: its traceparent continued and sent upstream', async () => {
    up.setScript({ status: 200 });
    const http2 = await import('node:http2');
    const session = http2.connect(px.url('main'));
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const s = session.request({ ':path': '/api/h2', traceparent: '00-99999999999999999999999999999999-8888888888888888-01' });
        s.on('response', (h) => resolve(Number(h[':status'])));
        s.on('error', reject);
        s.resume();
      });
      assert.equal(status, 200);
    } finally {
      session.close();
    }
    const tp = parseTp(up.requests[0]!.headers.traceparent);
    assert.equal(tp.traceId, '9'.repeat(32));
    const spans = await otlp.waitForSpans((s) => serverOf(s, '9'.repeat(32)) !== undefined);
    const server = serverOf(spans, '9'.repeat(32))!;
    assert.equal(server.parentSpanId, '8'.repeat(16));
    assert.deepEqual(clientsOf(spans, server).map((c) => c.spanId), [tp.spanId]);
  });

  it('exemplars: an OpenMetrics scrape carries trace ids on request_duration_seconds; a classic scrape does not', async () => {
    up.setScript({ status: 200 });
    await request(`${px.url('main')}/api/exemplar`);
    const tp = parseTp(up.requests[0]!.headers.traceparent);
    const om = await request(`${px.adminUrl}/metrics`, { headers: { accept: 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5' } });
    assert.match(String(om.headers['content-type']), /^application\/openmetrics-text; version=1\.0\.0/);
    assert.ok(om.body.endsWith('# EOF\n'));
    assert.ok(om.body.includes(`trace_id="${tp.traceId}"`), 'the latest traced request is an exemplar');
    const classic = await request(`${px.adminUrl}/metrics`);
    assert.match(String(classic.headers['content-type']), /^text\/plain/);
    assert.ok(!classic.body.includes('trace_id='));
    assert.match(classic.body, /breakwater_requests_total\{/, 'the classic scrape still names counters with _total');
  });
});

describe('tracing: sampling', () => {
  let up: Upstream;
  let otlp: OtlpReceiver;
  let px: TestProxy;
  const baseline = snapshotHandles();

  before(async () => {
    up = await startUpstream({ status: 200 });
    otlp = await startOtlpReceiver();
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
tracing: { endpoint: ${otlp.url}, sampleRatio: 0, serviceName: from-config }
listeners:
  - name: main
    address: 127.0.0.1:0
    upstream: svc
upstreams:
  svc: { url: ${up.origin} }
`);
  });

  after(async () => {
    await px.close();
    await otlp.close();
    await up.close();
    await assertNoLeaks(baseline);
  });

  it('ratio 0: nothing is exported, yet a traceparent (not sampled) goes upstream, continuing the client’s trace', async () => {
    await request(`${px.url('main')}/a`);
    await request(`${px.url('main')}/b`, { headers: { traceparent: '00-eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-ffffffffffffffff-00' } });
    const started = parseTp(up.requests[0]!.headers.traceparent);
    assert.equal(started.flags, '00');
    const continued = parseTp(up.requests[1]!.headers.traceparent);
    assert.equal(continued.traceId, 'e'.repeat(32));
    assert.equal(continued.flags, '00');
    assert.notEqual(continued.spanId, 'f'.repeat(16), 'breakwater takes part with its own span id');
    await px.proxy.tracing.engine!.flush();
    assert.equal(otlp.spans.length, 0);
  });

  it('a sampled parent is followed (parent-based) even at ratio 0', async () => {
    await request(`${px.url('main')}/c`, { headers: { traceparent: '00-12121212121212121212121212121212-3434343434343434-01' } });
    const spans = await otlp.waitForSpans((s) => s.some((x) => x.kind === 'server'));
    const mine = spans.filter((s) => s.traceId === '12'.repeat(16));
    assert.equal(mine.length, 2);
    assert.equal(mine[0]!.resource['service.name'], 'from-config');
  });
});

describe('tracing: collector credentials from the standard OTEL_EXPORTER_OTLP_*HEADERS variables', () => {
  let up: Upstream;
  let otlp: OtlpReceiver;
  let px: TestProxy;
  const baseline = snapshotHandles();
  const saved = { all: process.env.OTEL_EXPORTER_OTLP_HEADERS, traces: process.env.OTEL_EXPORTER_OTLP_TRACES_HEADERS };

  before(async () => {
    // As a pod would set them from a Secret (valueFrom.secretKeyRef); the traces-specific one wins per key.
    process.env.OTEL_EXPORTER_OTLP_HEADERS = 'x-tenant=team-a,authorization=Bearer%20general';
    process.env.OTEL_EXPORTER_OTLP_TRACES_HEADERS = 'authorization=Bearer%20s3cret-collector-token';
    up = await startUpstream({ status: 200 });
    otlp = await startOtlpReceiver();
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
tracing: { endpoint: ${otlp.url} }
listeners:
  - name: main
    address: 127.0.0.1:0
    upstream: svc
upstreams:
  svc: { url: ${up.origin} }
`);
  });

  after(async () => {
    for (const [k, v] of [['OTEL_EXPORTER_OTLP_HEADERS', saved.all], ['OTEL_EXPORTER_OTLP_TRACES_HEADERS', saved.traces]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await px.close();
    await otlp.close();
    await up.close();
    await assertNoLeaks(baseline);
  });

  it('sends them with every export, and shows the secret nowhere (logs, /config)', async () => {
    assert.equal((await request(`${px.url('main')}/x`)).status, 200);
    await otlp.waitForSpans((s) => s.some((x) => x.kind === 'server'));
    assert.equal(otlp.lastHeaders?.authorization, 'Bearer s3cret-collector-token');
    assert.equal(otlp.lastHeaders?.['x-tenant'], 'team-a');
    const config = await request(`${px.adminUrl}/config`);
    assert.equal(config.status, 200);
    assert.ok(!config.body.includes('s3cret'), 'not in /config');
    assert.ok(!JSON.stringify(px.logs).includes('s3cret'), 'not in any log line');
  });
});

describe('tracing: a dead collector', () => {
  let up: Upstream;
  let px: TestProxy;
  const baseline = snapshotHandles();

  before(async () => {
    up = await startUpstream({ status: 200 });
    const dead = await refusedPort();
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
tracing: { endpoint: http://127.0.0.1:${dead}/v1/traces, queueSize: 8 }
listeners:
  - name: main
    address: 127.0.0.1:0
    upstream: svc
upstreams:
  svc: { url: ${up.origin} }
`);
  });

  after(async () => {
    await px.close();
    await up.close();
    // The exporter's retries of the export in flight end within its export timeout (5 s), after the bounded flush.
    await assertNoLeaks(baseline, { settleMs: 8000 });
  });

  it('drops and counts spans past the queue bound; requests are served all the same', async () => {
    const engine = px.proxy.tracing.engine!;
    let maxPending = 0;
    for (let i = 0; i < 40; i++) {
      const r = await request(`${px.url('main')}/x${i}`);
      assert.equal(r.status, 200);
      maxPending = Math.max(maxPending, engine.pending);
    }
    assert.ok(maxPending <= 8, `the queue never holds more than queueSize spans (max ${maxPending})`);
    const m = await request(`${px.adminUrl}/metrics`);
    const dropped = /breakwater_trace_spans_dropped_total\{reason="queue_full"\} (\d+)/.exec(m.body);
    assert.ok(dropped, m.body.split('\n').filter((l) => l.includes('trace_spans')).join('\n'));
    // 80 spans (a server and a client span per request) through a queue of 8 that cannot drain faster than one export at a time.
    assert.ok(Number(dropped[1]) >= 40, `dropped ${dropped[1]}`);
    assert.ok(px.logs.some((l) => l.msg === 'trace_spans_dropped'), 'a (rate-limited) warning says so');
  });
});

describe('tracing across reloads and shutdown', () => {
  let up: Upstream;
  let otlp: OtlpReceiver;
  const baseline = snapshotHandles();
  const cfg = (tracing: string) => `
version: 1
admin: { address: 127.0.0.1:0 }
${tracing}
listeners:
  - name: main
    address: 127.0.0.1:0
    upstream: svc
upstreams:
  svc: { url: ${up.origin} }
`;

  before(async () => {
    up = await startUpstream({ status: 200 });
    otlp = await startOtlpReceiver();
  });

  after(async () => {
    await otlp.close();
    await up.close();
    await assertNoLeaks(baseline);
  });

  it('keeps the exporter over an unchanged block, replaces it on a change, stops it when the block goes, starts one when it comes', async () => {
    const px = await startProxy(cfg(''));
    try {
      assert.equal(px.proxy.tracing.engine, null, 'no tracing block: no exporter');
      await request(`${px.url('main')}/none`);
      assert.equal(up.requests.at(-1)!.headers.traceparent, undefined, 'tracing off: no traceparent is made up');

      px.write(cfg(`tracing: { endpoint: ${otlp.url} }`));
      assert.equal((await px.proxy.reload('test')).result, 'success');
      const first = px.proxy.tracing.engine;
      assert.ok(first !== null);
      await request(`${px.url('main')}/one`);
      const tp1 = parseTp(up.requests.at(-1)!.headers.traceparent);

      px.write(cfg(`tracing: { endpoint: ${otlp.url} }\nlog: { level: debug }`));
      assert.equal((await px.proxy.reload('test')).result, 'success');
      assert.equal(px.proxy.tracing.engine, first, 'an unchanged block keeps the running exporter');

      px.write(cfg(`tracing: { endpoint: ${otlp.url}, sampleRatio: 0.5 }`));
      assert.equal((await px.proxy.reload('test')).result, 'success');
      assert.ok(px.proxy.tracing.engine !== null && px.proxy.tracing.engine !== first, 'a changed block: a new exporter');
      // The replaced exporter flushed what it had.
      await otlp.waitForSpans((s) => s.some((x) => x.traceId === tp1.traceId && x.kind === 'server'));

      px.write(cfg(`tracing: { endpoint: ${otlp.url} }`));
      await px.proxy.reload('test');
      await request(`${px.url('main')}/two`);
      const tp2 = parseTp(up.requests.at(-1)!.headers.traceparent);

      px.write(cfg(''));
      assert.equal((await px.proxy.reload('test')).result, 'success');
      assert.equal(px.proxy.tracing.engine, null, 'the block removed: the exporter is stopped');
      await otlp.waitForSpans((s) => s.some((x) => x.traceId === tp2.traceId && x.kind === 'server'));

      px.write(cfg(`tracing: { endpoint: ${otlp.url} }`));
      await px.proxy.reload('test');
      await request(`${px.url('main')}/three`);
      const tp3 = parseTp(up.requests.at(-1)!.headers.traceparent);
      await px.close();
      // close() flushes: the last span is out before it returns.
      assert.ok(otlp.spans.some((x) => x.traceId === tp3.traceId && x.kind === 'server'));
      // And no exporter it ever made (four here) keeps a connection to the collector.
      await waitFor('the exporters’ connections closed', async () => (await otlp.connections()) === 0, 3_000);
    } finally {
      await px.close();
    }
  });

  it('a failed reload leaves the running exporter alone; validate-style builds start none', async () => {
    const px = await startProxy(cfg(`tracing: { endpoint: ${otlp.url} }`));
    try {
      const e = px.proxy.tracing.engine;
      px.write(cfg(`tracing: { endpoint: ${otlp.url}, sampleRatio: 7 }`));
      assert.equal((await px.proxy.reload('test')).result, 'failure');
      assert.equal(px.proxy.tracing.engine, e);
    } finally {
      await px.close();
    }
  });
});

describe('tracing: a collector that refuses or hangs', () => {
  let up: Upstream;
  const baseline = snapshotHandles();

  before(async () => {
    up = await startUpstream({ status: 200 });
  });

  after(async () => {
    await up.close();
    await assertNoLeaks(baseline, { settleMs: 8000 });
  });

  it('a collector answering 400 (not retried by the exporter): the batch is counted as export_failed', async () => {
    const otlp = await startOtlpReceiver();
    otlp.failWith(400);
    const px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
tracing: { endpoint: ${otlp.url} }
listeners:
  - { name: main, address: 127.0.0.1:0, upstream: svc }
upstreams:
  svc: { url: ${up.origin} }
`);
    try {
      for (let i = 0; i < 3; i++) assert.equal((await request(`${px.url('main')}/f${i}`)).status, 200);
      await px.proxy.tracing.engine!.flush();
      const m = await request(`${px.adminUrl}/metrics`);
      const failed = /breakwater_trace_spans_dropped_total\{reason="export_failed"\} (\d+)/.exec(m.body);
      assert.ok(failed, m.body.split('\n').filter((l) => l.includes('trace_spans')).join('\n'));
      assert.equal(Number(failed[1]), 6, 'a server and a client span per request');
      assert.equal(otlp.spans.length, 0);
    } finally {
      await px.close();
      await otlp.close();
    }
  });

  it('a collector that accepts and never answers: requests are not slowed, and close() still returns in bounded time', async () => {
    const sockets = new Set<import('node:net').Socket>();
    const hang = (await import('node:net')).createServer((s) => {
      sockets.add(s);
      s.on('error', () => {});
    });
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
    const port = (hang.address() as import('node:net').AddressInfo).port;
    const px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
tracing: { endpoint: http://127.0.0.1:${port}/v1/traces, queueSize: 16 }
listeners:
  - { name: main, address: 127.0.0.1:0, upstream: svc }
upstreams:
  svc: { url: ${up.origin} }
`);
    try {
      for (let i = 0; i < 30; i++) assert.equal((await request(`${px.url('main')}/h${i}`)).status, 200);
      assert.ok(px.proxy.tracing.engine!.pending <= 16);
    } finally {
      const t0 = Date.now();
      await px.close();
      // The flush waits at most FLUSH_TIMEOUT_MS (2 s); wide margin for a shared machine.
      assert.ok(Date.now() - t0 < 6000, `close took ${Date.now() - t0} ms`);
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => hang.close(() => r()));
    }
  });
});
