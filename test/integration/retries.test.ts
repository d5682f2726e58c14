import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { request } from '../helpers/http.ts';
import { snapshotHandles, assertNoLeaks } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { refusedPort, startUpstream, type Upstream } from '../helpers/upstream.ts';

describe('retries (SPEC §4.2)', () => {
  let up: Upstream;
  let px: TestProxy;
  let dead: number;
  const baseline = snapshotHandles();

  before(async () => {
    up = await startUpstream();
    dead = await refusedPort();
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    upstream: svc
  - name: nobudget
    address: 127.0.0.1:0
    upstream: tight
  - name: dead
    address: 127.0.0.1:0
    upstream: dead
  - name: norespect
    address: 127.0.0.1:0
    upstream: norespect
upstreams:
  svc:
    url: ${up.origin}
    timeout: { perTry: 300ms, total: 3s }
    retry:
      maxRetries: 3
      backoff: { strategy: constant, base: 5ms, jitter: none }
      bufferLimit: 1KiB
  tight:
    url: ${up.origin}
    retry:
      maxRetries: 3
      backoff: { strategy: immediate }
      budget: { ratio: 0, minPerSecond: 0.1, window: 10s }
  dead:
    url: http://127.0.0.1:${dead}
    retry: { maxRetries: 2, backoff: { strategy: immediate } }
  norespect:
    url: ${up.origin}
    timeout: { total: 1s }
    retry: { maxRetries: 2, backoff: { strategy: immediate } }
`);
  });

  beforeEach(() => up.reset());

  after(async () => {
    await px.close();
    await up.close();
    await assertNoLeaks(baseline);
  });

  it('retries a 503 and returns the success', async () => {
    up.setScript([{ status: 503 }, { status: 200, body: 'ok' }]);
    const r = await request(`${px.url('main')}/x`);
    assert.equal(r.status, 200);
    assert.equal(r.body, 'ok');
    assert.equal(up.requests.length, 2);
    const [line] = await px.waitForRequests(1);
    assert.equal(line!.attempts, 2);
    assert.deepEqual((line!.tries as { outcome: string }[]).map((t) => t.outcome), ['5xx', 'success']);
    assert.ok((line!.flags as string[]).includes('retried'));
  });

  it('returns the last upstream 503 unchanged when retries run out', async () => {
    up.setScript({ status: 503, body: 'upstream says no', headers: { 'x-from': 'upstream' } });
    const r = await request(`${px.url('main')}/x`);
    assert.equal(r.status, 503);
    assert.equal(r.body, 'upstream says no');
    assert.equal(r.headers['x-from'], 'upstream');
    assert.equal(r.headers['x-breakwater-error'], undefined);
    assert.equal(up.requests.length, 4);
    const lines = await px.waitForRequests(1);
    const line = lines.at(-1)!;
    assert.ok((line.flags as string[]).includes('retries_exhausted'));
    assert.equal(line.error, null);
  });

  it('does not retry a POST on 503', async () => {
    up.setScript({ status: 503 });
    const r = await request(`${px.url('main')}/x`, { method: 'POST', body: 'hello' });
    assert.equal(r.status, 503);
    assert.equal(up.requests.length, 1);
  });

  it('retries a POST carrying an idempotency key, replaying its body intact every time', async () => {
    up.setScript([{ status: 503 }, { status: 503 }, { status: 201 }]);
    const body = 'x'.repeat(900);
    const r = await request(`${px.url('main')}/x`, { method: 'POST', body, headers: { 'idempotency-key': 'k1', 'content-type': 'text/plain' } });
    assert.equal(r.status, 201);
    assert.equal(up.requests.length, 3);
    for (const req of up.requests) assert.equal(req.body.toString(), body);
  });

  it('retries a connect failure even for POST', async () => {
    const r = await request(`${px.url('dead')}/x`, { method: 'POST', body: 'b' });
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-breakwater-error'], 'connect_failure');
    const lines = await px.waitForRequests(1);
    const line = lines.at(-1)!;
    assert.equal(line.attempts, 3);
    assert.deepEqual((line.tries as { outcome: string }[]).map((t) => t.outcome), ['connect_failure', 'connect_failure', 'connect_failure']);
  });

  it('streams a body over bufferLimit through once and does not retry it', async () => {
    up.setScript({ status: 503 });
    const body = 'y'.repeat(5000);
    const r = await request(`${px.url('main')}/x`, { method: 'PUT', body });
    assert.equal(r.status, 503);
    assert.equal(up.requests.length, 1);
    assert.equal(up.requests[0]!.body.toString(), body);
    const lines = await px.waitForRequests(1);
    assert.ok((lines.at(-1)!.flags as string[]).includes('retry_body_too_large'));
  });

  it('retries a perTry timeout and succeeds', async () => {
    up.setScript([{ delayMs: 1000, status: 200 }, { status: 200, body: 'fast' }]);
    const r = await request(`${px.url('main')}/x`);
    assert.equal(r.status, 200);
    assert.equal(r.body, 'fast');
    const lines = await px.waitForRequests(1);
    assert.deepEqual((lines.at(-1)!.tries as { outcome: string }[]).map((t) => t.outcome), ['timeout', 'success']);
  });

  it('retries a reset before headers', async () => {
    up.setScript([{ reset: 'before-headers' }, { status: 200, body: 'ok' }]);
    const r = await request(`${px.url('main')}/x`);
    assert.equal(r.status, 200);
    const lines = await px.waitForRequests(1);
    assert.deepEqual((lines.at(-1)!.tries as { outcome: string }[]).map((t) => t.outcome), ['reset', 'success']);
  });

  it('honours Retry-After when it fits in the total timeout', async () => {
    up.setScript([{ status: 503, retryAfter: '1' }, { status: 200 }]);
    const t0 = Date.now();
    const r = await request(`${px.url('norespect')}/x`, { timeoutMs: 5000 });
    // 1 s does not fit in total 1s: the 503 comes back as it is, at once.
    assert.equal(r.status, 503);
    assert.ok(Date.now() - t0 < 900, 'returned without waiting');
    assert.equal(up.requests.length, 1);
    up.reset();
    up.setScript([{ status: 429, retryAfter: '0' }, { status: 200 }]);
    const r2 = await request(`${px.url('norespect')}/x`);
    assert.equal(r2.status, 429, '429 is not in the default retry `on`');
  });

  it('waits for Retry-After before retrying when it fits', async () => {
    up.setScript([{ status: 503, retryAfter: '1' }, { status: 200, body: 'later' }]);
    const t0 = Date.now();
    const r = await request(`${px.url('main')}/x`, { timeoutMs: 5000 });
    assert.equal(r.status, 200);
    assert.ok(Date.now() - t0 >= 950, `waited ${Date.now() - t0} ms`);
  });

  it('stops retrying when the retry budget is spent and flags it', async () => {
    up.setScript({ status: 503 });
    // minPerSecond 0.1 over 10 s allows one retry in the window.
    await request(`${px.url('nobudget')}/x`);
    const r = await request(`${px.url('nobudget')}/x`);
    assert.equal(r.status, 503);
    const lines = await px.waitForRequests(2);
    assert.ok((lines.at(-1)!.flags as string[]).includes('retry_budget_exhausted'));
  });
});
