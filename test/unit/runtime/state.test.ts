import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfigText } from '../../../src/config/load.ts';
import type { BreakwaterConfig } from '../../../src/config/types.ts';
import { newClaims, StateRegistry } from '../../../src/runtime/state.ts';
import { ManualClock } from '../../../src/util/clock.ts';

function config(failures: number, maxConcurrent: number, rate = '10/s'): BreakwaterConfig {
  const r = loadConfigText(
    `
version: 1
listeners: [{ name: l, address: 127.0.0.1:0, upstream: u }]
upstreams:
  u:
    url: http://127.0.0.1:1
    circuitBreaker: { consecutiveFailures: ${failures}, failureRate: null, openDuration: 10s }
    bulkhead: { maxConcurrent: ${maxConcurrent} }
    rateLimit: { rate: ${rate}, burst: 2 }
`,
    'test.yaml',
    {},
  );
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.config;
}

describe('StateRegistry: state keyed by name, outliving a config load', () => {
  it('hands the same breaker, bulkhead, bucket and budget to every build that names them', async () => {
    const reg = new StateRegistry(() => {}, new ManualClock());
    const u = config(3, 2).upstreams.get('u')!;
    const a = newClaims();
    const b = newClaims();
    assert.equal(reg.breaker('u', u.circuitBreaker!, a), reg.breaker('u', u.circuitBreaker!, b));
    assert.equal(reg.bulkhead('u', u.bulkhead!, a), reg.bulkhead('u', u.bulkhead!, b));
    assert.equal(reg.bucket('upstream:u', u.rateLimit!, a), reg.bucket('upstream:u', u.rateLimit!, b));
    assert.equal(reg.budget('upstream:u', u.retry.budget!, a), reg.budget('upstream:u', u.retry.budget!, b));
    assert.deepEqual([...b.breakers], ['u']);
    await reg.close();
  });

  it('keeps an open breaker open and a busy bulkhead busy when a new config updates their thresholds', () => {
    const transitions: string[] = [];
    const reg = new StateRegistry((name, from, to) => transitions.push(`${name}:${from}>${to}`), new ManualClock());
    const first = config(2, 1).upstreams.get('u')!;
    const breaker = reg.breaker('u', first.circuitBreaker!, newClaims());
    breaker.record('5xx', 500, false);
    breaker.record('5xx', 500, false);
    assert.equal(breaker.state, 'open');
    const bulkhead = reg.bulkhead('u', first.bulkhead!, newClaims());
    assert.equal(bulkhead.tryAcquire(), 0);

    const second = config(5, 1).upstreams.get('u')!;
    assert.equal(reg.breaker('u', second.circuitBreaker!, newClaims()), breaker);
    assert.equal(breaker.state, 'open', 'still open after the update');
    assert.equal(reg.bulkhead('u', second.bulkhead!, newClaims()).active, 1);
    assert.notEqual(bulkhead.tryAcquire(), 0, 'the limit still holds across the update');
    assert.deepEqual(transitions, ['u:closed>open']);
    bulkhead.release();
    breaker.dispose();
  });

  it('drops what no live config claims, and keeps what one does', async () => {
    const reg = new StateRegistry(() => {}, new ManualClock());
    const u = config(3, 2).upstreams.get('u')!;
    const keep = newClaims();
    reg.breaker('u', u.circuitBreaker!, keep);
    reg.bucket('route:r', u.rateLimit!, newClaims());
    reg.pool('http://127.0.0.1:1', { connections: 1, keepAlive: 1000, connectTimeout: 100 }, keep);
    reg.pool('http://127.0.0.1:2', { connections: 1, keepAlive: 1000, connectTimeout: 100 }, newClaims());
    await reg.retain(keep);
    assert.ok(reg.breakers.has('u'));
    assert.ok(!reg.buckets.has('route:r'));
    assert.equal(reg.pools.size, 1);
    await reg.retain(newClaims());
    assert.equal(reg.breakers.size, 0);
    assert.equal(reg.pools.size, 0);
    await reg.close();
  });

  it('shares one pool between upstreams with the same origin and pool settings', async () => {
    const reg = new StateRegistry(() => {}, new ManualClock());
    const o = { connections: 4, keepAlive: 1000, connectTimeout: 100 };
    const c = newClaims();
    assert.equal(reg.pool('http://127.0.0.1:9', o, c), reg.pool('http://127.0.0.1:9', o, c));
    assert.notEqual(reg.pool('http://127.0.0.1:9', o, c), reg.pool('http://127.0.0.1:9', { ...o, connectTimeout: 200 }, c));
    await reg.destroy();
  });
});
