import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { refusedPort, startUpstream, type Upstream } from '../helpers/upstream.ts';

describe('fallback (SPEC §4.6)', () => {
  let dr: Upstream;
  let px: TestProxy;
  const baseline = snapshotHandles();

  before(async () => {
    dr = await startUpstream({ status: 200, body: 'from dr' });
    const dead = await refusedPort();
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: chain, address: 127.0.0.1:0, upstream: primary }
  - { name: static, address: 127.0.0.1:0, upstream: lonely }
  - { name: deep, address: 127.0.0.1:0, upstream: first }
upstreams:
  primary:
    url: http://127.0.0.1:${dead}
    retry: { maxRetries: 1, backoff: { strategy: immediate } }
    fallback: { upstream: dr }
  dr:
    url: ${dr.origin}
  lonely:
    url: http://127.0.0.1:${dead}
    retry: { maxRetries: 0 }
    fallback:
      response: { status: 503, headers: { content-type: application/json }, body: '{"degraded":true}' }
  first:
    url: http://127.0.0.1:${dead}
    retry: { maxRetries: 0 }
    fallback: { upstream: second }
  second:
    url: http://127.0.0.1:${dead}
    retry: { maxRetries: 0 }
    fallback: { response: { status: 200, body: last resort } }
`);
  });

  beforeEach(() => dr.reset());

  after(async () => {
    await px.close();
    await dr.close();
    await assertNoLeaks(baseline);
  });

  it('serves the fallback upstream when the primary cannot be reached', async () => {
    const r = await request(`${px.url('chain')}/x`);
    assert.equal(r.status, 200);
    assert.equal(r.body, 'from dr');
    assert.equal(r.headers['x-breakwater-fallback'], 'upstream');
    const line = (await px.waitForRequests(1)).at(-1)!;
    assert.ok((line.flags as string[]).includes('fallback'));
    assert.ok((line.flags as string[]).includes('fallback_upstream:dr'));
  });

  it('serves a static response as the last resort', async () => {
    const r = await request(`${px.url('static')}/x`);
    assert.equal(r.status, 503);
    assert.equal(r.body, '{"degraded":true}');
    assert.equal(r.headers['x-breakwater-fallback'], 'response');
    assert.equal(r.headers['content-type'], 'application/json');
  });

  it('follows a chain of fallbacks, each with its own policies', async () => {
    const r = await request(`${px.url('deep')}/x`);
    assert.equal(r.status, 200);
    assert.equal(r.body, 'last resort');
    assert.equal(r.headers['x-breakwater-fallback'], 'response');
  });
});
