import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FrozenMap, FrozenSet, deepFreeze } from '../../../src/config/freeze.ts';
import { config, withUpstream } from './helpers.ts';

/** Every object reachable from `v` (Set and Map contents included). */
function reachable(v: unknown, out = new Set<object>()): Set<object> {
  if (typeof v !== 'object' || v === null || out.has(v)) return out;
  out.add(v);
  if (v instanceof Map) for (const [k, x] of v) (reachable(k, out), reachable(x, out));
  else if (v instanceof Set) for (const x of v) reachable(x, out);
  else for (const k of Reflect.ownKeys(v)) reachable((v as Record<PropertyKey, unknown>)[k], out);
  return out;
}

const full = withUpstream(
  'requestHeaders: { set: { x-a: b } }\nretry: { on: [5xx] }\ncircuitBreaker: {}\nbulkhead: {}\nrateLimit: { rate: 1/s }\nfallback: { response: { headers: { x-f: y } } }',
  'log: { headers: [user-agent] }\n',
);

describe('the loaded config', () => {
  it('is deeply frozen: every object, array, set and map reachable from it', () => {
    const c = config(full);
    const all = reachable(c);
    assert.ok(all.size > 50);
    for (const o of all) assert.ok(Object.isFrozen(o), `frozen: ${Object.prototype.toString.call(o)}`);
  });

  it('refuses changes to its sets and maps, not only to its objects', () => {
    const c = config(full);
    const u = c.upstreams.get('u')!;
    assert.throws(() => (c.upstreams as Map<string, unknown>).set('x', {}), TypeError);
    assert.throws(() => (c.upstreams as Map<string, unknown>).delete('u'), TypeError);
    assert.throws(() => (u.retry.methods as Set<string>).add('POST'), TypeError);
    assert.throws(() => (u.retry.on.statuses as Set<number>).clear(), TypeError);
    assert.throws(() => (u.fallback!.on as Set<string>).delete('timeout'), TypeError);
    assert.throws(() => {
      (u.timeout as { total: number }).total = 1;
    }, TypeError);
    assert.throws(() => (c.listeners as unknown[]).push({}), TypeError);
    assert.throws(() => {
      (c.source.redacted as Record<string, unknown>)['version'] = 2;
    }, TypeError);
    assert.equal(u.retry.methods.has('GET'), true, 'reading still works');
    assert.ok(c.upstreams instanceof Map && u.retry.methods instanceof Set);
  });

  it('stays unchanged when loaded twice: built-ins are not shared mutable state', () => {
    const a = config(withUpstream('retry: { maxRetries: 5 }'));
    const b = config(withUpstream(''));
    assert.equal(a.upstreams.get('u')!.retry.maxRetries, 5);
    assert.equal(b.upstreams.get('u')!.retry.maxRetries, 2);
  });
});

describe('deepFreeze', () => {
  it('refuses a plain Map or Set, which Object.freeze would not protect', () => {
    assert.throws(() => deepFreeze({ m: new Map() }), /plain Map or Set/);
    assert.doesNotThrow(() => deepFreeze({ m: new FrozenMap([['a', { b: 1 }]]), s: new FrozenSet([1]) }));
  });

  it('freezes the values inside frozen maps', () => {
    const inner = { b: 1 };
    deepFreeze({ m: new FrozenMap([['a', inner]]) });
    assert.ok(Object.isFrozen(inner));
  });
});
