import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WARNING_CODES } from '../../../src/config/lint.ts';
import type { Warning } from '../../../src/config/types.ts';
import { config, withUpstream, yaml } from './helpers.ts';

/** A non-loopback admin API needs admin.token (SPEC §11.3): the admin blocks below read it from here. */
const ENV = { ADMIN_TOKEN: 'a-test-token-of-32-characters-xx' };
const warnings = (text: string): Warning[] => [...config(text, ENV).warnings];
const codes = (text: string): string[] => warnings(text).map((w) => `${w.code} ${w.path}`);

describe('lint warnings', () => {
  it('are absent from a config without traps', () => {
    assert.deepEqual(warnings(withUpstream('retry: { maxRetries: 3 }\ncircuitBreaker: {}\nfallback: { response: {}, on: [timeout] }')), []);
  });

  it('flag POST or PATCH in an effective retry.methods, at the place that wrote it', () => {
    const w = warnings(withUpstream('retry: { methods: [GET, post, PATCH] }'));
    assert.deepEqual(w.map((x) => `${x.code} ${x.path}`), ['retry-post upstreams.u.retry.methods']);
    assert.match(w[0]!.message, /^POST and PATCH are in retry\.methods \(upstream u\)/);
    assert.match(warnings(withUpstream('retry: { methods: [PATCH] }'))[0]!.message, /^PATCH is in retry\.methods/);
  });

  it('report a trap inherited from defaults once, at defaults', () => {
    const text = yaml`
      version: 1
      defaults: { retry: { methods: [POST], budget: null } }
      listeners: []
      upstreams:
        a: { url: "http://a" }
        b: { url: "http://b" }
        c: { url: "http://c", retry: { methods: [GET], maxRetries: 0 } }
    `;
    assert.deepEqual(codes(text), ['retry-post defaults.retry.methods', 'retry-no-budget defaults.retry.budget']);
  });

  it('look at a route’s own retry block, with the route’s name', () => {
    const w = warnings(yaml`
      version: 1
      listeners:
        - name: l
          address: 127.0.0.1:0
          routes: [{ name: pay, upstream: u, retry: { methods: [POST] } }, { upstream: u, retry: { maxRetries: 1 } }]
      upstreams: { u: { url: "http://a" } }
    `);
    assert.deepEqual(w.map((x) => `${x.code} ${x.path}`), ['retry-post listeners[0].routes[0].retry.methods']);
    assert.match(w[0]!.message, /\(route pay\)/);
  });

  it('flag retries with no budget, but not when retries are off', () => {
    const w = warnings(withUpstream('retry: { maxRetries: 4, budget: null }'));
    assert.deepEqual(w.map((x) => `${x.code} ${x.path}`), ['retry-no-budget upstreams.u.retry.budget']);
    assert.match(w[0]!.message, /every request becomes 5 attempts/);
    assert.deepEqual(warnings(withUpstream('retry: { maxRetries: 0, budget: null }')), []);
  });

  it('flag minimumRequests too high to ever trip at the upstream’s rate limit', () => {
    const w = warnings(withUpstream('rateLimit: { rate: 1/s, burst: 1 }\ncircuitBreaker: { minimumRequests: 20, window: 10s }'));
    assert.deepEqual(w.map((x) => `${x.code} ${x.path}`), ['breaker-minimum-unreachable upstreams.u.circuitBreaker.minimumRequests']);
    assert.match(w[0]!.message, /at most 11 requests/);
    // rate × window + burst reaches it: no warning; nor when the rate trigger is off.
    assert.deepEqual(warnings(withUpstream('rateLimit: { rate: 1/s, burst: 10 }\ncircuitBreaker: { minimumRequests: 20, window: 10s }')), []);
    assert.deepEqual(warnings(withUpstream('rateLimit: { rate: 1/s }\ncircuitBreaker: { failureRate: null, consecutiveFailures: 5 }')), []);
    // The built-in minimumRequests counts too: reported at the breaker block.
    assert.deepEqual(codes(withUpstream('rateLimit: { rate: 1/s }\ncircuitBreaker: {}')), ['breaker-minimum-unreachable upstreams.u.circuitBreaker']);
  });

  it('flag a fallback without on (naming the built-in triggers), and one with on: [] that never fires', () => {
    const w = warnings(withUpstream('fallback: { response: { status: 503 } }'));
    assert.deepEqual(w.map((x) => `${x.code} ${x.path}`), ['fallback-no-on upstreams.u.fallback']);
    assert.match(w[0]!.message, /circuit-open, connect-failure, timeout, retries-exhausted, bulkhead-full/);
    assert.deepEqual(codes(withUpstream('fallback: { response: {}, on: [] }')), ['fallback-never-fires upstreams.u.fallback.on']);
  });

  it('flag an effective perTry capped at total, where the cap happens, once', () => {
    const text = yaml`
      version: 1
      defaults: { timeout: { perTry: 5s } }
      listeners:
        - name: l
          address: 127.0.0.1:0
          routes:
            - { name: short, upstream: u, timeout: { total: 2s } }
            - { name: idle, upstream: v, timeout: { idle: 1s } }
      upstreams:
        u: { url: "http://a" }
        v: { url: "http://b", timeout: { total: 3s } }
    `;
    const w = warnings(text);
    assert.deepEqual(w.map((x) => `${x.code} ${x.path}`), ['pertry-capped upstreams.v.timeout', 'pertry-capped listeners[0].routes[0].timeout']);
    assert.match(w[1]!.message, /effective perTry 5s \(from defaults\.timeout\.perTry\) is above effective total 2s \(from listeners\[0\]\.routes\[0\]\.timeout\.total\).*capped at 2s/);
  });

  it('flag an admin API bound to a non-loopback address', () => {
    assert.deepEqual(codes(withUpstream('', 'admin: { address: 0.0.0.0:9901, token: "${ADMIN_TOKEN}" }\n')), ['admin-not-loopback admin.address']);
    assert.deepEqual(codes(withUpstream('', 'admin: { address: "[::1]:9901" }\n')), []);
    assert.deepEqual(codes(withUpstream('', 'admin: { address: localhost:9901 }\n')), []);
    assert.deepEqual(codes(withUpstream('', 'admin: { address: 127.0.0.2:9901 }\n')), []);
  });

  it('flag a backoff base above its max, and a breaker with both triggers off', () => {
    assert.deepEqual(codes(withUpstream('retry: { backoff: { base: 1s } }')), ['backoff-base-above-max upstreams.u.retry.backoff.base']);
    assert.deepEqual(codes(withUpstream('circuitBreaker: { failureRate: null }')), ['breaker-no-trigger upstreams.u.circuitBreaker']);
  });

  /** One listener with route r (the given route keys) to upstream u (the given upstream keys). */
  const routed = (route: string, upstream = '', top = ''): string => yaml`
    version: 1
    ${top}
    listeners:
      - name: l
        address: 127.0.0.1:0
        routes:
          - { name: r, upstream: u, ${route} }
    upstreams:
      u: { url: "http://a", ${upstream} }
  `;

  it('flag a dead-letter spool on a route that matches no spooled method, and automatic replay without a breaker', () => {
    assert.deepEqual(codes(routed('match: { methods: [GET, HEAD] }, deadLetter: {}', 'circuitBreaker: {}')), ['dead-letter-never-spools listeners[0].routes[0].deadLetter']);
    assert.deepEqual(codes(routed('match: { methods: [GET, DELETE] }, deadLetter: {}', 'circuitBreaker: {}')), []);
    const w = warnings(routed('deadLetter: { replay: { auto: true } }'));
    assert.deepEqual(w.map((x) => `${x.code} ${x.path}`), ['dead-letter-replay-no-breaker listeners[0].routes[0].deadLetter']);
    assert.match(w[0]!.message, /upstream u .*no circuitBreaker: entries replay only at start, on a reload, and by hand/);
    // A breaker (its own or from defaults), or no automatic replay: nothing to say.
    assert.deepEqual(codes(routed('deadLetter: { replay: { auto: true } }', 'circuitBreaker: {}')), []);
    assert.deepEqual(codes(routed('deadLetter: { replay: { auto: true } }', '', 'defaults: { circuitBreaker: {} }')), []);
    assert.deepEqual(codes(routed('deadLetter: { replay: { auto: false } }')), []);
  });

  it('flag a cache on a route without GET, and one whose fallback on is empty (unless it serves fresh hits)', () => {
    assert.deepEqual(codes(routed('match: { methods: [POST] }, cache: {}')), ['cache-never-stores listeners[0].routes[0].cache']);
    // A HEAD is answered from its GET's entry: a HEAD-only route stores nothing.
    assert.deepEqual(codes(routed('match: { methods: [HEAD] }, cache: {}')), ['cache-never-stores listeners[0].routes[0].cache']);
    assert.deepEqual(codes(routed('match: { methods: [GET] }, cache: {}')), []);
    assert.deepEqual(codes(routed('cache: { serveFresh: true }, fallback: { response: {}, on: [] }')).filter((c) => c.startsWith('cache')), [], 'serveFresh: fresh hits are served');
    const empty = codes(routed('cache: {}, fallback: { response: {}, on: [] }'));
    assert.ok(empty.includes('cache-never-serves listeners[0].routes[0].cache'), empty.join('; '));
    assert.deepEqual(codes(routed('cache: {}')), [], 'no fallback block: the cache serves on the built-in triggers');
    assert.deepEqual(codes(routed('cache: {}, fallback: { response: {}, on: [timeout] }')), []);
  });

  it('use stable codes from one published list', () => {
    const all = [
      ...warnings(withUpstream('retry: { methods: [POST], budget: null, backoff: { base: 1s } }\nrateLimit: { rate: 1/m }\ncircuitBreaker: {}\nfallback: { response: {} }', 'admin: { address: 0.0.0.0:1, token: "${ADMIN_TOKEN}" }\n')),
      ...warnings(withUpstream('circuitBreaker: { failureRate: null }\nfallback: { response: {}, on: [] }\ntimeout: { total: 1s }', 'defaults: { timeout: { perTry: 2s } }\n')),
      ...warnings(routed('match: { methods: [GET] }, deadLetter: {}')),
      ...warnings(routed('match: { methods: [POST] }, cache: {}, deadLetter: {}')),
      ...warnings(routed('cache: {}, fallback: { response: {}, on: [] }')),
      ...warnings(routed('deadLetter: { replay: { auto: true } }')),
    ];
    assert.deepEqual(new Set(all.map((w) => w.code)), new Set(WARNING_CODES), 'every code is reachable and none is unlisted');
    for (const w of all) assert.ok(w.message.length > 20 && w.path.length > 0);
  });
});
