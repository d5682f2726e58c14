import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { json, request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('circuit breaker end to end (SPEC §4.3)', () => {
  let up: Upstream;
  let px: TestProxy;
  const baseline = snapshotHandles();

  before(async () => {
    up = await startUpstream();
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: enforce, address: 127.0.0.1:0, upstream: enforce }
  - { name: observe, address: 127.0.0.1:0, upstream: observe }
  - { name: retrying, address: 127.0.0.1:0, upstream: retrying }
upstreams:
  enforce:
    url: ${up.origin}
    retry: { maxRetries: 0 }
    circuitBreaker: { consecutiveFailures: 3, failureRate: null, openDuration: 400ms, halfOpenRequests: 1, successThreshold: 2 }
  observe:
    url: ${up.origin}
    retry: { maxRetries: 0 }
    circuitBreaker: { consecutiveFailures: 2, failureRate: null, openDuration: 10s, mode: observe }
  retrying:
    url: ${up.origin}
    retry: { maxRetries: 5, backoff: { strategy: immediate } }
    circuitBreaker: { consecutiveFailures: 2, failureRate: null, openDuration: 10s }
`);
  });

  beforeEach(() => up.reset());

  after(async () => {
    await px.close();
    await up.close();
    await assertNoLeaks(baseline);
  });

  it('opens after consecutive failures, rejects without contacting the upstream, then half-opens and closes', async () => {
    up.setScript({ status: 500 });
    for (let i = 0; i < 3; i++) assert.equal((await request(`${px.url('enforce')}/`)).status, 500);
    const rejected = await request(`${px.url('enforce')}/`);
    assert.equal(rejected.status, 503);
    assert.equal(rejected.headers['x-breakwater-error'], 'circuit_open');
    assert.equal(json(rejected).upstream, 'enforce');
    assert.ok(Number(rejected.headers['retry-after']) >= 1);
    assert.equal(up.requests.length, 3, 'the upstream was not contacted while open');

    await sleep(500);
    up.setScript({ status: 200 });
    // half-open: one probe at a time; two successes close it.
    assert.equal((await request(`${px.url('enforce')}/`)).status, 200);
    assert.equal((await request(`${px.url('enforce')}/`)).status, 200);
    const ups = json(await request(`${px.adminUrl}/upstreams`));
    assert.equal(ups.enforce.circuitBreaker.state, 'closed');
    const transitions = px.logs.filter((l) => l.msg === 'circuit_transition' && l.upstream === 'enforce').map((l) => `${l.from}>${l.to}`);
    assert.deepEqual(transitions, ['closed>open', 'open>half-open', 'half-open>closed']);
  });

  it('observe mode never rejects but flags what it would have rejected', async () => {
    up.setScript({ status: 500 });
    for (let i = 0; i < 5; i++) assert.equal((await request(`${px.url('observe')}/`)).status, 500);
    assert.equal(up.requests.length, 5);
    const lines = await px.waitForRequests(5);
    assert.ok(lines.some((l) => (l.flags as string[]).includes('circuit_open_observed')));
  });

  it('abandons the remaining retries once the breaker opens mid-request', async () => {
    up.setScript({ status: 503 });
    const r = await request(`${px.url('retrying')}/`);
    assert.equal(r.status, 503);
    assert.equal(up.requests.length, 2, 'stopped at the second failure, not after 6 attempts');
  });

  it('can be forced open and released through the admin API', async () => {
    up.setScript({ status: 200 });
    const force = await request(`${px.adminUrl}/upstreams/enforce/circuit`, { method: 'POST', body: '{"state":"open"}' });
    assert.equal(force.status, 200);
    assert.equal((await request(`${px.url('enforce')}/`)).status, 503);
    assert.equal((await request(`${px.adminUrl}/upstreams/enforce/circuit`, { method: 'POST', body: '{"state":"auto"}' })).status, 200);
    assert.equal((await request(`${px.url('enforce')}/`)).status, 200);
    assert.equal((await request(`${px.adminUrl}/upstreams/nope/circuit`, { method: 'POST', body: '{"state":"open"}' })).status, 404);
    assert.equal((await request(`${px.adminUrl}/upstreams/enforce/circuit`, { method: 'POST', body: '{"state":"bogus"}' })).status, 400);
    const forced = px.logs.filter((l) => l.msg === 'admin_action' && l.audit === true && (l.details as { upstream?: string } | undefined)?.upstream === 'enforce');
    assert.equal(forced.length, 2, 'one audit line per successful force, with the breaker named');
  });
});
