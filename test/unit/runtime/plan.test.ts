import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfigText } from '../../../src/config/load.ts';
import type { BreakwaterConfig } from '../../../src/config/types.ts';
import { StatePlan } from '../../../src/runtime/plan.ts';
import { newClaims, StateRegistry } from '../../../src/runtime/state.ts';
import { ManualClock } from '../../../src/util/clock.ts';

function config(maxConcurrent: number, rate: string): BreakwaterConfig {
  const r = loadConfigText(
    `
version: 1
listeners: [{ name: l, address: 127.0.0.1:0, upstream: u }]
upstreams:
  u:
    url: http://127.0.0.1:1
    circuitBreaker: { consecutiveFailures: 3, failureRate: null }
    bulkhead: { maxConcurrent: ${maxConcurrent} }
    rateLimit: { rate: ${rate}, burst: 1 }
`,
    'test.yaml',
    {},
  );
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.config;
}

describe('StatePlan: building changes nothing shared until commit (runtime/plan.ts)', () => {
  it('holds new guards and pools outside the registry until commit, then registers them', async () => {
    const reg = new StateRegistry(() => {}, new ManualClock());
    const u = config(2, '10/s').upstreams.get('u')!;
    const plan = new StatePlan(reg);
    const breaker = plan.breaker('u', u.circuitBreaker!);
    const bulkhead = plan.bulkhead('u', u.bulkhead!);
    plan.pool('http://127.0.0.1:1', { connections: 1, keepAlive: 1000, connectTimeout: 100 });
    assert.equal(plan.breaker('u', u.circuitBreaker!), breaker, 'one object per name within a plan');
    assert.equal(reg.breakers.size + reg.bulkheads.size + reg.pools.size, 0, 'nothing registered before commit');
    plan.commit();
    assert.equal(reg.breakers.get('u'), breaker);
    assert.equal(reg.bulkheads.get('u'), bulkhead);
    assert.equal(reg.pools.size, 1);
    assert.deepEqual([...plan.claims.breakers], ['u']);
    await reg.close();
  });

  it('hands a live guard to the new build but applies its new thresholds only on commit', async () => {
    const reg = new StateRegistry(() => {}, new ManualClock());
    const first = config(1, '10/s').upstreams.get('u')!;
    const live = reg.bulkhead('u', first.bulkhead!, newClaims());
    assert.equal(live.tryAcquire(), 0);
    const plan = new StatePlan(reg);
    const next = config(5, '10/s').upstreams.get('u')!;
    assert.equal(plan.bulkhead('u', next.bulkhead!), live);
    assert.notEqual(live.tryAcquire(), 0, 'the running limit (1) still holds while the plan is pending');
    plan.commit();
    assert.equal(live.tryAcquire(), 0, 'the new limit (5) applies from the commit on');
    live.release();
    live.release();
    await reg.close();
  });

  it('discard leaves the registry as it was and disposes what the plan made', async () => {
    const reg = new StateRegistry(() => {}, new ManualClock());
    const first = config(1, '10/s').upstreams.get('u')!;
    const live = reg.bulkhead('u', first.bulkhead!, newClaims());
    const plan = new StatePlan(reg);
    plan.bulkhead('u', config(9, '10/s').upstreams.get('u')!.bulkhead!);
    const made = plan.breaker('u', first.circuitBreaker!);
    plan.pool('http://127.0.0.1:2', { connections: 1, keepAlive: 1000, connectTimeout: 100 });
    await plan.discard();
    assert.equal(reg.breakers.size, 0);
    assert.equal(reg.pools.size, 0);
    assert.equal(live.tryAcquire(), 0);
    assert.notEqual(live.tryAcquire(), 0, 'the live limit was not raised by the discarded plan');
    assert.equal(made.snapshot().state, 'closed');
    assert.throws(() => plan.commit(), /once/);
    live.release();
    await reg.close();
  });
});
