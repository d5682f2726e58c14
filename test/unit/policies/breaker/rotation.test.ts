// The shared ticker and the breaker's timers: one timer for all breakers,
// none left after dispose, and the few behaviours that need real time (ageing
// and the open → half-open report without traffic).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { CircuitBreakerConfig } from '../../../../src/config/types.ts';
import { ADMIT, CircuitBreaker, SharedRotation } from '../../../../src/policies/breaker/breaker.ts';
import { ManualClock } from '../../../../src/util/clock.ts';

function config(over: Partial<CircuitBreakerConfig> = {}): CircuitBreakerConfig {
  return {
    consecutiveFailures: 3,
    failureRate: 50,
    minimumRequests: 20,
    window: 10_000,
    openDuration: 30_000,
    halfOpenRequests: 1,
    successThreshold: 1,
    failOn: { connectFailure: true, reset: true, timeout: true, statuses: new Set([500, 502, 503, 504]), grpc: 0, source: [] },
    mode: 'enforce',
    ...over,
  };
}

const live: CircuitBreaker[] = [];
after(() => {
  for (const b of live.splice(0)) b.dispose();
});

/** Every timer created while `fn` runs (setInterval and setTimeout, whoever creates them). */
function timersCreatedBy(fn: () => void): NodeJS.Timeout[] {
  const created: NodeJS.Timeout[] = [];
  const { setInterval: si, setTimeout: st } = globalThis;
  globalThis.setInterval = ((...args: Parameters<typeof si>) => {
    const t = si(...args);
    created.push(t);
    return t;
  }) as typeof si;
  globalThis.setTimeout = ((...args: Parameters<typeof st>) => {
    const t = st(...args);
    created.push(t);
    return t;
  }) as typeof st;
  try {
    fn();
  } finally {
    globalThis.setInterval = si;
    globalThis.setTimeout = st;
  }
  return created;
}

const activeTimeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('SharedRotation', () => {
  test('counts every tick boundary the clock passed, catching up after a gap', () => {
    const clock = new ManualClock(0);
    const rotation = new SharedRotation({ clock, bucketMs: 100 });
    let ticks = 0;
    rotation.onTick(() => ticks++);
    rotation.sync();
    clock.advance(99);
    rotation.sync();
    assert.equal(rotation.generation, 0);
    assert.equal(ticks, 0);
    clock.advance(1);
    rotation.sync();
    rotation.sync();
    assert.equal(rotation.generation, 1);
    assert.equal(ticks, 1);
    clock.advance(1250); // boundaries at 200 … 1300
    rotation.sync();
    assert.equal(rotation.generation, 13);
    assert.equal(ticks, 2, 'one call per sync that crossed a boundary, however many it crossed');
  });

  test('a long gap costs one call to the tick listeners, whatever its length', () => {
    const clock = new ManualClock(0);
    const rotation = new SharedRotation({ clock, bucketMs: 10 });
    let ticks = 0;
    rotation.onTick(() => ticks++);
    clock.advance(3_600_000);
    rotation.sync();
    assert.equal(ticks, 1);
    assert.equal(rotation.generation, 360_000);
  });

  test('a breaker given only a ManualClock ages its window on that clock', () => {
    const clock = new ManualClock(0);
    const b = new CircuitBreaker('solo', config({ window: 1000 }), { clock });
    live.push(b);
    b.record('5xx', 503, false);
    clock.advance(900);
    assert.equal(b.snapshot().window.failures, 1);
    clock.advance(400);
    assert.equal(b.snapshot().window.failures, 0);
  });
});

describe('timers', () => {
  test('many breakers share one rotation timer, whatever their traffic and state', () => {
    const rotation = new SharedRotation({ bucketMs: 50 });
    const baseline = activeTimeouts();
    const breakers: CircuitBreaker[] = [];
    const created = timersCreatedBy(() => {
      for (let i = 0; i < 200; i++) {
        const b = new CircuitBreaker(`u${i}`, config({ window: 1000 + i * 100 }), { rotate: rotation });
        breakers.push(b);
        b.record('success', 200, false);
        if (i % 2 === 0) for (let k = 0; k < 3; k++) b.record('5xx', 503, false); // opens half of them
      }
    });
    live.push(...breakers);
    assert.equal(created.length, 1, 'one setInterval in all: no per-breaker bucket, snapshot or open timer');
    assert.equal(rotation.running, true);
    assert.equal(activeTimeouts(), baseline, 'the timer is unref\'d: it never keeps the process alive');
    assert.equal(rotation.members, 200);
    assert.equal(breakers.filter((b) => b.admit() === ADMIT.REJECT).length, 100);
    assert.equal(rotation.subscribers, 100, 'only open breakers listen to ticks: the windows need none');
  });

  test('breakers built without a rotation share the process-wide one', () => {
    const created = timersCreatedBy(() => {
      for (let i = 0; i < 20; i++) live.push(new CircuitBreaker(`d${i}`, config()));
    });
    assert.ok(created.length <= 1, `${created.length} timers for 20 breakers`);
  });

  test('dispose leaves no timer running and no listener on the shared rotation', () => {
    const rotation = new SharedRotation({ bucketMs: 20 });
    const baseline = activeTimeouts();
    const breakers: CircuitBreaker[] = [];
    const created = timersCreatedBy(() => {
      for (let i = 0; i < 10; i++) {
        const b = new CircuitBreaker(`x${i}`, config({ window: 500 }), { rotate: rotation });
        breakers.push(b);
        for (let k = 0; k < 3; k++) b.record('5xx', 503, false); // open: subscribed to ticks
        b.update(config({ window: 2000 })); // rebuilt window
        b.onTransition(() => {});
      }
    });
    assert.ok(created.length >= 1);
    for (const b of breakers) b.dispose();
    assert.equal(rotation.running, false);
    assert.equal(rotation.subscribers, 0);
    // The timers are unref'd, which hides them from getActiveResourcesInfo():
    // ref them again; a cleared timer stays inactive, a live one shows up.
    for (const t of created) t.ref();
    try {
      assert.equal(activeTimeouts(), baseline);
    } finally {
      for (const t of created) t.unref();
    }
  });

  test('windows age without any traffic, while the shared timer keeps ticking', async () => {
    const rotation = new SharedRotation({ bucketMs: 20 });
    const b = new CircuitBreaker('aging', config({ window: 100, consecutiveFailures: null }), { rotate: rotation });
    live.push(b);
    b.record('5xx', 503, false);
    const start = rotation.generation;
    await new Promise((r) => setTimeout(r, 400));
    assert.ok(rotation.generation - start >= 5, `only ${rotation.generation - start} rotations in 400ms`);
    assert.equal(b.snapshot().window.failures, 0);
  });

  test('an open breaker reports half-open without traffic once openDuration has passed', async () => {
    const rotation = new SharedRotation({ bucketMs: 20 });
    const b = new CircuitBreaker('quiet', config({ openDuration: 100 }), { rotate: rotation });
    live.push(b);
    const halfOpen = new Promise<number>((resolve) => {
      b.onTransition((_, to) => {
        if (to === 'half-open') resolve(performance.now());
      });
    });
    const opened = performance.now();
    for (let k = 0; k < 3; k++) b.record('5xx', 503, false);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('no transition in 3s')), 3000);
    });
    const at = await Promise.race([halfOpen, timeout]).finally(() => clearTimeout(timer));
    assert.ok(at - opened >= 99, `reported after ${at - opened}ms`);
  });
});
