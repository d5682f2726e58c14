/**
 * Hot reload (SPEC §7), in-process: no request fails because of a reload,
 * an unchanged file is a no-op, an invalid one changes nothing, state survives,
 * listeners are added and removed, removed upstreams drop their state, and a
 * hundred reloads leak nothing. Also the config watcher (src/config/watch.ts)
 * against the layouts it must follow: an editor's rename-on-save and a
 * Kubernetes ConfigMap volume's `..data` symlink swap.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { watchConfig } from '../../src/config/watch.ts';
import { json, request, type Reply } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { startUpstream, type Step, type Upstream } from '../helpers/upstream.ts';
import { sleep, waitFor, freePort, tryConnect } from '../helpers/wait.ts';
import { sampleOf } from '../helpers/metrics.ts';

/** One sample of a metric from Prometheus text, or undefined. Labels must match exactly the ones given (others ignored). */
const metric = sampleOf;

async function metrics(px: TestProxy): Promise<string> {
  return (await request(`${px.adminUrl}/metrics`)).body;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** Counts TCP connections accepted by the listener bound to `port`. */
function countConnections(px: TestProxy, port: number): { readonly count: number } {
  const l = [...px.proxy.listeners.values()].find((s) => s.port === port);
  assert.ok(l, `a listener on port ${port}`);
  const c = { count: 0 };
  l.server.on('connection', () => c.count++);
  return c;
}

/** Upstream script: `/slow/<ms>/...` waits that long; `/fail...` answers 500; anything else 200 with the path. */
const byPath = (req: { url: string }): Step => {
  const slow = /\/slow\/(\d+)/.exec(req.url);
  if (slow !== null) return { status: 200, body: `slow ${req.url}`, delayMs: Number(slow[1]) };
  if (req.url.includes('/fail')) return { status: 500, body: 'failed' };
  return { status: 200, body: `ok ${req.url}` };
};

const baseline = snapshotHandles();
after(async () => {
  await assertNoLeaks(baseline);
});

describe('a reload under steady load', () => {
  let up: Upstream;
  let px: TestProxy;
  const config = (v: number) => `
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: extra-${v}, match: { pathPrefix: /v${v}/ }, upstream: u }
      - { name: api, match: { pathPrefix: /api/ }, upstream: u${v % 2 === 0 ? ', timeout: { total: 5s }' : ''} }
upstreams:
  u:
    url: ${up.origin}
    retry: { maxRetries: ${v % 3} }
    circuitBreaker: { consecutiveFailures: ${5 + v}, failureRate: null }
    bulkhead: { maxConcurrent: ${50 + v}, maxQueue: ${v} }
`;

  before(async () => {
    up = await startUpstream(byPath);
    px = await startProxy(config(1));
  });
  after(async () => {
    await px.close();
    await up.close();
  });

  it('serves every request of a 100/s stream on one kept-alive connection while the config is reloaded 6 times', async (t) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const conns = countConnections(px, px.port('main'));
    const N = 220;
    const replies: Promise<Reply | Error>[] = [];
    const reloads: string[] = [];
    const started = performance.now();
    const reloader = (async () => {
      for (let v = 2; v <= 7; v++) {
        await sleep(300);
        px.write(config(v));
        const r = await px.proxy.reload('test');
        reloads.push(r.result === 'success' ? 'success' : `${r.result}: ${r.errors.join('; ')}`);
      }
    })();
    try {
      for (let i = 0; i < N; i++) {
        const due = started + i * 10;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        replies.push(request(`${px.url('main')}/api/item/${i}`, { agent }).catch((e: Error) => e));
      }
      const all = await Promise.all(replies);
      await reloader;
      const elapsed = Math.round(performance.now() - started);
      const failed = all.map((r, i) => [i, r instanceof Error ? r.message : r.status === 200 ? null : `${r.status} ${r.body}`] as const).filter(([, e]) => e !== null);
      assert.deepEqual(failed, [], `every request succeeds (took ${elapsed}ms)`);
      t.diagnostic(`${N} requests in ${elapsed}ms (${Math.round((N * 1000) / elapsed)}/s), 6 reloads`);
      assert.deepEqual(reloads, Array(6).fill('success'));
      assert.equal(up.requests.filter((r) => r.url.startsWith('/api/item/')).length, N);
      assert.equal(conns.count, 1, 'the client kept one connection for the whole run');
      const m = await metrics(px);
      assert.equal(metric(m, 'breakwater_config_reloads_total', { result: 'success' }), 6);
      assert.equal(metric(m, 'breakwater_config_reloads_total', { result: 'failure' }), 0);
      // The last config is the one serving.
      assert.equal((await request(`${px.url('main')}/v7/x`)).status, 200);
      assert.equal((await request(`${px.url('main')}/v1/x`)).status, 404);
    } finally {
      agent.destroy();
    }
  });
});

describe('reloads that change nothing', () => {
  let up: Upstream;
  let px: TestProxy;
  let yaml: string;
  const valid = (prefix: string) => `version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { match: { pathPrefix: ${prefix} }, upstream: u }
upstreams:
  u:
    url: ${up.origin}
`;

  before(async () => {
    up = await startUpstream(byPath);
    yaml = valid('/api/');
    px = await startProxy(yaml);
  });
  after(async () => {
    await px.close();
    await up.close();
  });

  it('treats a file whose content is unchanged as a no-op: result unchanged, same hash and load time, no rebuild', async () => {
    const before = json(await request(`${px.adminUrl}/config`));
    const runtimeBefore = px.proxy.listeners.values().next().value!.current;
    await sleep(20);
    px.write(yaml); // same bytes, new mtime
    const r = await px.proxy.reload('test');
    assert.equal(r.result, 'unchanged');
    assert.equal(r.hash, sha256(yaml));
    const viaAdmin = await request(`${px.adminUrl}/reload`, { method: 'POST' });
    assert.equal(viaAdmin.status, 200);
    assert.equal(json(viaAdmin).result, 'unchanged');
    const afterCfg = json(await request(`${px.adminUrl}/config`));
    assert.equal(afterCfg.hash, before.hash);
    assert.equal(afterCfg.hash, sha256(yaml));
    assert.equal(afterCfg.loadedAt, before.loadedAt, 'nothing was rebuilt');
    assert.ok(afterCfg.lastReload === null || afterCfg.lastReload.ok === true, 'no failure reported');
    assert.equal(px.proxy.listeners.values().next().value!.current, runtimeBefore, 'the listener still runs the same compiled routes');
    const m = await metrics(px);
    assert.equal(metric(m, 'breakwater_config_reloads_total', { result: 'unchanged' }), 2);
    assert.equal(metric(m, 'breakwater_config_reloads_total', { result: 'success' }), 0);
  });

  it('keeps serving the old config when the new one is invalid, and says where it is wrong', async () => {
    const hash = json(await request(`${px.adminUrl}/config`)).hash;
    // Line 7: a route naming an unknown upstream; line 11: maxRetries above 10; line 12: an unknown key.
    const invalid = `version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { match: { pathPrefix: /new/ }, upstream: nope }
upstreams:
  u:
    url: ${up.origin}
    retry: { maxRetries: 11 }
    bogus: true
`;
    px.write(invalid);
    const r = await request(`${px.adminUrl}/reload`, { method: 'POST' });
    assert.equal(r.status, 400);
    const body = json(r);
    assert.equal(body.result, 'failure');
    const errors = body.errors as string[];
    assert.ok(Array.isArray(errors) && errors.length >= 3, `three errors, got ${JSON.stringify(errors)}`);
    const file = px.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    for (const e of errors) assert.match(e, new RegExp(`${file}:\\d+:\\d+`), 'each error carries file:line:column');
    const find = (p: string) => errors.find((e) => e.includes(p));
    assert.match(find('listeners[0].routes[0].upstream') ?? '', /:7:\d+/);
    assert.match(find('upstreams.u.retry.maxRetries') ?? '', /:11:\d+/);
    assert.match(find('bogus') ?? '', /:12:\d+/);

    // Nothing changed: old routes serve, the hash is the old one.
    assert.equal((await request(`${px.url('main')}/api/x`)).status, 200);
    assert.equal((await request(`${px.url('main')}/new/x`)).status, 404);
    const cfg = json(await request(`${px.adminUrl}/config`));
    assert.equal(cfg.hash, hash);
    assert.equal(cfg.lastReload.ok, false);
    assert.deepEqual(cfg.lastReload.errors, errors);
    assert.ok(!Number.isNaN(Date.parse(cfg.lastReload.at)));
    assert.ok(px.logs.some((l) => l.msg === 'reload_failed'), 'the failure is logged');

    // Broken YAML: the error points into the file too.
    px.write('version: 1\nlisteners: [\n  { name: a\n');
    const broken = await px.proxy.reload('test');
    assert.equal(broken.result, 'failure');
    assert.match(broken.errors.join('\n'), new RegExp(`${file}:\\d+:\\d+`));
    const m = await metrics(px);
    assert.equal(metric(m, 'breakwater_config_reloads_total', { result: 'failure' }), 2);

    // A valid file again: reloads, and lastReload says so.
    const good = valid('/new/');
    px.write(good);
    const ok = await request(`${px.adminUrl}/reload`, { method: 'POST' });
    assert.equal(ok.status, 200);
    assert.deepEqual(json(ok), { result: 'success', hash: sha256(good) });
    assert.equal((await request(`${px.url('main')}/new/x`)).status, 200);
    const cfg2 = json(await request(`${px.adminUrl}/config`));
    assert.equal(cfg2.lastReload.ok, true);
    assert.deepEqual(cfg2.lastReload.errors, []);
  });

  it('reports the reload as ok again when a broken file is put back to the running content', async () => {
    const running = valid('/new/');
    px.write('version: 1\nbogus: true\n');
    assert.equal((await px.proxy.reload('test')).result, 'failure');
    assert.equal(json(await request(`${px.adminUrl}/config`)).lastReload.ok, false);
    // The operator (or a ConfigMap rollback) restores exactly what is running.
    px.write(running);
    const r = await px.proxy.reload('test');
    assert.equal(r.result, 'unchanged');
    const cfg = json(await request(`${px.adminUrl}/config`));
    assert.equal(cfg.lastReload.ok, true, 'the file on disk is valid again: the last reload no longer reports errors');
    assert.deepEqual(cfg.lastReload.errors, []);
  });
});

describe('state across reloads', () => {
  let up: Upstream;
  let px: TestProxy;
  const config = (o: { failures: number; maxConcurrent: number; maxQueue: number; tag: string }) => `
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: brk
    address: 127.0.0.1:0
    routes:
      - { name: brk-${o.tag}, upstream: brk }
  - name: bh
    address: 127.0.0.1:0
    routes:
      - { name: bh-${o.tag}, upstream: bh }
upstreams:
  brk:
    url: ${up.origin}
    retry: { maxRetries: 0 }
    circuitBreaker: { consecutiveFailures: ${o.failures}, failureRate: null, openDuration: 60s }
  bh:
    url: ${up.origin}
    retry: { maxRetries: 0 }
    bulkhead: { maxConcurrent: ${o.maxConcurrent}, maxQueue: ${o.maxQueue}, queueTimeout: 10s }
`;

  before(async () => {
    up = await startUpstream(byPath);
    px = await startProxy(config({ failures: 2, maxConcurrent: 2, maxQueue: 0, tag: 'a' }));
  });
  after(async () => {
    await px.close();
    await up.close();
  });

  it('keeps an open breaker open across a reload, and applies its new thresholds from then on', async () => {
    const brk = px.url('brk');
    assert.equal((await request(`${brk}/fail`)).status, 500);
    assert.equal((await request(`${brk}/fail`)).status, 500);
    const rejected = await request(`${brk}/ok`);
    assert.equal(rejected.headers['x-breakwater-error'], 'circuit_open');
    const breaker = px.proxy.registry.breakers.get('brk');

    px.write(config({ failures: 4, maxConcurrent: 2, maxQueue: 0, tag: 'b' }));
    assert.equal((await px.proxy.reload('test')).result, 'success');

    const seen = up.requests.length;
    const still = await request(`${brk}/ok`);
    assert.equal(still.status, 503);
    assert.equal(still.headers['x-breakwater-error'], 'circuit_open');
    assert.equal(json(still).route, 'brk-b', 'answered by the new route');
    assert.equal(up.requests.length, seen, 'the upstream was not contacted');
    assert.equal(json(await request(`${px.adminUrl}/upstreams`)).brk.circuitBreaker.state, 'open');
    assert.equal(px.proxy.registry.breakers.get('brk'), breaker, 'the same breaker object');

    // Back to closed with empty windows; now it takes 4 failures (was 2) to open.
    assert.equal((await request(`${px.adminUrl}/upstreams/brk/circuit`, { method: 'POST', body: '{"state":"auto"}' })).status, 200);
    for (let i = 0; i < 3; i++) assert.equal((await request(`${brk}/fail`)).status, 500);
    assert.equal(json(await request(`${px.adminUrl}/upstreams`)).brk.circuitBreaker.state, 'closed', 'three failures do not open it any more');
    assert.equal((await request(`${brk}/fail`)).status, 500);
    assert.equal((await request(`${brk}/ok`)).headers['x-breakwater-error'], 'circuit_open', 'the fourth one does');
  });

  it('keeps a full bulkhead full across a reload: old and new pipelines share its slots and its queue', async () => {
    const bh = px.url('bh');
    const slow = [request(`${bh}/slow/2000/1`), request(`${bh}/slow/2000/2`)];
    await waitFor('both slots taken', () => px.proxy.registry.bulkheads.get('bh')?.active === 2);

    // Same limits, different route name: a new pipeline, the old requests still hold both slots.
    px.write(config({ failures: 4, maxConcurrent: 2, maxQueue: 0, tag: 'c' }));
    assert.equal((await px.proxy.reload('test')).result, 'success');
    const full = await request(`${bh}/fast`);
    assert.equal(full.status, 503);
    assert.equal(full.headers['x-breakwater-error'], 'bulkhead_full');
    assert.equal(json(full).route, 'bh-c');
    const ups = json(await request(`${px.adminUrl}/upstreams`));
    assert.equal(ups.bh.bulkhead.active, 2);

    // A queue from the next reload on: a new request waits for a slot the old pipeline frees.
    px.write(config({ failures: 4, maxConcurrent: 2, maxQueue: 1, tag: 'd' }));
    assert.equal((await px.proxy.reload('test')).result, 'success');
    const queued = request(`${bh}/fast/queued`).then((r) => ({ r, at: Date.now() }));
    await waitFor('one request queued', () => px.proxy.registry.bulkheads.get('bh')?.queued === 1);
    const [q, ...s] = await Promise.all([queued, ...slow.map((p) => p.then((r) => ({ r, at: Date.now() })))]);
    assert.deepEqual(s.map((x) => x.r.status), [200, 200], 'the requests that started before the reloads finish normally');
    assert.equal(q.r.status, 200);
    assert.ok(q.at >= Math.min(...s.map((x) => x.at)), 'the queued request got in only once an old request freed its slot');
    assert.equal(up.requests.filter((r) => r.url === '/fast/queued').length, 1);
    await waitFor('slots released', () => px.proxy.registry.bulkheads.get('bh')?.active === 0);
  });
});

describe('listener changes on reload', () => {
  let up: Upstream;
  let pA: number;
  let pB: number;
  let pC: number;
  const v1 = () => `
version: 1
admin: { address: 127.0.0.1:0 }
drain: { timeout: 10s }
listeners:
  - name: a
    address: 127.0.0.1:${pA}
    routes:
      - { match: { pathPrefix: /v1/ }, upstream: u }
  - { name: b, address: 127.0.0.1:${pB}, upstream: u }
upstreams:
  u: { url: ${up.origin} }
`;
  const v2 = (extra = '') => `
version: 1
admin: { address: 127.0.0.1:0 }
drain: { timeout: 10s }
listeners:
  - name: a
    address: 127.0.0.1:${pA}
    routes:
      - { match: { pathPrefix: /v2/ }, upstream: u }${extra}
  - { name: c, address: 127.0.0.1:${pC}, upstream: u }
upstreams:
  u: { url: ${up.origin} }
`;

  before(async () => {
    up = await startUpstream(byPath);
    [pA, pB, pC] = [await freePort(), await freePort(), await freePort()];
  });
  after(async () => {
    await up.close();
  });

  it('binds an added listener, drains a removed one, and keeps the sockets of an unchanged address', async (t) => {
    const px = await startProxy(v1());
    t.after(() => px.close());
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const connsA = countConnections(px, pA);
      assert.equal((await request(`http://127.0.0.1:${pA}/v1/x`, { agent })).status, 200);
      assert.equal(await tryConnect(pC), 'ECONNREFUSED');

      const inflight = request(`http://127.0.0.1:${pB}/slow/1500/b`);
      await waitFor('the slow request reached the upstream', () => up.inFlight === 1);
      px.write(v2());
      const reloading = px.proxy.reload('test');
      await waitFor('the added listener serves', async () => (await request(`http://127.0.0.1:${pC}/c`)).status === 200);
      await waitFor('the removed listener refuses connections', async () => (await tryConnect(pB)) === 'ECONNREFUSED');
      assert.equal(up.inFlight, 1, 'the removed listener stopped accepting while its request was still in flight');

      const done = await inflight;
      assert.equal(done.status, 200, 'the in-flight request on the removed listener finished');
      assert.equal(done.body, 'slow /slow/1500/b');
      assert.equal((await reloading).result, 'success');
      assert.equal(await tryConnect(pB), 'ECONNREFUSED');

      // The unchanged address kept its socket and switched to the new routes at once.
      const r2 = await request(`http://127.0.0.1:${pA}/v2/x`, { agent });
      assert.equal(r2.status, 200);
      assert.equal((await request(`http://127.0.0.1:${pA}/v1/x`, { agent })).status, 404);
      assert.equal(connsA.count, 1, 'still the first kept-alive connection');
    } finally {
      agent.destroy();
    }
  });

  it('does not lose a reload requested while a removed listener is still draining', async (t) => {
    const px = await startProxy(v1());
    t.after(() => px.close());
    const inflight = request(`http://127.0.0.1:${pB}/slow/2000/b`);
    await waitFor('the slow request reached the upstream', () => up.inFlight === 1);
    px.write(v2());
    const first = px.proxy.reload('test');
    await waitFor('the first reload swapped', async () => (await request(`http://127.0.0.1:${pA}/v2/x`)).status === 200);

    const third = v2(`\n      - { match: { pathPrefix: /v3/ }, upstream: u }`);
    px.write(third);
    const t0 = Date.now();
    const second = await px.proxy.reload('test');
    const took = Date.now() - t0;
    assert.equal(second.result, 'success');
    assert.equal(second.hash, sha256(third), 'the second reload read the file as it is now');
    assert.equal((await request(`http://127.0.0.1:${pA}/v3/x`)).status, 200);
    assert.ok(took < 1500, `a reload does not wait for another listener's drain (took ${took}ms)`);
    assert.equal((await inflight).status, 200);
    await first;
  });
});

describe('a reload that cannot bind an added listener', () => {
  let up: Upstream;
  let blocker: net.Server;
  let pBusy: number;
  before(async () => {
    up = await startUpstream(byPath);
    blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    pBusy = (blocker.address() as net.AddressInfo).port;
  });
  after(async () => {
    await new Promise((r) => blocker.close(r));
    await up.close();
  });

  it('changes nothing — routes, listeners and state thresholds — and names the address', async (t) => {
    const config = (prefix: string, failures: number, extra: string) => `
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { match: { pathPrefix: ${prefix} }, upstream: u }${extra}
upstreams:
  u:
    url: ${up.origin}
    retry: { maxRetries: 0 }
    circuitBreaker: { consecutiveFailures: ${failures}, failureRate: null, openDuration: 60s }
    bulkhead: { maxConcurrent: ${failures * 10} }
`;
    const px = await startProxy(config('/v1/', 2, ''));
    t.after(() => px.close());
    px.write(config('/v2/', 10, `
  - { name: busy, address: 127.0.0.1:${pBusy}, upstream: u }`));
    const r = await px.proxy.reload('test');
    assert.equal(r.result, 'failure');
    assert.match(r.errors.join('\n'), new RegExp(`127\\.0\\.0\\.1:${pBusy}`));
    assert.equal(json(await request(`${px.adminUrl}/config`)).lastReload.ok, false);
    assert.equal((await request(`${px.url('main')}/v1/x`)).status, 200, 'the old routes serve');
    assert.equal((await request(`${px.url('main')}/v2/x`)).status, 404);
    assert.equal(json(await request(`${px.adminUrl}/upstreams`)).u.bulkhead.maxConcurrent, 20);
    // The old breaker threshold (2) still applies, not the failed config's 10.
    assert.equal((await request(`${px.url('main')}/v1/fail`)).status, 500);
    assert.equal((await request(`${px.url('main')}/v1/fail`)).status, 500);
    const third = await request(`${px.url('main')}/v1/x`);
    assert.equal(third.headers['x-breakwater-error'], 'circuit_open', 'the breaker opened after 2 failures, as the running config says');
  });
});

describe('removing an upstream', () => {
  let up: Upstream;
  const config = (withOld: boolean, connections = 8) => `
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
${withOld ? '      - { match: { pathPrefix: /old/ }, upstream: old }\n' : ''}      - { match: { pathPrefix: /keep/ }, upstream: keep }
upstreams:
${
  withOld
    ? `  old:
    url: ${up.origin}
    pool: { connections: 4 }
    retry: { maxRetries: 2, on: [503], backoff: { strategy: constant, base: 700ms, max: 700ms, jitter: none } }
    circuitBreaker: {}
    bulkhead: { maxConcurrent: 10 }
    rateLimit: { rate: 100/s }
`
    : ''
}  keep:
    url: ${up.origin}
    pool: { connections: ${connections} }
    retry: { maxRetries: 2, on: [503], backoff: { strategy: constant, base: 700ms, max: 700ms, jitter: none } }
    circuitBreaker: {}
`;

  before(async () => {
    up = await startUpstream(byPath);
  });
  after(async () => {
    await up.close();
  });

  it('drops its state (breaker, bulkhead, bucket) once its in-flight requests have finished', async (t) => {
    const px = await startProxy(config(true));
    t.after(() => px.close());
    const reg = px.proxy.registry;
    const keepBreaker = reg.breakers.get('keep');
    assert.ok(reg.breakers.has('old') && reg.bulkheads.has('old') && reg.buckets.has('upstream:old'));
    const inflight = request(`${px.url('main')}/old/slow/1200`);
    await waitFor('the request reached the upstream', () => up.inFlight === 1);

    px.write(config(false));
    assert.equal((await px.proxy.reload('test')).result, 'success');
    const ups = json(await request(`${px.adminUrl}/upstreams`));
    assert.deepEqual(Object.keys(ups), ['keep'], 'GET /upstreams no longer lists it');
    assert.equal((await request(`${px.url('main')}/old/x`)).status, 404);
    assert.ok(reg.breakers.has('old'), 'its breaker is kept while a request to it is in flight');

    assert.equal((await inflight).status, 200);
    await waitFor('its state is dropped', () => !reg.breakers.has('old') && !reg.bulkheads.has('old') && !reg.buckets.has('upstream:old'), 3000);
    assert.equal(reg.breakers.get('keep'), keepBreaker, 'the other upstream keeps its breaker');
  });

  it('lets a request that started before the reload finish its retries, even though its upstream was removed', async (t) => {
    const px = await startProxy(config(true));
    t.after(() => px.close());
    up.reset();
    up.setScript((req) => (req.url === '/old/retry' && up.requests.filter((r) => r.url === '/old/retry').length === 1 ? { status: 503 } : byPath(req)));
    const inflight = request(`${px.url('main')}/old/retry`);
    await waitFor('the first attempt was answered 503', () => up.requests.length === 1 && up.inFlight === 0);
    px.write(config(false)); // during the 700ms backoff
    assert.equal((await px.proxy.reload('test')).result, 'success');
    const r = await inflight;
    up.setScript(byPath);
    assert.equal(r.status, 200, `the retry was made and answered (got ${r.status} ${r.headers['x-breakwater-error'] ?? ''})`);
    assert.equal(up.requests.length, 2);
  });

  it('lets a request that started before the reload finish its retries when its upstream\'s pool settings change', async (t) => {
    const px = await startProxy(config(false, 8));
    t.after(() => px.close());
    up.reset();
    up.setScript((req) => (req.url === '/keep/retry' && up.requests.filter((r) => r.url === '/keep/retry').length === 1 ? { status: 503 } : byPath(req)));
    const inflight = request(`${px.url('main')}/keep/retry`);
    await waitFor('the first attempt was answered 503', () => up.requests.length === 1 && up.inFlight === 0);
    px.write(config(false, 16)); // during the 700ms backoff: a new pool
    assert.equal((await px.proxy.reload('test')).result, 'success');
    const r = await inflight;
    up.setScript(byPath);
    assert.equal(r.status, 200, `the retry was made and answered (got ${r.status} ${r.headers['x-breakwater-error'] ?? ''})`);
  });
});

describe('a hundred reload cycles', () => {
  it('leave the registry, the metrics and the process handles where they were', async (t) => {
    const handles = snapshotHandles();
    const up = await startUpstream(byPath);
    const pExtra = await freePort();
    // A and B differ in every kind of state: upstream b vs c (breaker, bulkhead,
    // bucket, budget), a's pool size (a new pool), and a listener that comes and goes.
    const A = `
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { match: { pathPrefix: /a/ }, upstream: a }
      - { match: { pathPrefix: /x/ }, upstream: b }
  - { name: extra, address: 127.0.0.1:${pExtra}, upstream: a }
upstreams:
  a: { url: ${up.origin}, pool: { connections: 4 }, circuitBreaker: {}, bulkhead: {}, rateLimit: { rate: 1000/s } }
  b: { url: ${up.origin}, circuitBreaker: { consecutiveFailures: 3 }, bulkhead: { maxConcurrent: 5 }, rateLimit: { rate: 1000/s } }
`;
    const B = `
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { match: { pathPrefix: /a/ }, upstream: a }
      - { match: { pathPrefix: /x/ }, upstream: c }
upstreams:
  a: { url: ${up.origin}, pool: { connections: 8 }, circuitBreaker: { openDuration: 5s }, bulkhead: { maxConcurrent: 7 }, rateLimit: { rate: 500/s } }
  c: { url: ${up.origin}, circuitBreaker: {}, bulkhead: {}, rateLimit: { rate: 1000/s } }
`;
    const px = await startProxy(A);
    const reg = px.proxy.registry;
    const sizes = () => ({ breakers: reg.breakers.size, bulkheads: reg.bulkheads.size, buckets: reg.buckets.size, budgets: reg.budgets.size, pools: reg.pools.size });
    const series = async () => (await metrics(px)).split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
    let afterTwo: ReturnType<typeof sizes> | undefined;
    let seriesAfterTwo = 0;
    const t0 = performance.now();
    try {
      for (let i = 1; i <= 100; i++) {
        px.write(i % 2 === 1 ? B : A);
        const r = await px.proxy.reload('test');
        assert.equal(r.result, 'success', `cycle ${i}: ${r.errors.join('; ')}`);
        assert.equal((await request(`${px.url('main')}/a/${i}`)).status, 200);
        assert.equal((await request(`${px.url('main')}/x/${i}`)).status, 200);
        if (i === 2) {
          afterTwo = sizes();
          seriesAfterTwo = await series();
        }
      }
      const ms = Math.round(performance.now() - t0);
      t.diagnostic(`100 reload cycles (with 200 requests) in ${ms}ms`);
      assert.deepEqual(sizes(), afterTwo, `registry sizes are stable (100 cycles took ${ms}ms)`);
      assert.equal(await series(), seriesAfterTwo, 'metric series do not pile up');
      assert.equal(metric(await metrics(px), 'breakwater_config_reloads_total', { result: 'success' }), 100);
    } finally {
      await px.close();
      await up.close();
    }
    await assertNoLeaks(handles, { settleMs: 3000 });
  });
});

describe('the config watcher', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'bw-watch-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('fires once after an editor-style save (write a temp file, rename it over the config)', async () => {
    const d = path.join(dir, 'editor');
    mkdirSync(d);
    const file = path.join(d, 'breakwater.yaml');
    writeFileSync(file, 'a: 1\n');
    let calls = 0;
    const w = watchConfig(file, () => calls++, { debounceMs: 100, pollMs: 0 });
    try {
      await sleep(50);
      writeFileSync(path.join(d, '.breakwater.yaml.tmp'), 'a: 2\n');
      renameSync(path.join(d, '.breakwater.yaml.tmp'), file);
      await waitFor('a change was reported', () => calls >= 1, 3000);
      await sleep(300);
      assert.equal(calls, 1, 'the temp write and the rename are one change');
    } finally {
      w.close();
    }
  });

  it('follows a Kubernetes ConfigMap volume: a new timestamped folder and an atomic ..data symlink swap', async () => {
    const d = path.join(dir, 'k8s');
    mkdirSync(d);
    const v1 = '..2026_11_23_10_00_00.000000001';
    mkdirSync(path.join(d, v1));
    writeFileSync(path.join(d, v1, 'breakwater.yaml'), 'a: 1\n');
    symlinkSync(v1, path.join(d, '..data'));
    symlinkSync('..data/breakwater.yaml', path.join(d, 'breakwater.yaml'));
    let calls = 0;
    const w = watchConfig(path.join(d, 'breakwater.yaml'), () => calls++, { debounceMs: 100, pollMs: 0 });
    try {
      await sleep(50);
      const v2 = '..2026_11_23_10_05_00.000000002';
      mkdirSync(path.join(d, v2));
      writeFileSync(path.join(d, v2, 'breakwater.yaml'), 'a: 2\n');
      symlinkSync(v2, path.join(d, '..data_tmp'));
      renameSync(path.join(d, '..data_tmp'), path.join(d, '..data'));
      rmSync(path.join(d, v1), { recursive: true });
      await waitFor('a change was reported', () => calls >= 1, 3000);
    } finally {
      w.close();
    }
  });

  it('does not let a steady stream of events in the directory hold a change back forever', async () => {
    const d = path.join(dir, 'noisy');
    mkdirSync(d);
    const file = path.join(d, 'breakwater.yaml');
    writeFileSync(file, 'a: 1\n');
    let calls = 0;
    const w = watchConfig(file, () => calls++, { debounceMs: 200, maxWaitMs: 600, pollMs: 0 });
    try {
      await sleep(50);
      writeFileSync(file, 'a: 2\n');
      // A neighbour writing every 50ms for 2s: quiet never lasts 200ms.
      const end = Date.now() + 2000;
      while (Date.now() < end && calls === 0) {
        writeFileSync(path.join(d, 'noise.log'), String(Date.now()));
        await sleep(50);
      }
      assert.ok(calls >= 1, 'the change was reported while the noise went on');
    } finally {
      w.close();
    }
  });

  it('notices a changed file by polling when no directory event arrives, and stays silent once closed', async () => {
    const d = path.join(dir, 'poll');
    mkdirSync(d);
    const target = path.join(dir, 'elsewhere.yaml');
    writeFileSync(target, 'a: 1\n');
    // The config is a symlink into another directory: editing the target in place is invisible to the directory watch.
    symlinkSync(target, path.join(d, 'breakwater.yaml'));
    let calls = 0;
    const w = watchConfig(path.join(d, 'breakwater.yaml'), () => calls++, { debounceMs: 50, pollMs: 100 });
    try {
      await sleep(150);
      writeFileSync(target, 'a: 22\n');
      await waitFor('the poll saw the change', () => calls >= 1, 3000);
    } finally {
      w.close();
    }
    const n = calls;
    writeFileSync(path.join(d, 'other'), 'x');
    writeFileSync(target, 'a: 333\n');
    await sleep(400);
    assert.equal(calls, n, 'no call after close()');
  });

  it('drives a reload of a running proxy', async () => {
    const up = await startUpstream(byPath);
    const yaml = (p: string) => `version: 1\nadmin: { address: 127.0.0.1:0 }\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - { match: { pathPrefix: ${p} }, upstream: u }\nupstreams:\n  u: { url: ${up.origin} }\n`;
    const px = await startProxy(yaml('/one/'));
    const w = watchConfig(px.file, () => void px.proxy.reload('watch'), { debounceMs: 100 });
    try {
      await sleep(50);
      const tmp = `${px.file}.tmp`;
      writeFileSync(tmp, yaml('/two/'));
      renameSync(tmp, px.file);
      await waitFor('the new route serves', async () => (await request(`${px.url('main')}/two/x`)).status === 200, 5000);
      assert.equal((await request(`${px.url('main')}/one/x`)).status, 404);
    } finally {
      w.close();
      await px.close();
      await up.close();
    }
  });
});
