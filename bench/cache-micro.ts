/**
 * The stale-if-error cache's success-path cost, in process (SPEC §11.2): CPU
 * per request of the cache layer when (a) the route has no cache, (b) it has
 * one and the response may not be stored (`no-store`: one Cache-Control
 * parse), (c) storable responses of hot URLs (each URL's entry is replaced
 * at most once a second: a lookup), (d) every response stored (the tap,
 * one copy of the body, the LRU set: what a URL asked less than once a
 * second costs). The upstream response is a stand-in that hands its body to the
 * tap at once, so what is measured is the layer and the store, not sockets:
 * the end-to-end figure is the `breakwater-cache` row of `npm run bench`
 * (ONLY=breakwater,breakwater-cache), whose noise on a shared 2-core machine
 * is larger than this cost.
 *
 *   node bench/cache-micro.ts            (N=200000 ROUNDS=5 BODY=128)
 */
import type { IncomingHttpHeaders } from 'node:http';
import { cacheLayer } from '../src/policies/cache/layer.ts';
import { ResponseCache } from '../src/policies/cache/store.ts';
import type { Exchange } from '../src/pipeline/exchange.ts';
import type { Handler, Reply } from '../src/pipeline/handler.ts';
import type { BodyTap, UpstreamResponse } from '../src/pipeline/upstream-response.ts';

const N = Number(process.env['N'] ?? 200_000);
const ROUNDS = Number(process.env['ROUNDS'] ?? 5);
const BODY = Buffer.alloc(Number(process.env['BODY'] ?? 128), 'x');
const PATHS = 1000; // distinct URLs, as a route's working set

function response(headers: IncomingHttpHeaders): UpstreamResponse {
  let tap: BodyTap | null = null;
  return {
    type: 'upstream',
    status: 200,
    kind: 'success',
    grpcStatus: -1,
    headers,
    error: null,
    totalExpired: false,
    exhausted: false,
    discard() {},
    commitTo() {
      // What the relay does with the body, as far as the tap sees it.
      if (tap !== null) {
        tap.data(BODY);
        tap.end();
      }
    },
    tap(t) {
      tap = t;
    },
  };
}

function exchange(i: number): Exchange {
  return {
    method: 'GET',
    host: '127.0.0.1',
    target: `/items/${i % PATHS}`,
    req: { headers: { host: '127.0.0.1:15001', accept: '*/*' } },
    clientAborted: false,
    endpoint: '127.0.0.1:8080',
    originalHost: '127.0.0.1:15001',
    flag() {},
  } as unknown as Exchange;
}

const storedHeaders = { 'content-type': 'application/json', 'content-length': String(BODY.length), date: new Date().toUTCString() };
const noStoreHeaders = { ...storedHeaders, 'cache-control': 'no-store' };

async function measure(h: Handler): Promise<number> {
  const start = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    const r = (await h(exchange(i))) as Reply;
    if (r.type === 'upstream') r.commitTo(undefined as unknown as Exchange);
  }
  const used = process.cpuUsage(start);
  return ((used.user + used.system) / N);
}

const inner = (headers: IncomingHttpHeaders): Handler => () => Promise.resolve(response(headers));
const layer = (refreshMs?: number): ReturnType<typeof cacheLayer> =>
  cacheLayer({
    ...(refreshMs !== undefined && { refreshMs }),
    store: new ResponseCache({ maxEntries: 1000, maxBytes: 16 * 1024 * 1024, maxEntrySize: 1024 * 1024 }),
    staleIfError: 300_000,
    serveFresh: false,
    on: new Set(['circuit-open', 'connect-failure', 'timeout', 'retries-exhausted', 'bulkhead-full']),
    metrics: { hit() {}, evicted() {} },
  });

const cases: [string, Handler][] = [
  ['no cache on the route', inner(storedHeaders)],
  ['cache, response not storable (no-store)', layer()(inner(noStoreHeaders))],
  ['cache, storable, entry refreshed at most once a second (built-in)', layer()(inner(storedHeaders))],
  ['cache, every response stored (refreshMs 0: the worst case)', layer(0)(inner(storedHeaders))],
];
const results = new Map<string, number[]>(cases.map(([n]) => [n, []]));
for (const [, h] of cases) await measure(h); // warm-up
for (let r = 0; r < ROUNDS; r++) for (const [name, h] of cases) results.get(name)!.push(await measure(h));

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
process.stdout.write(`cache success path, ${N} requests × ${ROUNDS} interleaved rounds, ${BODY.length}-byte bodies, ${PATHS} URLs (Node ${process.version})\n\n`);
process.stdout.write('| case | CPU µs/request (median) | rounds min–max |\n| --- | ---: | ---: |\n');
for (const [name, xs] of results) process.stdout.write(`| ${name} | ${median(xs).toFixed(2)} | ${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)} |\n`);
