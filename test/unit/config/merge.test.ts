import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeBlocks, withBuiltIns } from '../../../src/config/merge.ts';
import { retrySchema } from '../../../src/config/schema.ts';
import { config, yaml } from './helpers.ts';

/** defaults, upstream and route all write part of timeout and retry. */
const layered = yaml`
  version: 1
  defaults:
    timeout: { connect: 2s, perTry: 1s, total: 10s }
    retry:
      maxRetries: 1
      backoff: { strategy: linear, base: 10ms }
      budget: { ratio: 0.5 }
    circuitBreaker: { consecutiveFailures: 3 }
    rateLimit: { rate: 100/s }
  listeners:
    - name: l
      address: 127.0.0.1:0
      routes:
        - name: plain
          upstream: u
        - name: override
          upstream: u
          timeout: { total: 4s }
          retry:
            backoff: { max: 2s }
            budget: { minPerSecond: 1 }
          rateLimit: { rate: 5/s }
        - name: other
          upstream: v
  upstreams:
    u:
      url: http://127.0.0.1:1
      timeout: { total: 8s, idle: 5s }
      retry:
        maxRetries: 3
        backoff: { base: 20ms }
      circuitBreaker: { failureRate: null }
    v:
      url: http://127.0.0.1:2
      retry: { budget: null }
      rateLimit: { burst: 7, rate: 10/s }
`;

describe('merging: built-in < defaults < upstream < route, key by key', () => {
  it('merges timeouts key by key', () => {
    const c = config(layered);
    assert.deepEqual(c.upstreams.get('u')!.timeout, { connect: 2000, perTry: 1000, total: 8000, idle: 5000 });
    assert.deepEqual(c.upstreams.get('v')!.timeout, { connect: 2000, perTry: 1000, total: 10_000, idle: 60_000 });
    const routes = c.listeners[0]!.routes;
    assert.deepEqual(routes[1]!.policy.timeout, { connect: 2000, perTry: 1000, total: 4000, idle: 5000 });
  });

  it('merges nested blocks such as retry.backoff and retry.budget key by key too', () => {
    const c = config(layered);
    const u = c.upstreams.get('u')!.retry;
    assert.equal(u.maxRetries, 3);
    assert.deepEqual(u.backoff, { strategy: 'linear', base: 20, max: 250, jitter: 'full' });
    assert.deepEqual(u.budget, { ratio: 0.5, minPerSecond: 10, window: 10_000 });
    const r = c.listeners[0]!.routes[1]!.policy.retry;
    assert.equal(r.maxRetries, 3, 'inherited from the upstream');
    assert.deepEqual(r.backoff, { strategy: 'linear', base: 20, max: 2000, jitter: 'full' });
    assert.deepEqual(r.budget, { ratio: 0.5, minPerSecond: 1, window: 10_000 });
  });

  it('lets null replace an inherited block whole', () => {
    const c = config(layered);
    assert.equal(c.upstreams.get('v')!.retry.budget, null);
    assert.equal(c.upstreams.get('u')!.circuitBreaker!.failureRate, null);
    assert.equal(c.upstreams.get('u')!.circuitBreaker!.consecutiveFailures, 3, 'from defaults');
  });

  it('applies defaults blocks that turn a policy on to every upstream', () => {
    const c = config(layered);
    assert.equal(c.upstreams.get('v')!.circuitBreaker!.consecutiveFailures, 3);
    assert.equal(c.upstreams.get('v')!.circuitBreaker!.failureRate, 50);
    assert.equal(c.upstreams.get('u')!.rateLimit!.rate.source, '100/s');
    assert.equal(c.upstreams.get('u')!.rateLimit!.burst, 100);
    assert.equal(c.upstreams.get('v')!.rateLimit!.burst, 7);
  });

  it('gives a route without overrides its upstream’s policies, shared, and a route rate limit of its own only', () => {
    const c = config(layered);
    const [plain, override, other] = c.listeners[0]!.routes;
    const u = c.upstreams.get('u')!;
    assert.equal(plain!.policy.timeout, u.timeout, 'the same object: nothing was merged for it');
    assert.equal(plain!.policy.retry, u.retry);
    assert.equal(plain!.rateLimit, null, 'the upstream’s bucket is not the route’s');
    assert.equal(override!.rateLimit!.rate.source, '5/s');
    assert.equal(override!.rateLimit!.burst, 5);
    assert.equal(override!.policy.retry.on, u.retry.on, 'equal condition lists share one compiled set');
    assert.equal(other!.policy.timeout.total, 10_000);
  });

  it('merges a route’s fallback over its upstream’s, key by key', () => {
    const c = config(yaml`
      version: 1
      defaults: { fallback: { on: [timeout] } }
      listeners:
        - name: l
          address: 127.0.0.1:0
          routes:
            - { name: a, upstream: u, fallback: { response: { body: route } } }
            - { name: b, upstream: u, fallback: { on: [5xx], upstream: null, response: { status: 500 } } }
            - { name: c, upstream: u }
      upstreams:
        u:
          url: http://127.0.0.1:1
          fallback: { upstream: dr, response: { status: 502, headers: { Content-Type: text/plain }, body: up } }
        dr: { url: "http://127.0.0.1:2", fallback: { response: {} } }
    `);
    const [a, b, cRoute] = c.listeners[0]!.routes;
    const fa = a!.policy.fallback!;
    assert.equal(fa.upstream, 'dr');
    assert.deepEqual(fa.response, { status: 502, headers: { 'content-type': 'text/plain' }, body: 'route' });
    assert.deepEqual([...fa.on], ['timeout']);
    const fb = b!.policy.fallback!;
    assert.equal(fb.upstream, null);
    assert.deepEqual(fb.response, { status: 500, headers: { 'content-type': 'text/plain' }, body: 'up' });
    assert.deepEqual([...fb.on], ['5xx']);
    assert.equal(cRoute!.policy.fallback, c.upstreams.get('u')!.fallback);
    assert.deepEqual([...c.upstreams.get('dr')!.fallback!.on], ['timeout'], 'on inherited from defaults');
  });

  it('caps an effective perTry above the effective total at total', () => {
    const c = config(yaml`
      version: 1
      defaults: { timeout: { perTry: 5s } }
      listeners:
        - name: l
          address: 127.0.0.1:0
          routes: [{ upstream: u, timeout: { total: 2s } }]
      upstreams:
        u: { url: "http://127.0.0.1:1" }
    `);
    assert.deepEqual(c.upstreams.get('u')!.timeout, { connect: 1000, perTry: 5000, total: 15_000, idle: 60_000 });
    assert.deepEqual(c.listeners[0]!.routes[0]!.policy.timeout, { connect: 1000, perTry: 2000, total: 2000, idle: 60_000 });
  });
});

describe('mergeBlocks and withBuiltIns', () => {
  it('replace lists whole, merge objects by key, and leave absent layers alone', () => {
    const m = mergeBlocks(retrySchema, [
      { path: 'a', value: { on: ['reset'], backoff: { base: 1 } } },
      { path: 'b', value: undefined },
      { path: 'c', value: { on: [503], backoff: { max: 2 } } },
    ]);
    assert.deepEqual(m, { on: [503], backoff: { base: 1, max: 2 } });
    assert.equal(mergeBlocks(retrySchema, [{ path: 'a', value: undefined }]), undefined);
  });

  it('fill every key nobody wrote, without touching the input', () => {
    const input = { maxRetries: 5 };
    const full = withBuiltIns(retrySchema, input);
    assert.deepEqual(input, { maxRetries: 5 });
    assert.equal(full.maxRetries, 5);
    assert.deepEqual(full.backoff, { strategy: 'exponential', base: 25, max: 250, jitter: 'full' });
    assert.deepEqual(full.budget, { ratio: 0.2, minPerSecond: 10, window: 10_000 });
  });
});
