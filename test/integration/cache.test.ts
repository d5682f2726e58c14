import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type LogLine, type TestProxy } from '../helpers/proxy.ts';
import { startUpstream, type Step, type Upstream } from '../helpers/upstream.ts';
import v8 from 'node:v8';
import vm from 'node:vm';
import { sleep, waitFor } from '../helpers/wait.ts';
import { seriesValue } from '../helpers/metrics.ts';

// A full GC on demand, to see what the process still holds after evictions.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const series = seriesValue;

/**
 * One upstream whose answer is chosen per path: `/PATH?fail` style switching
 * is done by the test through `plan`, keyed by path, so every test owns its
 * URLs and the store is shared without interference.
 */
describe('stale-if-error cache (SPEC §11.2)', () => {
  let up: Upstream;
  let px: TestProxy;
  const plan = new Map<string, Step>();
  const baseline = snapshotHandles();
  const ok = (body: string, headers: Record<string, string | string[]> = {}): Step => ({ status: 200, body, headers: { 'cache-control': 'max-age=0', ...headers } });
  const FAIL: Step = { status: 503, body: 'down' };

  const config = (extra = '') => `
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: short, match: { pathPrefix: /short }, upstream: api, cache: { staleIfError: 2s } }
      - { name: fresh, match: { pathPrefix: /fresh }, upstream: api, cache: { serveFresh: true } }
      - name: chained
        match: { pathPrefix: /chained }
        upstream: api
        cache: {}
        fallback: { on: [5xx], response: { status: 503, body: static } }
      - { name: small, match: { pathPrefix: /small }, upstream: api, cache: { maxBytes: 4MiB, maxEntrySize: 2MiB, maxEntries: 100 } }
      - { name: hanging, match: { pathPrefix: /hang }, upstream: api, cache: {}, timeout: { total: 300ms } }
      ${extra}
      - { name: main, upstream: api, cache: { staleIfError: 2s } }
  - { name: guarded, address: 127.0.0.1:0, routes: [{ name: guarded, upstream: guarded, cache: {} }] }
upstreams:
  api:
    url: \${API}
    retry: { backoff: { strategy: immediate } }
  guarded:
    url: \${API}
    retry: { maxRetries: 0 }
    circuitBreaker: { consecutiveFailures: 1, openDuration: 30s }
`;

  before(async () => {
    up = await startUpstream((req) => plan.get(req.url.split('?')[0]!) ?? { status: 404, body: 'unplanned' });
    px = await startProxy(config().replaceAll('${API}', up.origin));
  });

  after(async () => {
    await px.close();
    await up.close();
    await assertNoLeaks(baseline);
  });

  const get = (path: string, headers?: Record<string, string>, listener = 'main') => request(`${px.url(listener)}${path}`, { headers });
  const lastLine = async (): Promise<LogLine> => {
    const n = px.requests().length;
    await sleep(20);
    return (await px.waitForRequests(n)).at(-1)!;
  };
  const metrics = () => px.proxy.metrics.metricsText();

  it('serves the stored response when the upstream then fails, with Age and x-breakwater-fallback: cache', async () => {
    plan.set('/a', ok('first', { 'content-type': 'text/plain', etag: '"v1"' }));
    assert.equal((await get('/a')).body, 'first');
    plan.set('/a', FAIL);
    const r = await get('/a');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'first');
    assert.equal(r.headers['x-breakwater-fallback'], 'cache');
    assert.equal(r.headers['content-type'], 'text/plain');
    assert.equal(r.headers.etag, '"v1"', 'validators are kept');
    assert.equal(r.headers['content-length'], '5');
    assert.match(String(r.headers.age), /^\d+$/);
    assert.ok(r.headers['x-request-id']);
    const line = await lastLine();
    assert.ok((line.flags as string[]).includes('fallback_cache'), JSON.stringify(line.flags));
    assert.ok((line.flags as string[]).includes('fallback'));
    assert.ok((line.flags as string[]).includes('retries_exhausted'), 'the failure is still in the log');
    assert.equal(line.status, 200);
    const m = await metrics();
    assert.equal(series(m, 'breakwater_fallbacks_total', { route: 'main', upstream: 'api', kind: 'cache' }), 1);
    assert.equal(series(m, 'breakwater_cache_hits_total', { route: 'main', upstream: 'api', result: 'stale' }), 1);
  });

  it('replaces a URL’s entry at most once a second', async () => {
    plan.set('/refresh', ok('v1'));
    await get('/refresh');
    plan.set('/refresh', ok('v2'));
    assert.equal((await get('/refresh')).body, 'v2', 'the client gets the new answer…');
    plan.set('/refresh', FAIL);
    assert.equal((await get('/refresh')).body, 'v1', '…the entry, stored less than a second ago, is kept');
    await sleep(1200);
    plan.set('/refresh', ok('v3'));
    await get('/refresh');
    plan.set('/refresh', FAIL);
    assert.equal((await get('/refresh')).body, 'v3');
  });

  it('does not serve a response once its stale window has passed', async () => {
    plan.set('/short/x', ok('old'));
    assert.equal((await get('/short/x')).body, 'old');
    plan.set('/short/x', FAIL);
    // 2s, not 1s: the Date header has whole seconds, so a second ticking over between
    // the upstream's head and storing it makes an entry up to 1s old at once.
    assert.equal((await get('/short/x')).body, 'old', 'within the 2s window');
    await sleep(3000);
    const r = await get('/short/x');
    assert.equal(r.status, 503);
    assert.equal(r.body, 'down');
    assert.equal(r.headers['x-breakwater-fallback'], undefined);
    assert.equal(px.proxy.registry.caches.get('route:short')!.lookup('127.0.0.1\u0000/short/x', {}), null, 'the expired entry was dropped');
  });

  it('a response’s own stale-if-error widens the window; max-age adds to it', async () => {
    plan.set('/short/own', ok('own', { 'cache-control': 'max-age=0, stale-if-error=60' }));
    plan.set('/short/fresh', ok('fresh', { 'cache-control': 'max-age=60' }));
    await get('/short/own');
    await get('/short/fresh');
    plan.set('/short/own', FAIL);
    plan.set('/short/fresh', FAIL);
    await sleep(3000);
    assert.equal((await get('/short/own')).body, 'own');
    assert.equal((await get('/short/fresh')).body, 'fresh', 'still fresh: well within max-age + staleIfError');
  });

  for (const [what, headers, reqHeaders] of [
    ['no-store', { 'cache-control': 'no-store' }, {}],
    ['private', { 'cache-control': 'private, max-age=60' }, {}],
    ['set-cookie', { 'set-cookie': 'session=1' }, {}],
    ['Vary: *', { vary: '*' }, {}],
    ['an answer to a request with authorization', {}, { authorization: 'Bearer x' }],
    ['an answer to a request with no-store', {}, { 'cache-control': 'no-store' }],
  ] as [string, Record<string, string>, Record<string, string>][]) {
    it(`never stores ${what}`, async () => {
      const path = `/never/${encodeURIComponent(what)}`;
      plan.set(path, ok('secret', headers));
      assert.equal((await get(path, reqHeaders)).body, 'secret');
      plan.set(path, FAIL);
      const r = await get(path, reqHeaders);
      assert.equal(r.status, 503);
      assert.equal(r.body, 'down');
    });
  }

  it('stores an authorized answer the origin marks public', async () => {
    plan.set('/auth-public', ok('shared', { 'cache-control': 'public, max-age=0' }));
    await get('/auth-public', { authorization: 'Bearer x' });
    plan.set('/auth-public', FAIL);
    assert.equal((await get('/auth-public', { authorization: 'Bearer y' })).body, 'shared');
  });

  it('keeps one variant per Vary value and serves only the matching one', async () => {
    let n = 0;
    up.setScript((req) => {
      if (req.url !== '/vary') return plan.get(req.url.split('?')[0]!) ?? { status: 404 };
      n++;
      return ok(`lang ${req.headers['accept-language']}`, { vary: 'Accept-Language' });
    });
    try {
      assert.equal((await get('/vary', { 'accept-language': 'en' })).body, 'lang en');
      assert.equal((await get('/vary', { 'accept-language': 'fr' })).body, 'lang fr');
      assert.equal(n, 2);
    } finally {
      up.setScript((req) => plan.get(req.url.split('?')[0]!) ?? { status: 404, body: 'unplanned' });
    }
    plan.set('/vary', FAIL);
    assert.equal((await get('/vary', { 'accept-language': 'en' })).body, 'lang en');
    assert.equal((await get('/vary', { 'accept-language': 'fr' })).body, 'lang fr');
    const de = await get('/vary', { 'accept-language': 'de' });
    assert.equal(de.status, 503, 'no stored variant for de');
    assert.equal((await get('/vary')).status, 503, 'an absent header is a variant of its own');
  });

  it('answers HEAD from the GET’s entry, without a body and with its length', async () => {
    plan.set('/head', ok('twelve bytes'));
    await get('/head');
    plan.set('/head', FAIL);
    const r = await request(`${px.url('main')}/head`, { method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.equal(r.body, '');
    assert.equal(r.headers['content-length'], '12');
    assert.equal(r.headers['x-breakwater-fallback'], 'cache');
  });

  it('an unsafe method that succeeds drops the URL’s stored response', async () => {
    plan.set('/post', ok('before'));
    await get('/post');
    assert.equal((await request(`${px.url('main')}/post`, { method: 'POST', body: 'x' })).status, 200);
    plan.set('/post', FAIL);
    assert.equal((await get('/post')).status, 503);
  });

  it('stores nothing from a body cut off mid-way', async () => {
    plan.set('/cut', { status: 200, body: 'x'.repeat(1000), headers: { 'cache-control': 'max-age=0' }, reset: 'mid-body' });
    await get('/cut').catch(() => {});
    plan.set('/cut', FAIL);
    assert.equal((await get('/cut')).status, 503);
  });

  it('stores nothing when the client goes away mid-body', async () => {
    plan.set('/abandoned', { status: 200, chunks: ['a'.repeat(100), 'b'.repeat(100), 'c'], chunkIntervalMs: 200, headers: { 'cache-control': 'max-age=0' } });
    await new Promise<void>((resolve, reject) => {
      const req = http.get(`${px.url('main')}/abandoned`, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(err)));
    });
    await waitFor('the abandoned request to be logged', () => px.requests().some((l) => l.path === '/abandoned' && (l.flags as string[] | null)?.includes('client_abort') === true));
    plan.set('/abandoned', FAIL);
    assert.equal((await get('/abandoned')).status, 503);
  });

  it('answers an HTTP/2 (h2c) client from the cache too', async () => {
    plan.set('/h2', ok('over h2', { 'content-type': 'text/plain', link: ['</a>; rel=preload', '</b>; rel=preload'] }));
    await get('/h2');
    plan.set('/h2', FAIL);
    const session = http2.connect(px.url('main'));
    try {
      const { head, body } = await new Promise<{ head: http2.IncomingHttpHeaders; body: string }>((resolve, reject) => {
        const s = session.request({ ':path': '/h2' });
        let head: http2.IncomingHttpHeaders = {};
        let body = '';
        s.on('response', (h) => (head = h));
        s.setEncoding('utf8');
        s.on('data', (c: string) => (body += c));
        s.on('end', () => resolve({ head, body }));
        s.on('error', reject);
      });
      assert.equal(head[':status'], 200);
      assert.equal(body, 'over h2');
      assert.equal(head['x-breakwater-fallback'], 'cache');
      assert.equal(head.link, '</a>; rel=preload, </b>; rel=preload');
    } finally {
      session.close();
    }
  });

  it('serveFresh: a fresh stored response answers without the upstream; no-cache asks it', async () => {
    let n = 0;
    plan.set('/fresh/x', ok('f', { 'cache-control': 'max-age=60' }));
    const before = up.requests.length;
    await get('/fresh/x');
    const r = await get('/fresh/x');
    n = up.requests.length - before;
    assert.equal(n, 1, 'the second request never reached the upstream');
    assert.equal(r.body, 'f');
    assert.equal(r.headers['x-breakwater-fallback'], undefined, 'a fresh hit is no fallback');
    assert.match(String(r.headers.age), /^\d+$/);
    const line = await lastLine();
    assert.ok((line.flags as string[]).includes('cache_fresh'));
    await get('/fresh/x', { 'cache-control': 'no-cache' });
    assert.equal(up.requests.length - before, 2);
    assert.equal(series(await metrics(), 'breakwater_cache_hits_total', { route: 'fresh', upstream: 'api', result: 'fresh' }), 1);
  });

  it('is tried before fallback.response; the static answer serves what it cannot', async () => {
    plan.set('/chained/a', ok('stored'));
    await get('/chained/a');
    plan.set('/chained/a', { status: 500, body: 'boom' });
    plan.set('/chained/b', { status: 500, body: 'boom' });
    const a = await get('/chained/a');
    assert.equal(a.body, 'stored');
    assert.equal(a.headers['x-breakwater-fallback'], 'cache');
    const b = await get('/chained/b');
    assert.equal(b.body, 'static');
    assert.equal(b.headers['x-breakwater-fallback'], 'response');
  });

  it('answers a timeout and a reset from the cache', async () => {
    plan.set('/hang/t', ok('slow-later'));
    plan.set('/reset', ok('then reset'));
    await get('/hang/t');
    await get('/reset');
    plan.set('/hang/t', { hang: true });
    plan.set('/reset', { reset: 'before-headers' });
    const t = await get('/hang/t');
    assert.equal(t.body, 'slow-later');
    assert.equal(t.headers['x-breakwater-fallback'], 'cache');
    assert.ok(((await lastLine()).flags as string[]).includes('timeout'));
    const r = await get('/reset');
    assert.equal(r.body, 'then reset');
  });

  it('answers an open breaker from the cache', async () => {
    plan.set('/guarded', ok('guarded'));
    assert.equal((await get('/guarded', {}, 'guarded')).body, 'guarded');
    plan.set('/guarded', { status: 500, body: 'boom' });
    // The 500 opens the breaker (and is passed through: 5xx is not in the built-in on list)…
    assert.equal((await get('/guarded', {}, 'guarded')).status, 500);
    const before = up.requests.length;
    // …and the open breaker's refusal is answered from the cache.
    const r = await get('/guarded', {}, 'guarded');
    assert.equal(r.body, 'guarded');
    assert.equal(r.headers['x-breakwater-fallback'], 'cache');
    assert.equal(up.requests.length, before, 'the breaker refused before the upstream');
    assert.ok(((await lastLine()).flags as string[]).includes('circuit_open'));
  });

  it('stays within maxBytes with large bodies, evicting the least recently used (counted)', async () => {
    const MiB = 1024 * 1024;
    const body = Buffer.alloc(MiB, 97); // one buffer for every step: the test itself keeps 1 MiB, not 50
    for (let i = 0; i < 50; i++) plan.set(`/small/${i}`, { status: 200, body, headers: { 'cache-control': 'max-age=0' } });
    for (let i = 0; i < 50; i++) assert.equal((await get(`/small/${i}`)).body.length, MiB);
    const store = px.proxy.registry.caches.get('route:small')!;
    assert.ok(store.bytes <= 4 * MiB, `accounted ${store.bytes} bytes`);
    // And the process does not keep what was evicted: after a full GC the
    // buffers alive are the 3 stored bodies, the test's one, and small change
    // (50 MiB if evicted bodies were retained anywhere).
    await sleep(50);
    gc();
    gc();
    const external = process.memoryUsage().arrayBuffers;
    assert.ok(external < 12 * MiB, `${(external / MiB).toFixed(1)} MiB of buffers alive after GC`);
    assert.equal(store.entries, 3, 'three 1 MiB responses (with their headers) fit in 4 MiB');
    const evicted = series(await metrics(), 'breakwater_cache_evictions_total', { route: 'small', upstream: 'api' });
    assert.equal(evicted, 47);
    // The newest are kept; the oldest went.
    plan.set('/small/49', FAIL);
    plan.set('/small/0', FAIL);
    assert.equal((await get('/small/49')).body.length, MiB);
    assert.equal((await get('/small/0')).status, 503);
  });

  it('a body over maxEntrySize passes through unstored', async () => {
    plan.set('/small/big', { status: 200, body: Buffer.alloc(3 * 1024 * 1024, 98), headers: { 'cache-control': 'max-age=0' } });
    plan.set('/small/big-chunked', { status: 200, chunks: [Buffer.alloc(1024 * 1024), Buffer.alloc(1024 * 1024), Buffer.alloc(1024 * 1024)], headers: { 'cache-control': 'max-age=0' } });
    assert.equal((await get('/small/big')).body.length, 3 * 1024 * 1024);
    assert.equal((await get('/small/big-chunked')).body.length, 3 * 1024 * 1024);
    plan.set('/small/big', FAIL);
    plan.set('/small/big-chunked', FAIL);
    assert.equal((await get('/small/big')).status, 503);
    assert.equal((await get('/small/big-chunked')).status, 503);
  });

  it('a reload that keeps the route keeps its stored responses; removing the route frees them', async () => {
    plan.set('/kept', ok('kept'));
    await get('/kept');
    const store = px.proxy.registry.caches.get('route:main')!;
    px.write(config('- { name: extra, match: { pathPrefix: /extra }, upstream: api }').replaceAll('${API}', up.origin));
    const r1 = await px.proxy.reload('test');
    assert.equal(r1.result, 'success', r1.errors.join('; '));
    assert.equal(px.proxy.registry.caches.get('route:main'), store, 'same store');
    plan.set('/kept', FAIL);
    assert.equal((await get('/kept')).body, 'kept');
    const small = px.proxy.registry.caches.get('route:small')!;
    assert.ok(small.entries > 0);
    px.write(config().replaceAll('${API}', up.origin).replace(/^.*name: small.*$/m, ''));
    const r2 = await px.proxy.reload('test');
    assert.equal(r2.result, 'success', r2.errors.join('; '));
    await waitFor('the removed route’s cache to go', () => !px.proxy.registry.caches.has('route:small'));
    assert.equal(small.entries, 0, 'its entries were freed');
  });
});

describe('stale-if-error cache: what must never be stored (final review)', () => {
  const baseline = snapshotHandles();

  it('a Vary naming an Object.prototype member (constructor, __proto__) is a header like any other: the answer ends', async () => {
    const up = await startUpstream({ status: 200, body: 'hello', headers: { 'cache-control': 'max-age=0', vary: 'constructor' } });
    const px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: main, address: 127.0.0.1:0, routes: [{ name: main, upstream: api, cache: {}, timeout: { idle: 2s } }] }
upstreams:
  api: { url: "${up.origin}" }
`);
    try {
      for (let i = 0; i < 2; i++) {
        // The response must END (a thrown collector once left it open until the idle timeout).
        const got = await new Promise<string>((resolve) => {
          const t = setTimeout(() => {
            resolve('no end within 1.5 s');
            r.destroy();
          }, 1500);
          const r = http.get(`${px.url('main')}/v`, { agent: false }, (res) => {
            let b = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (b += c));
            res.on('end', () => {
              clearTimeout(t);
              resolve(`${res.statusCode} ${b}`);
            });
            res.on('error', () => {});
          });
          r.on('error', () => {});
        });
        assert.equal(got, '200 hello');
      }
    } finally {
      await px.close();
      await up.close();
    }
  });

  it('a response to a request with a cookie is not shared with other clients, unless it says it may be', async () => {
    let down = false;
    const up = await startUpstream((req) =>
      down
        ? { status: 503, body: 'down' }
        : { status: 200, body: `page of ${req.headers.cookie ?? 'nobody'}`, headers: { 'cache-control': req.url.startsWith('/shared') ? 'public, max-age=0' : 'max-age=0' } },
    );
    const px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: main, address: 127.0.0.1:0, routes: [{ name: main, upstream: api, cache: {} }] }
upstreams:
  api: { url: "${up.origin}", retry: { maxRetries: 1, backoff: { strategy: immediate } } }
`);
    try {
      assert.equal((await request(`${px.url('main')}/me`, { headers: { cookie: 'session=alice' } })).body, 'page of session=alice');
      assert.equal((await request(`${px.url('main')}/shared`, { headers: { cookie: 'session=alice' } })).status, 200);
      down = true;
      const bob = await request(`${px.url('main')}/me`, { headers: { cookie: 'session=bob' } });
      assert.equal(bob.status, 503, 'alice’s page is never bob’s');
      assert.notEqual(bob.body, 'page of session=alice');
      const shared = await request(`${px.url('main')}/shared`);
      assert.equal(shared.headers['x-breakwater-fallback'], 'cache', 'a public answer is shared');
    } finally {
      await px.close();
      await up.close();
    }
  });

  it('a body delimited by the connection’s close and cut by a reset is never stored', async () => {
    let n = 0;
    const up = net.createServer((s) => {
      s.once('data', () => {
        n++;
        if (n === 1) {
          s.write('HTTP/1.1 200 OK\r\nCache-Control: max-age=0\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{"items":[1,2,3,');
          setTimeout(() => s.resetAndDestroy(), 50);
        } else s.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndown');
      });
    });
    await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
    const px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: main, address: 127.0.0.1:0, routes: [{ name: main, upstream: api, cache: {} }] }
upstreams:
  api: { url: "http://127.0.0.1:${(up.address() as net.AddressInfo).port}", retry: { maxRetries: 0 } }
`);
    try {
      await request(`${px.url('main')}/list`).catch(() => null);
      await sleep(100);
      // The upstream goes away: a connect failure, which the cache answers when it has an entry.
      await new Promise<void>((r) => up.close(() => r()));
      const second = await request(`${px.url('main')}/list`);
      assert.notEqual(second.headers['x-breakwater-fallback'], 'cache', second.body);
      assert.notEqual(second.status, 200);
    } finally {
      await px.close();
      if (up.listening) await new Promise<void>((r) => up.close(() => r()));
      await assertNoLeaks(baseline);
    }
  });
});

describe('stale-if-error cache: an HTTP/2 upstream', () => {
  const baseline = snapshotHandles();

  /** An h2c upstream: its first answer to each path is 200 without content-length, written by `first`; then 503. */
  async function h2Upstream(first: (res: http2.Http2ServerResponse) => void): Promise<{ server: http2.Http2Server; port: number }> {
    const seen = new Set<string>();
    const server = http2.createServer((req, res) => {
      if (seen.has(req.url)) {
        res.writeHead(503, { 'content-length': '4' });
        res.end('down');
        return;
      }
      seen.add(req.url);
      res.writeHead(200, { 'cache-control': 'max-age=0', 'content-type': 'application/json' });
      res.write('{"items":[1,2,');
      setTimeout(() => first(res), 30);
    });
    server.on('session', (s) => s.on('error', () => {}));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { server, port: (server.address() as net.AddressInfo).port };
  }

  // node's HTTP/2 client ends a stream the server reset with CANCEL or
  // NO_ERROR as if its body were whole, and undici has no length to check
  // it against: an h2 answer's end is not known from its framing alone, so
  // only answers with a content-length they reached are stored.
  for (const [what, first] of [
    ['ended normally (END_STREAM)', (res: http2.Http2ServerResponse) => res.end('3]}')],
    ['cut by RST_STREAM CANCEL', (res: http2.Http2ServerResponse) => res.stream.close(http2.constants.NGHTTP2_CANCEL)],
    ['cut by RST_STREAM NO_ERROR', (res: http2.Http2ServerResponse) => res.stream.close(http2.constants.NGHTTP2_NO_ERROR)],
  ] as const) {
    it(`never stores an h2c answer without content-length, ${what}`, async () => {
      const up = await h2Upstream(first);
      const px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: main, address: 127.0.0.1:0, routes: [{ name: main, upstream: api, cache: {} }] }
upstreams:
  api: { url: "http://127.0.0.1:${up.port}", protocol: h2c, retry: { backoff: { strategy: immediate } } }
`);
      try {
        await request(`${px.url('main')}/doc`).catch(() => null);
        await sleep(100);
        const second = await request(`${px.url('main')}/doc`);
        assert.notEqual(second.headers['x-breakwater-fallback'], 'cache', second.body);
        assert.equal(second.status, 503);
      } finally {
        await px.close();
        await new Promise<void>((r) => up.server.close(() => r()));
        await assertNoLeaks(baseline);
      }
    });
  }
});
