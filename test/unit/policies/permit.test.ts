import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CircuitBreakerConfig } from '../../../src/config/types.ts';
import { CircuitBreaker } from '../../../src/policies/breaker/breaker.ts';
import { breakerGuard } from '../../../src/policies/breaker/permit.ts';
import { Bulkhead } from '../../../src/policies/bulkhead/bulkhead.ts';
import { TokenBucket } from '../../../src/policies/rate-limit/token-bucket.ts';
import { acquireTunnelGuards } from '../../../src/policies/tunnel-guards.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { loadConfigText } from '../../../src/config/load.ts';

function breakerConfig(mode: 'enforce' | 'observe'): CircuitBreakerConfig {
  const r = loadConfigText(
    `version: 1
listeners: [{ name: l, address: 127.0.0.1:0, upstream: u }]
upstreams:
  u:
    url: http://127.0.0.1:1
    circuitBreaker: { consecutiveFailures: 1, failureRate: null, openDuration: 1s, mode: ${mode} }
`,
    't.yaml',
    {},
  );
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.config.upstreams.get('u')!.circuitBreaker!;
}

describe('guards as permits (policies/permit.ts)', () => {
  it('breaker: admits with a permit that records attempts, refuses while open with Retry-After, probes once half-open', () => {
    const clock = new ManualClock();
    const b = new CircuitBreaker('u', breakerConfig('enforce'), { clock });
    const g = breakerGuard(b);
    assert.equal(breakerGuard(b), g, 'one guard per breaker');
    const p = g.acquire();
    assert.equal(p.type, 'permit');
    if (p.type !== 'permit') return;
    assert.equal(p.observed, null);
    p.record('5xx', 503);
    assert.equal(b.state, 'open');
    const refused = g.acquire();
    assert.equal(refused.type, 'failure');
    if (refused.type === 'failure') {
      assert.equal(refused.code, 'circuit_open');
      assert.ok(refused.retryAfterMs > 0);
    }
    clock.advance(1_001);
    const probe = g.acquire();
    assert.equal(probe.type, 'permit');
    assert.equal(g.acquire().type, 'failure', 'one probe at a time');
    if (probe.type !== 'permit') return;
    // An unused probe gives its slot back on release.
    probe.release();
    const again = g.acquire();
    assert.equal(again.type, 'permit');
    if (again.type !== 'permit') return;
    const after = again.record('success', 200);
    assert.notEqual(after, again, 'a probe hands over to an ordinary permit after its one record');
    assert.equal(b.state, 'closed');
    b.dispose();
  });

  it('breaker in observe mode: admits with the circuit_open_observed flag instead of refusing', () => {
    const b = new CircuitBreaker('u', breakerConfig('observe'), { clock: new ManualClock() });
    const g = breakerGuard(b);
    const p = g.acquire();
    if (p.type === 'permit') p.record('5xx', 500);
    const q = g.acquire();
    assert.equal(q.type, 'permit');
    assert.equal(q.type === 'permit' ? q.observed : null, 'circuit_open_observed');
    b.dispose();
  });

  it('bulkhead: a slot permit, then queue, then bulkhead_full; observe mode flags instead', async () => {
    const b = new Bulkhead({ maxConcurrent: 1, maxQueue: 1, queueTimeout: 50, mode: 'enforce' });
    const first = b.acquire();
    assert.ok(first !== 'queue' && first.type === 'permit');
    assert.equal(b.acquire(), 'queue');
    const waiting = b.acquireQueued(null);
    const full = b.acquire();
    assert.ok(full !== 'queue' && full.type === 'failure' && full.code === 'bulkhead_full');
    first.release();
    const handed = await waiting;
    assert.equal(handed.type, 'permit', 'the freed slot goes to the waiter');
    if (handed.type === 'permit') handed.release();
    assert.equal(b.active, 0);
    const o = new Bulkhead({ maxConcurrent: 0, maxQueue: 0, queueTimeout: 50, mode: 'observe' });
    const op = o.acquire();
    assert.ok(op !== 'queue' && op.type === 'permit' && op.observed === 'bulkhead_full_observed');
    b.dispose();
    o.dispose();
  });

  it('rate limit: a permit per token, a wait within maxWait, then rate_limited; observe mode flags', () => {
    const clock = new ManualClock();
    const t = new TokenBucket({ rate: { tokens: 10, periodMs: 1000, perMs: 0.01, source: '10/s' }, burst: 1, maxWait: 0, mode: 'enforce', scope: 'local', key: null, onRedisError: null }, clock);
    const first = t.acquire(0, false);
    assert.ok(typeof first === 'object' && first.type === 'permit');
    const wait = t.acquire(500, false);
    assert.equal(typeof wait, 'number');
    const no = t.acquire(0, false);
    assert.ok(typeof no === 'object' && no.type === 'failure' && no.code === 'rate_limited' && no.retryAfterMs > 0);
    const observed = t.acquire(0, true);
    assert.ok(typeof observed === 'object' && observed.type === 'permit' && observed.observed === 'rate_limited_observed');
  });

  it('tunnel guards: a flag raised by both the route’s and the upstream’s limit is listed once, as on a request', () => {
    const clock = new ManualClock();
    const empty = () => {
      const b = new TokenBucket({ rate: { tokens: 1, periodMs: 1000, perMs: 0.001, source: '1/s' }, burst: 1, maxWait: 0, mode: 'observe', scope: 'local', key: null, onRedisError: null }, clock);
      b.acquire(0, false);
      return b;
    };
    const flags: string[] = [];
    const p = acquireTunnelGuards({ routeRateLimit: { bucket: empty(), observe: true }, upstreamRateLimit: { bucket: empty(), observe: true }, breaker: null, bulkhead: null }, flags);
    assert.equal(p.type, 'permits');
    assert.deepEqual(flags, ['rate_limited_observed']);
  });
});
