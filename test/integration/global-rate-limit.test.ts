/**
 * rateLimit.scope global (SPEC §12) against a real redis-server: two
 * in-process proxies share one bucket; Redis killed, paused (SIGSTOP) and
 * restarted under them; onRedisError deny; a reload that changes the rate
 * keeps the limiter. The 10-process ±5 % run is test/interop/global-rate-limit.interop.ts.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { request, type Reply } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type LogLine, type TestProxy } from '../helpers/proxy.ts';
import { skipWithoutRedis, startRedis, type TestRedis } from '../helpers/redis.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

/** The Redis URL comes from ${REDIS_URL} in the env each test passes. */
const config = (origin: string, opts: { rate?: string; burst?: number; onRedisError?: string; limitOnRedisError?: string; key?: string; maxWait?: string } = {}): string => `
version: 1
admin: { address: 127.0.0.1:0 }
log: { level: info }
redis:
  url: \${REDIS_URL}
  timeout: 20ms
  onRedisError: ${opts.onRedisError ?? 'allow'}
listeners:
  - { name: main, address: 127.0.0.1:0, upstream: api }
upstreams:
  api:
    url: ${origin}
    retry: { maxRetries: 0 }
    rateLimit: { rate: ${opts.rate ?? '20/s'}, burst: ${opts.burst ?? 5}, scope: global, key: ${opts.key ?? 'api-test'}, maxWait: ${opts.maxWait ?? '0s'}${opts.limitOnRedisError === undefined ? '' : `, onRedisError: ${opts.limitOnRedisError}`} }
`;

/** `n` requests, `gapMs` apart, alternating between the proxies; each with its latency. */
async function drive(urls: string[], n: number, gapMs: number, agent: http.Agent): Promise<(Reply & { ms: number })[]> {
  const out: Promise<Reply & { ms: number }>[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    out.push(request(`${urls[i % urls.length]}/`, { agent }).then((r) => ({ ...r, ms: performance.now() - t0 })));
    if (gapMs > 0) await sleep(gapMs);
  }
  return Promise.all(out);
}

describe('global rate limit on a real Redis (SPEC §12)', { skip: skipWithoutRedis() }, () => {
  let redis: TestRedis;
  let up: Upstream;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const baseline = snapshotHandles();
  const proxies: TestProxy[] = [];

  const start = async (opts: Parameters<typeof config>[1] = {}): Promise<TestProxy> => {
    const px = await startProxy(config(up.origin, opts), { REDIS_URL: redis.url });
    proxies.push(px);
    return px;
  };

  before(async () => {
    redis = await startRedis();
    up = await startUpstream();
  });

  beforeEach(async () => {
    while (proxies.length > 0) await proxies.pop()!.close();
    up.reset();
    if ((await redis.command('PING').catch(() => '')) !== 'PONG') await redis.restart();
    await redis.command('FLUSHALL');
  });

  after(async () => {
    while (proxies.length > 0) await proxies.pop()!.close();
    agent.destroy();
    await up.close();
    await redis.close();
    await assertNoLeaks(baseline);
  });

  it('two processes share one bucket: admitted ≈ burst + rate × time, the rest 429 rate_limited with Retry-After', async () => {
    const a = await start();
    const b = await start();
    await waitFor('both connected', () => [a, b].every((p) => p.logs.some((l) => l.msg === 'redis_connected')));
    const t0 = performance.now();
    const replies = await drive([a.url('main'), b.url('main')], 120, 10, agent);
    const seconds = (performance.now() - t0) / 1000;
    const ok = replies.filter((r) => r.status === 200).length;
    const limited = replies.filter((r) => r.status === 429);
    assert.equal(ok + limited.length, 120, 'every answer is 200 or 429');
    assert.equal(up.requests.length, ok, 'the upstream saw exactly the admitted requests');
    const allowed = 5 + 20 * seconds;
    // Leases and one credit per process may run a few tokens ahead; never the offered 100/s.
    assert.ok(ok <= allowed + 6, `admitted ${ok} in ${seconds.toFixed(2)} s; the limit allows ${allowed.toFixed(1)}`);
    assert.ok(ok >= allowed * 0.6, `admitted ${ok} in ${seconds.toFixed(2)} s; the limit allows ${allowed.toFixed(1)}`);
    assert.ok(limited.length > 0);
    for (const r of limited) {
      assert.equal(JSON.parse(r.body).error, 'rate_limited');
      assert.ok(Number(r.headers['retry-after']) >= 1, 'Retry-After in whole seconds');
    }
    // Both processes drew from the bucket: Redis counts them as peers.
    assert.equal(await redis.command('ZCARD', 'breakwater:{api-test}:peers'), '2');
    const metrics = (await request(`${a.adminUrl}/metrics`)).body;
    assert.match(metrics, /breakwater_global_rate_limit_tokens_total\{limit="api-test",source="redis"\} [1-9]/);
    assert.match(metrics, /breakwater_global_rate_limit_fallback\{limit="api-test"\} 0/);
  });

  it('the first requests after a start wait for the first connection (within redis.timeout) instead of falling back', async () => {
    const a = await start({ rate: '1000/s', burst: 100 });
    // No wait for redis_connected: these race the connection.
    const replies = await drive([a.url('main')], 5, 0, agent);
    assert.ok(replies.every((r) => r.status === 200), replies.map((r) => `${r.status} ${r.body}`).join('; '));
    await waitFor('connected', () => a.logs.some((l) => l.msg === 'redis_connected'));
    assert.ok(!a.logs.some((l) => l.msg === 'global_rate_limit_fallback' && l['reason'] === 'connection'), JSON.stringify(a.logs.filter((l) => l.msg.startsWith('global'))));
  });

  it('Redis killed: fails open on the local share within redis.timeout, logged and counted; recovers when Redis is back', async () => {
    const a = await start({ rate: '1000/s', burst: 1000 });
    await waitFor('connected', () => a.logs.some((l) => l.msg === 'redis_connected'));
    assert.ok((await drive([a.url('main')], 20, 0, agent)).every((r) => r.status === 200));
    const flagged = (lines: LogLine[]) => lines.filter((l) => l.msg === 'request' && (l.flags as string[]).includes('global_rate_limit_fallback')).length;
    // Only what follows the kill (a busy machine may have caused a short timeout fallback before it).
    const mark = a.logs.length;
    const since = () => a.logs.slice(mark);
    await redis.kill();
    // Until the lease runs out nobody asks Redis; then every call fails and the limit runs on its share.
    const during = await drive([a.url('main')], 60, 5, agent);
    await waitFor('the fallback', async () => {
      during.push(...(await drive([a.url('main')], 10, 5, agent)));
      return since().some((l) => l.msg === 'global_rate_limit_fallback');
    });
    during.push(...(await drive([a.url('main')], 30, 5, agent)));
    assert.ok(
      during.every((r) => r.status === 200),
      `fail open: ${during.map((r) => r.status).join(',')}`,
    );
    // No request waits on a dead Redis: bounded by redis.timeout (20 ms) plus a loaded machine's margin.
    const slowest = Math.max(...during.map((r) => r.ms));
    assert.ok(slowest < 1000, `slowest ${slowest.toFixed(1)} ms`);
    const fb = since().filter((l) => l.msg === 'global_rate_limit_fallback');
    assert.equal(fb.length, 1, 'one line per outage, not per request');
    assert.equal(fb[0]!['limit'], 'api-test');
    // Requests the local share admitted say so in their line; the count matches the fallback tokens.
    assert.ok(flagged(since()) > 0, 'flag global_rate_limit_fallback on the requests admitted by the local share');
    const metrics = (await request(`${a.adminUrl}/metrics`)).body;
    const tokens = Number(/breakwater_global_rate_limit_tokens_total\{limit="api-test",source="fallback"\} (\d+)/.exec(metrics)?.[1]);
    assert.equal(flagged(a.logs), tokens, 'one flagged line per fallback token');
    // GET /upstreams says where this process's tokens come from now.
    const shown = JSON.parse((await request(`${a.adminUrl}/upstreams`)).body).api.rateLimit;
    assert.equal(shown.scope, 'global');
    assert.equal(shown.key, 'api-test');
    assert.equal(shown.source, 'fallback');
    assert.match(metrics, /breakwater_global_rate_limit_errors_total\{reason="connection"\} [1-9]/);
    assert.match(metrics, /breakwater_global_rate_limit_fallback\{limit="api-test"\} 1/);
    assert.match(metrics, /breakwater_global_rate_limit_tokens_total\{limit="api-test",source="fallback"\} [1-9]/);

    await redis.restart();
    await waitFor(
      'recovered',
      async () => {
        await request(`${a.url('main')}/`, { agent });
        return since().some((l) => l.msg === 'global_rate_limit_recovered');
      },
      15_000,
    );
    const back = (await request(`${a.adminUrl}/metrics`)).body;
    assert.match(back, /breakwater_global_rate_limit_fallback\{limit="api-test"\} 0/);
    const shownBack = JSON.parse((await request(`${a.adminUrl}/upstreams`)).body).api.rateLimit;
    assert.equal(shownBack.source, 'redis');
    assert.ok(Number.isInteger(shownBack.lease) && shownBack.peers >= 1, JSON.stringify(shownBack));
    // The restarted Redis holds the bucket again (the script was loaded anew by itself).
    assert.notEqual(await redis.command('EXISTS', 'breakwater:{api-test}:bucket'), '0');
  });

  it('Redis paused (SIGSTOP): no request waits longer than redis.timeout plus margin; answers resume after SIGCONT', async () => {
    const a = await start({ rate: '1000/s', burst: 1000 });
    await waitFor('connected', () => a.logs.some((l) => l.msg === 'redis_connected'));
    await drive([a.url('main')], 10, 0, agent);
    const mark = a.logs.length;
    redis.pause();
    try {
      const during = await drive([a.url('main')], 60, 5, agent);
      await waitFor('the fallback', async () => {
        during.push(...(await drive([a.url('main')], 10, 5, agent)));
        return a.logs.slice(mark).some((l) => l.msg === 'global_rate_limit_fallback');
      });
      assert.ok(during.every((r) => r.status === 200));
      const slowest = Math.max(...during.map((r) => r.ms));
      assert.ok(slowest < 1000, `slowest ${slowest.toFixed(1)} ms with Redis stopped`);
      assert.ok(a.logs.slice(mark).some((l) => l.msg === 'global_rate_limit_fallback' && l['reason'] === 'timeout'));
      assert.match((await request(`${a.adminUrl}/metrics`)).body, /breakwater_global_rate_limit_errors_total\{reason="timeout"\} [1-9]/);
    } finally {
      redis.resume();
    }
    await waitFor(
      'recovered',
      async () => {
        await request(`${a.url('main')}/`, { agent });
        return a.logs.slice(mark).some((l) => l.msg === 'global_rate_limit_recovered');
      },
      15_000,
    );
  });

  it('maxWait: a request waits for a reserved token, never longer than maxWait; beyond it 429', async () => {
    const a = await start({ rate: '10/s', burst: 1, maxWait: '400ms' });
    await waitFor('connected', () => a.logs.some((l) => l.msg === 'redis_connected'));
    const t0 = performance.now();
    const replies = await drive([a.url('main')], 12, 0, agent);
    const seconds = (performance.now() - t0) / 1000;
    const ok = replies.filter((r) => r.status === 200);
    const refused = replies.filter((r) => r.status === 429);
    assert.equal(ok.length + refused.length, 12);
    // Burst 1, then a token every 100 ms, reserved up to 400 ms ahead: about five pass, the rest are refused at once.
    assert.ok(ok.length >= 3 && ok.length <= 1 + 10 * seconds + 2, `${ok.length} admitted in ${seconds.toFixed(2)} s`);
    assert.ok(refused.length >= 3, `${refused.length} refused`);
    assert.ok(ok.some((r) => r.ms >= 80), 'some waited for their token');
    // maxWait plus a loaded machine's margin: nobody waits for a token beyond it.
    for (const r of ok) assert.ok(r.ms < 400 + 600, `waited ${r.ms.toFixed(0)} ms`);
    assert.ok(refused.every((r) => r.ms < 600), 'a refusal is not delayed');
  });

  it('CONNECT tunnels take their token from the global bucket too, never waiting: the second is 429 rate_limited', async () => {
    const px = await startProxy(
      `
version: 1
admin: { address: 127.0.0.1:0 }
redis: { url: "\${REDIS_URL}" }
listeners:
  - name: egress
    address: 127.0.0.1:0
    routes:
      - { name: tunnel, match: { host: 127.0.0.1 }, upstream: api, allowConnect: true, rateLimit: { rate: 1/m, burst: 1, scope: global, key: tunnels } }
upstreams:
  api: { url: ${up.origin} }
`,
      { REDIS_URL: redis.url },
    );
    proxies.push(px);
    await waitFor('connected', () => px.logs.some((l) => l.msg === 'redis_connected'));
    const authority = new URL(up.origin).host;
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const s = net.connect(px.port('egress'), '127.0.0.1');
      s.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
      const [head] = (await once(s, 'data')) as [Buffer];
      statuses.push(Number(head.toString('latin1').split(' ')[1]));
      s.destroy();
      await sleep(30);
    }
    assert.deepEqual(statuses, [200, 429, 429]);
    await waitFor('tokens counted', async () => /breakwater_global_rate_limit_tokens_total\{limit="tunnels",source="redis"\}|rejected_total\{route="tunnel"/.test((await request(`${px.adminUrl}/metrics`)).body));
  });

  it('onRedisError deny: Redis down refuses with 429 rate_limited and Retry-After', async () => {
    const a = await start({ onRedisError: 'deny' });
    await waitFor('connected', () => a.logs.some((l) => l.msg === 'redis_connected'));
    assert.equal((await request(`${a.url('main')}/`, { agent })).status, 200);
    await redis.kill();
    const during = await drive([a.url('main')], 10, 10, agent);
    // The first may still ride the lease it holds; after the failure every one is refused.
    const refused = during.filter((r) => r.status === 429);
    assert.ok(refused.length >= 8, during.map((r) => r.status).join(','));
    assert.ok(refused.every((r) => JSON.parse(r.body).error === 'rate_limited' && r.headers['retry-after'] !== undefined));
  });

  it('a limit’s own onRedisError: deny overrides the redis block’s allow', async () => {
    const a = await start({ onRedisError: 'allow', limitOnRedisError: 'deny' });
    await waitFor('connected', () => a.logs.some((l) => l.msg === 'redis_connected'));
    assert.equal((await request(`${a.url('main')}/`, { agent })).status, 200);
    await redis.kill();
    const during = await drive([a.url('main')], 10, 10, agent);
    const refused = during.filter((r) => r.status === 429);
    assert.ok(refused.length >= 8, during.map((r) => r.status).join(','));
    assert.ok(a.logs.some((l) => l.msg === 'global_rate_limit_fallback' && l['onRedisError'] === 'deny'));
  });

  it('credentials from the environment: a password-protected Redis is used; a wrong one falls back; neither is logged', async () => {
    const locked = await startRedis({ password: 'pw-s3cret-1' });
    try {
      const yaml = config(up.origin, { rate: '1000/s', burst: 100 }).replace('  url: ${REDIS_URL}\n', '  url: ${REDIS_URL}\n  password: ${REDIS_PASSWORD}\n');
      const good = await startProxy(yaml, { REDIS_URL: locked.url, REDIS_PASSWORD: 'pw-s3cret-1' });
      proxies.push(good);
      await waitFor('connected', () => good.logs.some((l) => l.msg === 'redis_connected'));
      assert.ok((await drive([good.url('main')], 10, 0, agent)).every((r) => r.status === 200));
      // Tokens leased from the password-protected Redis (a busy machine may first time a call out: keep asking).
      await waitFor('tokens from Redis', async () => {
        await request(`${good.url('main')}/`, { agent });
        return /breakwater_global_rate_limit_tokens_total\{limit="api-test",source="redis"\} [1-9]/.test((await request(`${good.adminUrl}/metrics`)).body);
      });
      // Authenticated: no call failed for want of the password (a slow answer on a busy machine may still time out).
      assert.ok(!good.logs.some((l) => l.msg === 'global_rate_limit_fallback' && l['reason'] !== 'timeout'), JSON.stringify(good.logs.filter((l) => l.msg.startsWith('global'))));
      const config_ = JSON.parse((await request(`${good.adminUrl}/config`)).body);
      assert.ok(!JSON.stringify(config_).includes('pw-s3cret'), 'GET /config never shows the password');

      // The password in the URL instead, and wrong: every call fails; the limit runs on its fallback.
      const wrongUrl = locked.url.replace('redis://', 'redis://default:pw-wrong-2@');
      const bad = await startProxy(config(up.origin, { rate: '1000/s', burst: 100, key: 'api-other' }), { REDIS_URL: wrongUrl });
      proxies.push(bad);
      assert.ok((await drive([bad.url('main')], 10, 5, agent)).every((r) => r.status === 200), 'fail open');
      await waitFor('fallback', () => bad.logs.some((l) => l.msg === 'global_rate_limit_fallback'));
      const text = JSON.stringify([...good.logs, ...bad.logs]);
      assert.ok(!text.includes('pw-s3cret') && !text.includes('pw-wrong'), 'no password in any log line');
    } finally {
      await locked.close();
    }
  });

  it('a reload that changes the redis block connects to the new Redis and closes the old connection; the limiter stays', async () => {
    const second = await startRedis();
    try {
      const a = await start({ rate: '1000/s', burst: 100 });
      await waitFor('connected', () => a.logs.some((l) => l.msg === 'redis_connected'));
      await drive([a.url('main')], 5, 0, agent);
      const limiter = a.proxy.registry.globals.get('api-test');
      const oldLink = a.proxy.registry.redis;
      const clientsBefore = Number(/connected_clients:(\d+)/.exec(await redis.command('INFO', 'clients'))![1]);
      a.write(config(up.origin, { rate: '1000/s', burst: 100 }).replace('${REDIS_URL}', second.url));
      const res = await request(`${a.adminUrl}/reload`, { method: 'POST' });
      assert.equal(res.status, 200, res.body);
      assert.equal(a.proxy.registry.globals.get('api-test'), limiter, 'the same limiter');
      assert.notEqual(a.proxy.registry.redis, oldLink, 'a new connection for a new redis block');
      await waitFor('connected to the second Redis', () => a.logs.filter((l) => l.msg === 'redis_connected').length === 2);
      await waitFor('the bucket on the second Redis', async () => {
        await request(`${a.url('main')}/`, { agent });
        return (await second.command('EXISTS', 'breakwater:{api-test}:bucket')) === '1';
      });
      // The first Redis lost breakwater's connection.
      await waitFor('old connection closed', async () => Number(/connected_clients:(\d+)/.exec(await redis.command('INFO', 'clients'))![1]) < clientsBefore);
    } finally {
      await second.close();
    }
  });

  it('a reload that changes the rate keeps the limiter (and its Redis link) and applies the new rate', async () => {
    const a = await start({ rate: '5/s', burst: 1 });
    await waitFor('connected', () => a.logs.some((l) => l.msg === 'redis_connected'));
    const limiter = a.proxy.registry.globals.get('api-test');
    const link = a.proxy.registry.redis;
    assert.ok(limiter !== undefined && link !== null);
    const slow = await drive([a.url('main')], 20, 10, agent);
    const slowOk = slow.filter((r) => r.status === 200).length;
    a.write(config(up.origin, { rate: '500/s', burst: 50 }));
    const res = await request(`${a.adminUrl}/reload`, { method: 'POST' });
    assert.equal(res.status, 200, res.body);
    assert.equal(a.proxy.registry.globals.get('api-test'), limiter, 'the same limiter after the reload');
    assert.equal(a.proxy.registry.redis, link, 'an unchanged redis block keeps its connection');
    const fast = await drive([a.url('main')], 20, 10, agent);
    const fastOk = fast.filter((r) => r.status === 200).length;
    assert.ok(slowOk <= 4, `at 5/s burst 1: ${slowOk} of 20 in ~0.2 s`);
    assert.equal(fastOk, 20, 'at 500/s every one passes');
    assert.equal(a.logs.filter((l) => l.msg === 'redis_connected').length, 1, 'no reconnect on reload');
  });
});
