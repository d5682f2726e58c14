import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { config, withUpstream } from './helpers.ts';

const minimal = withUpstream('');

describe('built-in defaults', () => {
  it('fill admin, log and drain', () => {
    const c = config(minimal);
    assert.deepEqual(c.admin, { address: { host: '127.0.0.1', port: 9901, text: '127.0.0.1:9901' }, token: null, tokenFrom: [] });
    assert.deepEqual(c.log, { level: 'info', access: true, includeQuery: false, headers: [] });
    assert.deepEqual(c.drain, { delay: 0, timeout: 30_000 });
    assert.equal(c.version, 1);
  });

  it('fill a listener: limits, and the shorthand catch-all route named like the listener', () => {
    const l = config(minimal).listeners[0]!;
    assert.deepEqual(l.limits, { headerSize: 16_384, bodySize: null, headerTimeout: 10_000, requestTimeout: 300_000, maxConcurrentStreams: 100 });
    assert.equal(l.underscoreHeaders, 'drop');
    assert.equal(l.routes.length, 1);
    const r = l.routes[0]!;
    assert.equal(r.name, 'l');
    assert.equal(r.upstream, 'u');
    assert.deepEqual(r.match, { host: null, pathPrefix: null, methods: null, headers: null });
    assert.equal(r.stripPrefix, false);
    assert.equal(r.rateLimit, null);
  });

  it('fill an upstream: balance, pool, host and header rewriting', () => {
    const u = config(minimal).upstreams.get('u')!;
    assert.equal(u.name, 'u');
    assert.equal(u.balance, 'round-robin');
    assert.deepEqual(u.pool, { connections: 64, keepAlive: 4000 });
    assert.equal(u.preserveHost, false);
    assert.deepEqual(u.requestHeaders, { set: [], remove: [] });
  });

  it('always apply timeout and retry, with perTry equal to total', () => {
    const u = config(minimal).upstreams.get('u')!;
    assert.deepEqual(u.timeout, { connect: 1000, perTry: 15_000, total: 15_000, idle: 60_000 });
    const r = u.retry;
    assert.equal(r.maxRetries, 2);
    assert.deepEqual(r.on.source, ['connect-failure', 'reset', 'timeout', 502, 503, 504]);
    assert.equal(r.on.connectFailure, true);
    assert.equal(r.on.reset, true);
    assert.equal(r.on.timeout, true);
    assert.deepEqual([...r.on.statuses].sort(), [502, 503, 504]);
    assert.deepEqual([...r.methods], ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
    assert.equal(r.idempotencyKeyHeader, 'idempotency-key');
    assert.deepEqual(r.backoff, { strategy: 'exponential', base: 25, max: 250, jitter: 'full' });
    assert.deepEqual(r.budget, { ratio: 0.2, minPerSecond: 10, window: 10_000 });
    assert.equal(r.respectRetryAfter, true);
    assert.equal(r.bufferLimit, 65_536);
  });

  it('leave circuitBreaker, bulkhead, rateLimit and fallback off unless present', () => {
    const u = config(minimal).upstreams.get('u')!;
    assert.equal(u.circuitBreaker, null);
    assert.equal(u.bulkhead, null);
    assert.equal(u.rateLimit, null);
    assert.equal(u.fallback, null);
    assert.equal(config(minimal).listeners[0]!.routes[0]!.policy.fallback, null);
  });

  it('turn a policy on with its built-ins from an empty block', () => {
    const u = config(withUpstream('circuitBreaker: {}\nbulkhead: {}\nfallback: { response: {} }')).upstreams.get('u')!;
    const cb = u.circuitBreaker!;
    assert.equal(cb.consecutiveFailures, null);
    assert.equal(cb.failureRate, 50);
    assert.equal(cb.minimumRequests, 20);
    assert.equal(cb.window, 10_000);
    assert.equal(cb.openDuration, 30_000);
    assert.equal(cb.halfOpenRequests, 1);
    assert.equal(cb.successThreshold, 1);
    assert.equal(cb.mode, 'enforce');
    assert.deepEqual(cb.failOn.source, ['5xx', 'timeout', 'connect-failure', 'reset']);
    assert.equal(cb.failOn.statuses.size, 100);
    assert.ok(cb.failOn.statuses.has(500) && cb.failOn.statuses.has(599) && !cb.failOn.statuses.has(499));
    assert.deepEqual(u.bulkhead, { maxConcurrent: 100, maxQueue: 0, queueTimeout: 1000, mode: 'enforce' });
    const f = u.fallback!;
    assert.equal(f.upstream, null);
    assert.deepEqual(f.response, { status: 503, headers: {}, body: '' });
    assert.deepEqual([...f.on], ['circuit-open', 'connect-failure', 'timeout', 'retries-exhausted', 'bulkhead-full']);
  });

  it('size the rate-limit burst to one second of rate, rounded up, at least 1', () => {
    const burst = (rate: string) => config(withUpstream(`rateLimit: { rate: "${rate}" }`)).upstreams.get('u')!.rateLimit!.burst;
    assert.equal(burst('100/s'), 100);
    assert.equal(burst('6000/m'), 100);
    assert.equal(burst('50/100ms'), 500);
    assert.equal(burst('1/m'), 1);
    assert.equal(burst('1.5/s'), 2);
    const rl = config(withUpstream('rateLimit: { rate: 10/s }')).upstreams.get('u')!.rateLimit!;
    assert.equal(rl.maxWait, 0);
    assert.equal(rl.mode, 'enforce');
    assert.deepEqual(rl.rate, { tokens: 10, periodMs: 1000, perMs: 0.01, source: '10/s' });
  });

  it('compile gateway-error and 5xx into status sets', () => {
    const u = config(withUpstream('retry: { on: [gateway-error, 429] }\ncircuitBreaker: { failOn: [5xx, 429] }')).upstreams.get('u')!;
    assert.deepEqual([...u.retry.on.statuses].sort(), [429, 502, 503, 504]);
    assert.equal(u.retry.on.connectFailure, false);
    assert.deepEqual(u.retry.on.source, ['gateway-error', 429]);
    assert.equal(u.circuitBreaker!.failOn.statuses.size, 101);
    assert.equal(u.circuitBreaker!.failOn.timeout, false);
  });

  it('turn the retry budget off with null, and either breaker trigger off with null', () => {
    const u = config(withUpstream('retry: { budget: null }\ncircuitBreaker: { failureRate: null, consecutiveFailures: 3 }')).upstreams.get('u')!;
    assert.equal(u.retry.budget, null);
    assert.equal(u.circuitBreaker!.failureRate, null);
    assert.equal(u.circuitBreaker!.consecutiveFailures, 3);
  });

  it('accept observe mode on breaker, bulkhead and rate limit', () => {
    const u = config(withUpstream('circuitBreaker: { mode: observe }\nbulkhead: { mode: observe }\nrateLimit: { rate: 1/s, mode: observe }')).upstreams.get('u')!;
    assert.equal(u.circuitBreaker!.mode, 'observe');
    assert.equal(u.bulkhead!.mode, 'observe');
    assert.equal(u.rateLimit!.mode, 'observe');
  });

  it('name routes <listener>/<index> unless named, and store header names and match values normalised', () => {
    const c = config(`version: 1
listeners:
  - name: egress
    address: 127.0.0.1:0
    routes:
      - { upstream: u, match: { headers: { X-Tenant: Blue } } }
      - { name: named, upstream: u, match: { methods: [get] } }
      - { upstream: u }
upstreams:
  u:
    url: http://127.0.0.1:1
    requestHeaders: { set: { X-Api-Key: abc }, remove: [X-Debug] }
log: { headers: [User-Agent] }
`);
    assert.deepEqual(
      c.listeners[0]!.routes.map((r) => r.name),
      ['egress/0', 'named', 'egress/2'],
    );
    assert.deepEqual(c.listeners[0]!.routes[0]!.match.headers, [['x-tenant', 'Blue']]);
    assert.deepEqual([...c.listeners[0]!.routes[1]!.match.methods!], ['GET']);
    assert.deepEqual(c.upstreams.get('u')!.requestHeaders, { set: [['x-api-key', 'abc']], remove: ['x-debug'] });
    assert.deepEqual(c.log.headers, ['user-agent']);
  });
});
