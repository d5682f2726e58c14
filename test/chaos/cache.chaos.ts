/**
 * The stale-if-error cache under a misbehaving upstream (SPEC §11.2): many
 * URLs, concurrent kept-alive clients, answers that are whole, cut mid-body,
 * 503, reset before the head, hung past the deadline, large enough to pass
 * unstored; clients that give up mid-body; a reload in the middle. Whatever
 * is served from the cache must be a whole answer the upstream gave for that
 * very URL (each body says its URL and its own length, so a truncated or
 * misfiled entry shows), the store stays within its bounds, and afterwards
 * nothing is left behind.
 *
 * CHAOS_SCALE multiplies the requests (default 600 at 20 clients).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { startUpstream, type Step, type Upstream } from '../helpers/upstream.ts';
import { drive, scaled, tally, waitForRest, type Outcome } from './lib.ts';

const REQUESTS = scaled(600, 50);
const URLS = 24;
const KiB = 1024;

/** `URL|serial|LENGTH|xxxx…`, exactly LENGTH bytes. */
function bodyFor(url: string, serial: number, length: number): string {
  const head = `${url}|${serial}|${length}|`;
  return head + 'x'.repeat(Math.max(0, length - head.length));
}

/** A body is whole and for this URL, or the reason it is not. */
function wholeFor(url: string, body: string): string | null {
  const [u, , len] = body.split('|');
  if (u !== url) return `a body for ${u} served for ${url}`;
  if (Number(len) !== body.length) return `a body of ${body.length} bytes that says ${len}`;
  return null;
}

const config = (origin: string, mark = '') => `
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: cached
        upstream: api
        cache: { maxEntries: 16, maxBytes: 256KiB, maxEntrySize: 64KiB, staleIfError: 1m }
upstreams:
  api:
    url: ${origin}
    timeout: { total: 400ms, idle: 300ms${mark} }
    retry: { maxRetries: 1, backoff: { strategy: immediate } }
`;

describe('stale-if-error cache under a misbehaving upstream', () => {
  let up: Upstream;
  let px: TestProxy;
  const baseline = snapshotHandles();
  let serial = 0;
  let chaos = true;

  before(async () => {
    up = await startUpstream((req): Step => {
      const url = req.url;
      const n = ++serial;
      // A storable answer (no Cache-Control: stale at once, answers failures for staleIfError).
      const size = n % 7 === 0 ? 100 * KiB : 200 + (n % 13) * 997;
      const whole: Step = n % 2 === 0 ? { body: bodyFor(url, n, size) } : { chunks: [bodyFor(url, n, size)] };
      if (!chaos) return whole;
      switch (n % 10) {
        case 0:
        case 1:
          return { status: 503, body: 'down' };
        case 2:
          return { body: bodyFor(url, n, size), reset: 'mid-body' };
        case 3:
          return { reset: 'before-headers' };
        case 4:
          return n % 3 === 0 ? { hang: true } : whole;
        case 5: {
          const b = bodyFor(url, n, size);
          return { chunks: [b.slice(0, 100), b.slice(100)], chunkIntervalMs: 350 }; // over idle: cut
        }
        default:
          return whole;
      }
    });
    px = await startProxy(config(up.origin));
  });

  after(async () => {
    await px.close();
    await up.close();
    await assertNoLeaks(baseline);
  });

  it('serves only whole answers of the right URL, within its bounds, and comes back to rest', async () => {
    const seed = await drive({ url: px.url('main'), requests: URLS * 2, concurrency: 4, make: (i) => ({ path: `/p/${i % URLS}` }) });
    const outcomes: Outcome[] = [...seed];
    const reload = (async () => {
      await new Promise((r) => setTimeout(r, 300));
      px.write(config(up.origin, ', connect: 900ms'));
      const r = await px.proxy.reload('chaos');
      assert.equal(r.result, 'success', r.errors.join('; '));
    })();
    const [main, impatient] = await Promise.all([
      drive({ url: px.url('main'), requests: REQUESTS, concurrency: 20, make: (i) => ({ path: `/p/${(i * 7) % URLS}` }) }),
      // Clients that give up early: mid-body, or before the head.
      drive({ url: px.url('main'), requests: scaled(60, 10), concurrency: 4, timeoutMs: 120, make: (i) => ({ path: `/p/${i % URLS}` }) }),
      reload,
    ]);
    outcomes.push(...main, ...impatient);

    const problems: string[] = [];
    let stale = 0;
    for (const [list, make] of [
      [seed, (i: number) => `/p/${i % URLS}`],
      [main, (i: number) => `/p/${(i * 7) % URLS}`],
      [impatient, (i: number) => `/p/${i % URLS}`],
    ] as [Outcome[], (i: number) => string][]) {
      for (const o of list) {
        if (!o.complete || o.status !== 200) continue;
        const problem = wholeFor(make(o.index), o.body);
        if (problem !== null) problems.push(`#${o.index}: ${problem}${o.headers['x-breakwater-fallback'] === 'cache' ? ' (from the cache)' : ''}`);
        if (o.headers['x-breakwater-fallback'] === 'cache') {
          stale++;
          if (!/^\d+$/.test(String(o.headers.age))) problems.push(`#${o.index}: a stale answer without Age`);
        }
      }
    }
    assert.deepEqual(problems.slice(0, 10), [], `${problems.length} problems; outcomes ${JSON.stringify(tally(main))}`);
    assert.ok(stale > 0, `some failures were answered from the cache (outcomes ${JSON.stringify(tally(main))})`);

    const store = px.proxy.registry.caches.get('route:cached')!;
    assert.ok(store.bytes <= 256 * KiB, `${store.bytes} bytes accounted`);
    assert.ok(store.entries <= 16);

    chaos = false;
    const rest = await waitForRest(px, () => up.inFlight);
    assert.deepEqual(rest, { ready: 200, inflight: 0, bulkheads: {}, upstreamInFlight: 0 });
    // Every request was logged once (the impatient ones included).
    await px.waitForRequests(outcomes.length, 10_000);
  });
});
