/**
 * Requests breakwater answers straight on the socket (http/refused.ts) —
 * parser errors, a slow head, Upgrade and CONNECT refused before a route —
 * are finished requests like any other: one access line with the request id
 * the client read, one requests_total sample under the empty route, and on
 * the tap (SPEC §5, §8, §13). A WebSocket refused by its upstream's breaker
 * gets its 'tunnel' line, as a refused CONNECT tunnel does.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rawRequest, request } from '../helpers/http.ts';
import { sampleOf } from '../helpers/metrics.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type LogLine, type TestProxy } from '../helpers/proxy.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

/** One sample of a metric from Prometheus text (labels given must match; others ignored), or 0. */
const metric = (text: string, name: string, labels: Record<string, string>): number => sampleOf(text, name, labels) ?? 0;

/** The x-request-id of the first answer in a raw byte stream. */
function requestIdOf(raw: string): string {
  const m = /\r\nx-request-id: ([^\r]+)\r\n/i.exec(raw);
  assert.ok(m, `an x-request-id in ${JSON.stringify(raw.slice(0, 200))}`);
  return m[1]!;
}

describe('requests answered on the raw socket are counted and logged (SPEC §5, §8)', () => {
  let up: Upstream;
  let px: TestProxy;
  const baseline = snapshotHandles();

  before(async () => {
    up = await startUpstream(() => ({ body: 'ok' }));
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
log: { headers: [x-team] }
listeners:
  - name: egress
    address: 127.0.0.1:0
    limits: { headerTimeout: 500ms, requestTimeout: 1s }
    routes:
      - name: api
        match: { host: api.test }
        upstream: up
upstreams:
  up:
    url: ${up.origin}
    circuitBreaker: {}
`);
  });

  after(async () => {
    await px.close();
    await up.close();
    await assertNoLeaks(baseline);
  });

  const scrape = async () => (await request(`${px.adminUrl}/metrics`)).body;
  /** The access line of the request the client read `rid` from. */
  const lineOf = async (rid: string): Promise<LogLine> => {
    let found: LogLine | undefined;
    await waitFor(`the access line of ${rid}`, () => (found = px.requests().find((l) => l.requestId === rid)) !== undefined, 5000);
    return found!;
  };

  it('a refused CONNECT: 405 line with method, authority and no route; requests_total{method="CONNECT",code="405"}', async () => {
    const labels = { listener: 'egress', route: '', upstream: '', method: 'CONNECT', code: '405' };
    const before = metric(await scrape(), 'breakwater_requests_total', labels);
    const r = await rawRequest(px.port('egress'), 'CONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\nX-Team: pay\r\n\r\n');
    assert.match(r.raw, /^HTTP\/1\.1 405 /);
    const l = await lineOf(requestIdOf(r.raw));
    assert.equal(l.status, 405);
    assert.equal(l.error, 'method_not_allowed');
    assert.equal(l.method, 'CONNECT');
    assert.equal(l.path, 'api.test:443');
    assert.equal(l.listener, 'egress');
    assert.equal(l.route, null);
    assert.equal(l.upstream, null);
    assert.equal(l.attempts, 0);
    assert.deepEqual(l.tries, []);
    assert.deepEqual(l.headers, { 'x-team': 'pay' });
    assert.equal(l.client, '127.0.0.1');
    assert.ok(typeof l.bytesOut === 'number' && l.bytesOut > 0);
    assert.equal(metric(await scrape(), 'breakwater_requests_total', labels), before + 1);
  });

  it('an Upgrade to an unrouted host: 404 no_route line, flag no_route, rejected_total{reason="no_route"}', async () => {
    const before = await scrape();
    const r = await rawRequest(
      px.port('egress'),
      'GET /ws?token=secret HTTP/1.1\r\nHost: nowhere.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    assert.match(r.raw, /^HTTP\/1\.1 404 /);
    const l = await lineOf(requestIdOf(r.raw));
    assert.equal(l.status, 404);
    assert.equal(l.error, 'no_route');
    assert.deepEqual(l.flags, ['no_route']);
    assert.equal(l.method, 'GET');
    assert.equal(l.path, '/ws', 'the query is not logged unless includeQuery');
    const after = await scrape();
    const labels = { listener: 'egress', route: '', upstream: '', method: 'GET', code: '404' };
    assert.equal(metric(after, 'breakwater_requests_total', labels), metric(before, 'breakwater_requests_total', labels) + 1);
    const rej = { route: '', upstream: '', reason: 'no_route' };
    assert.equal(metric(after, 'breakwater_rejected_total', rej), metric(before, 'breakwater_rejected_total', rej) + 1);
  });

  it('a head node refuses (duplicate Content-Length): 400 line under the id the client read, method and path empty', async () => {
    const labels = { listener: 'egress', route: '', upstream: '', method: 'OTHER', code: '400' };
    const before = metric(await scrape(), 'breakwater_requests_total', labels);
    const r = await rawRequest(px.port('egress'), 'POST /a HTTP/1.1\r\nHost: api.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab');
    assert.match(r.raw, /^HTTP\/1\.1 400 /);
    const l = await lineOf(requestIdOf(r.raw));
    assert.equal(l.status, 400);
    assert.equal(l.error, 'bad_request');
    assert.equal(l.method, '', 'unknown, but still a string');
    assert.equal(l.path, '');
    assert.equal(l.route, null);
    assert.deepEqual(l.headers, {});
    assert.equal(metric(await scrape(), 'breakwater_requests_total', labels), before + 1);
    assert.equal(up.requests.length, 0);
  });

  it('a head over the parser ceiling: 431 line', async () => {
    const r = await rawRequest(px.port('egress'), `GET /a HTTP/1.1\r\nHost: api.test\r\nX-Big: ${'b'.repeat(100 * 1024)}\r\n\r\n`);
    assert.match(r.raw, /^HTTP\/1\.1 431 /);
    const l = await lineOf(requestIdOf(r.raw));
    assert.equal(l.status, 431);
    assert.equal(l.error, 'header_too_large');
  });

  it('a head that never completes within headerTimeout: 408 line with error request_timeout', async () => {
    const n = px.requests().filter((l) => l.status === 408).length;
    const r = await rawRequest(px.port('egress'), 'GET /a HTTP/1.1\r\nHost: api.test\r\n', { timeoutMs: 8000 });
    assert.match(r.raw, /^HTTP\/1\.1 408 /);
    await waitFor('a 408 access line', () => px.requests().filter((l) => l.status === 408).length === n + 1, 5000);
    const l = px.requests().filter((x) => x.status === 408).at(-1)!;
    assert.equal(l.error, 'request_timeout');
    assert.equal(l.method, '');
    assert.equal(typeof l.requestId, 'string');
  });

  it('never logs userinfo or a raw URL as the path: origin-form as every line, / for a malformed target, empty for a bad CONNECT authority', async () => {
    const ws = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
    const cases: [string, number, string][] = [
      [`GET http://alice:s3cret@api.test/ws HTTP/1.1\r\nHost: api.test\r\n${ws}`, 400, '/'],
      [`GET http://nowhere.test/ws?x=1 HTTP/1.1\r\nHost: nowhere.test\r\n${ws}`, 404, '/ws'],
      ['CONNECT alice:s3cret@api.test:443 HTTP/1.1\r\nHost: api.test:443\r\n\r\n', 405, ''],
    ];
    for (const [bytes, status, path] of cases) {
      const r = await rawRequest(px.port('egress'), bytes);
      assert.match(r.raw, new RegExp(`^HTTP/1\\.1 ${status} `));
      const l = await lineOf(requestIdOf(r.raw));
      assert.equal(l.path, path, bytes.split('\r\n')[0]);
    }
    assert.ok(!JSON.stringify(px.logs).includes('s3cret'));
  });

  for (const [what, bytes, status, error] of [
    ['a body node’s parser refuses (bad chunk size)', 'POST /a HTTP/1.1\r\nHost: api.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n', 400, 'bad_request'],
    ['a body slower than requestTimeout', 'POST /b HTTP/1.1\r\nHost: api.test\r\nContent-Length: 10\r\n\r\nab', 408, 'request_timeout'],
  ] as const) {
    it(`a routed request whose answer is ${status} for ${what}: one line, under its route and its own id, not client_abort`, async () => {
      const labels = { listener: 'egress', route: 'api', upstream: 'up', method: 'POST', code: String(status) };
      const total = (t: string) => t.split('\n').filter((x) => x.startsWith('breakwater_requests_total{')).reduce((a, x) => a + Number(x.split(' ').at(-1)), 0);
      const m0 = await scrape();
      const n = px.requests().length;
      const r = await rawRequest(px.port('egress'), bytes, { timeoutMs: 8000 });
      assert.match(r.raw, new RegExp(`^HTTP/1\\.1 ${status} `));
      await waitFor('its access line', () => px.requests().length > n, 5000);
      await sleep(300); // a second line, if any, would come with the socket's close
      const lines = px.requests().slice(n);
      assert.equal(lines.length, 1, JSON.stringify(lines));
      const l = lines[0]!;
      assert.equal(l.status, status);
      assert.equal(l.error, error);
      assert.equal(l.route, 'api');
      assert.ok(!(l.flags as string[]).includes('client_abort'), JSON.stringify(l.flags));
      if (status === 400) assert.equal(l.requestId, requestIdOf(r.raw), 'the id the client read');
      const m1 = await scrape();
      assert.equal(total(m1) - total(m0), 1, 'one requests_total sample');
      assert.equal(sampleOf(m1, 'breakwater_requests_total', labels), (sampleOf(m0, 'breakwater_requests_total', labels) ?? 0) + 1);
    });
  }

  it('the tap sees refused requests, and filters them like any other', async () => {
    const ac = new AbortController();
    // Bounded: a line that never comes fails the test instead of hanging it.
    const timer = setTimeout(() => ac.abort(), 5000);
    const res = await fetch(`${px.adminUrl}/tap?flag=no_route`, { signal: ac.signal });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const r = await rawRequest(px.port('egress'), 'GET /x HTTP/1.1\r\nHost: nowhere.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    const rid = requestIdOf(r.raw);
    let text = '';
    try {
      while (!text.includes(rid)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += Buffer.from(value).toString('utf8');
      }
    } catch {
      // aborted: judged below
    }
    clearTimeout(timer);
    ac.abort();
    await reader.cancel().catch(() => {});
    const line = text.split('\n').find((s) => s.includes(rid));
    assert.ok(line !== undefined, 'the refused Upgrade reached the tap');
    assert.equal(JSON.parse(line).status, 404);
  });

  it('a WebSocket refused by an open breaker gets a tunnel line (outcome circuit_open, status 503)', async () => {
    assert.equal((await request(`${px.adminUrl}/upstreams/up/circuit`, { method: 'POST', body: '{"state":"open"}' })).status, 200);
    try {
      const r = await rawRequest(
        px.port('egress'),
        'GET /ws HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
      assert.match(r.raw, /^HTTP\/1\.1 503 /);
      const rid = requestIdOf(r.raw);
      let t: LogLine | undefined;
      await waitFor(`the tunnel line of ${rid}`, () => (t = px.logs.find((l) => l.msg === 'tunnel' && l.requestId === rid)) !== undefined, 5000);
      assert.equal(t!.protocol, 'websocket');
      assert.equal(t!.outcome, 'circuit_open');
      assert.deepEqual(t!.flags, ['circuit_open']);
      assert.equal(t!.status, 503);
      assert.equal(t!.route, 'api');
      assert.equal(t!.upstream, 'up');
      assert.equal(t!.path, '/ws');
    } finally {
      await request(`${px.adminUrl}/upstreams/up/circuit`, { method: 'POST', body: '{"state":"auto"}' });
    }
  });
});
