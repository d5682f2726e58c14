import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import { request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

describe('bulkhead and rate limit end to end (SPEC §4.4, §4.5)', () => {
  let up: Upstream;
  let px: TestProxy;
  const baseline = snapshotHandles();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 300 });

  before(async () => {
    up = await startUpstream();
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: bh, address: 127.0.0.1:0, upstream: bh }
  - { name: rl, address: 127.0.0.1:0, upstream: rl }
  - { name: obs, address: 127.0.0.1:0, upstream: obs }
upstreams:
  bh:
    url: ${up.origin}
    pool: { connections: 256 }
    retry: { maxRetries: 0 }
    bulkhead: { maxConcurrent: 10, maxQueue: 1000, queueTimeout: 10s }
  rl:
    url: ${up.origin}
    rateLimit: { rate: 5/s, burst: 2 }
  obs:
    url: ${up.origin}
    rateLimit: { rate: 1/s, burst: 1, mode: observe }
    bulkhead: { maxConcurrent: 1, mode: observe }
`);
  });

  beforeEach(() => up.reset());

  after(async () => {
    agent.destroy();
    await px.close();
    await up.close();
    await assertNoLeaks(baseline);
  });

  it('never puts more than maxConcurrent requests on the upstream, out of 200 concurrent', async () => {
    up.setScript({ status: 200, delayMs: 20 });
    const results = await Promise.all(Array.from({ length: 200 }, () => request(`${px.url('bh')}/`, { agent })));
    assert.ok(results.every((r) => r.status === 200));
    assert.ok(up.maxInFlight <= 10, `max in flight ${up.maxInFlight}`);
    assert.ok(up.maxInFlight >= 5, 'the bulkhead let requests run concurrently');
    const state = JSON.parse((await request(`${px.adminUrl}/upstreams`)).body);
    assert.equal(state.bh.bulkhead.active, 0);
    assert.equal(state.bh.bulkhead.queued, 0);
  });

  it('releases slots after client aborts and timeouts', async () => {
    up.setScript({ hang: true });
    const reqs = Array.from({ length: 15 }, () => {
      const req = http.get(`${px.url('bh')}/`, { agent: false });
      req.on('error', () => {});
      return req;
    });
    await new Promise((r) => setTimeout(r, 200));
    for (const r of reqs) r.destroy();
    const end = Date.now() + 2000;
    let state;
    do {
      await new Promise((r) => setTimeout(r, 50));
      state = JSON.parse((await request(`${px.adminUrl}/upstreams`)).body);
    } while ((state.bh.bulkhead.active > 0 || state.bh.bulkhead.queued > 0) && Date.now() < end);
    assert.equal(state.bh.bulkhead.active, 0);
    assert.equal(state.bh.bulkhead.queued, 0);
    assert.ok(up.requests.length <= 10, 'queued requests that were aborted never reached the upstream');
  });

  it('rate limits with 429 rate_limited and a whole-second Retry-After', async () => {
    up.setScript({ status: 200 });
    const statuses: number[] = [];
    let retryAfter: string | string[] | undefined;
    for (let i = 0; i < 5; i++) {
      const r = await request(`${px.url('rl')}/`);
      statuses.push(r.status);
      if (r.status === 429) {
        retryAfter = r.headers['retry-after'];
        assert.equal(r.headers['x-breakwater-error'], 'rate_limited');
      }
    }
    assert.equal(statuses.filter((s) => s === 200).length, 2, `statuses ${statuses}`);
    assert.equal(retryAfter, '1');
  });

  it('observe mode admits everything and flags it', async () => {
    up.setScript({ status: 200 });
    const rs = await Promise.all(Array.from({ length: 4 }, () => request(`${px.url('obs')}/`)));
    assert.ok(rs.every((r) => r.status === 200));
    const lines = await px.waitForRequests(4);
    const flags = lines.flatMap((l) => l.flags as string[]);
    assert.ok(flags.includes('rate_limited_observed'));
  });
});
