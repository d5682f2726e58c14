import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { BulkheadConfig } from '../../../../src/config/types.ts';
import { BULKHEAD, Bulkhead } from '../../../../src/policies/bulkhead/bulkhead.ts';
import { activeTimeouts } from '../timers.ts';

const LONG = 60_000; // a queue timeout no test waits for: it must be cleared, not fire

function cfg(maxConcurrent: number, maxQueue: number, queueTimeout = LONG, mode: BulkheadConfig['mode'] = 'enforce'): BulkheadConfig {
  return { maxConcurrent, maxQueue, queueTimeout, mode };
}

/** Lets already-settled promise callbacks run. */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('Bulkhead (SPEC §4.4)', () => {
  let timers: number;
  let made: Bulkhead[];
  const make = (c: BulkheadConfig): Bulkhead => {
    const b = new Bulkhead(c);
    made.push(b);
    return b;
  };
  beforeEach(() => {
    made = [];
    timers = activeTimeouts();
  });
  afterEach(() => {
    // dispose() only reaches waiters still queued: a timer leaked by any other
    // path (hand-over, abort, timeout) still shows up in the count below.
    for (const b of made) b.dispose();
    assert.equal(activeTimeouts(), timers, 'no queue timer is left behind');
  });

  it('admits up to maxConcurrent, then offers the queue, then is full', () => {
    const b = make(cfg(2, 1));
    assert.equal(b.tryAcquire(), BULKHEAD.ACQUIRED);
    assert.equal(b.tryAcquire(), BULKHEAD.ACQUIRED);
    assert.equal(b.tryAcquire(), BULKHEAD.QUEUE);
    assert.equal(b.active, 2);
    assert.equal(b.queued, 0, 'QUEUE reserves nothing until enqueue is called');
    const w = b.enqueue(null);
    assert.equal(b.queued, 1);
    assert.equal(b.tryAcquire(), BULKHEAD.FULL);
    b.release();
    return w.then((ok) => {
      assert.equal(ok, true);
      b.release();
      b.release();
    });
  });

  it('is full at once when maxQueue is 0', () => {
    const b = make(cfg(1, 0));
    b.tryAcquire();
    assert.equal(b.tryAcquire(), BULKHEAD.FULL);
    b.release();
  });

  it('serves waiters in exact arrival order', async () => {
    const b = make(cfg(1, 10));
    assert.equal(b.tryAcquire(), BULKHEAD.ACQUIRED);
    const order: number[] = [];
    const waits = [0, 1, 2, 3, 4].map((i) => {
      assert.equal(b.tryAcquire(), BULKHEAD.QUEUE);
      return b.enqueue(null).then((ok) => {
        assert.equal(ok, true);
        order.push(i);
      });
    });
    assert.equal(b.queued, 5);
    for (let i = 0; i < 5; i++) {
      b.release();
      await settle();
      assert.deepEqual(order, [0, 1, 2, 3, 4].slice(0, i + 1));
      assert.equal(b.active, 1, 'the slot went straight to the next waiter');
      assert.equal(b.queued, 4 - i);
    }
    await Promise.all(waits);
    b.release();
    assert.equal(b.active, 0);
  });

  it('does not let a newcomer overtake a waiter when a slot frees', async () => {
    const b = make(cfg(1, 5));
    b.tryAcquire();
    const w = b.enqueue(null);
    b.release();
    assert.equal(b.tryAcquire(), BULKHEAD.QUEUE, 'the freed slot already belongs to the waiter');
    assert.equal(await w, true);
    b.release();
  });

  it('gives up on the queue after queueTimeout, without a slot', async () => {
    const b = make(cfg(1, 5, 50));
    b.tryAcquire();
    const started = performance.now();
    const ok = await b.enqueue(null);
    const waited = performance.now() - started;
    assert.equal(ok, false);
    assert.ok(waited >= 45, `waited ${waited} ms`);
    assert.ok(waited < 5_000, `waited ${waited} ms`);
    assert.equal(b.queued, 0);
    assert.equal(b.active, 1);
    b.release();
    assert.equal(b.active, 0, 'the timed-out waiter was not handed the slot');
  });

  it('times out each waiter on its own clock, leaving the others queued', async () => {
    const b = make(cfg(1, 5, 50));
    b.tryAcquire();
    const first = b.enqueue(null);
    await new Promise((r) => setTimeout(r, 30));
    b.update(cfg(1, 5, LONG));
    const second = b.enqueue(null);
    assert.equal(await first, false);
    assert.equal(b.queued, 1);
    b.release();
    assert.equal(await second, true);
    b.release();
  });

  it('takes an aborted waiter out of the queue at once and never gives it a slot', async () => {
    const b = make(cfg(1, 5));
    b.tryAcquire();
    const ac = new AbortController();
    const aborted = b.enqueue(ac.signal);
    const next = b.enqueue(null);
    assert.equal(b.queued, 2);
    ac.abort();
    assert.equal(b.queued, 1, 'left the queue synchronously');
    assert.equal(await aborted, false);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0, 'the abort listener is removed');
    b.release();
    assert.equal(await next, true, 'the slot went to the waiter behind it');
    assert.equal(b.active, 1);
    b.release();
    assert.equal(b.active, 0);
  });

  it('refuses to queue a request whose signal has already aborted', async () => {
    const b = make(cfg(1, 5));
    b.tryAcquire();
    assert.equal(await b.enqueue(AbortSignal.abort()), false);
    assert.equal(b.queued, 0);
    b.release();
  });

  it('removes the abort listener when a waiter is handed a slot, so a later abort changes nothing', async () => {
    const b = make(cfg(1, 5));
    b.tryAcquire();
    const ac = new AbortController();
    const w = b.enqueue(ac.signal);
    b.release();
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    ac.abort();
    assert.equal(await w, true);
    assert.equal(b.active, 1);
    b.release();
  });

  it('release hands the slot straight to the first waiter', async () => {
    const b = make(cfg(2, 5));
    b.tryAcquire();
    b.tryAcquire();
    const w = b.enqueue(null);
    b.release();
    assert.equal(b.active, 2);
    assert.equal(b.queued, 0);
    assert.equal(await w, true);
    b.release();
    b.release();
    assert.equal(b.active, 0);
  });

  it('throws when more slots are released than were acquired', () => {
    const b = make(cfg(2, 0));
    b.tryAcquire();
    b.release();
    assert.throws(() => b.release(), /release/);
    assert.equal(b.active, 0);
  });

  it('in observe mode admits past the limit, counts the slot and says so', () => {
    const b = make(cfg(1, 0, LONG, 'observe'));
    assert.equal(b.tryAcquire(), BULKHEAD.ACQUIRED);
    assert.equal(b.tryAcquire(), BULKHEAD.OBSERVED);
    assert.equal(b.tryAcquire(), BULKHEAD.OBSERVED);
    assert.equal(b.active, 3);
    b.release();
    b.release();
    b.release();
    assert.throws(() => b.release());
    assert.equal(b.tryAcquire(), BULKHEAD.ACQUIRED);
    b.release();
  });

  it('admits waiters at once when a reload raises maxConcurrent', async () => {
    const b = make(cfg(1, 5));
    b.tryAcquire();
    const ws = [b.enqueue(null), b.enqueue(null), b.enqueue(null)];
    b.update(cfg(3, 5));
    assert.equal(b.active, 3);
    assert.equal(b.queued, 1);
    assert.deepEqual(await Promise.all(ws.slice(0, 2)), [true, true]);
    b.release();
    assert.equal(await ws[2], true);
    for (let i = 0; i < 3; i++) b.release();
    assert.equal(b.active, 0);
  });

  it('lets in-flight requests finish when a reload lowers maxConcurrent', async () => {
    const b = make(cfg(3, 5));
    b.tryAcquire();
    b.tryAcquire();
    b.tryAcquire();
    b.update(cfg(1, 5));
    assert.equal(b.active, 3, 'nothing is cut off');
    assert.equal(b.tryAcquire(), BULKHEAD.QUEUE);
    const w = b.enqueue(null);
    b.release();
    b.release();
    assert.equal(b.queued, 1, 'no slot is handed over while still above the new limit');
    b.release();
    assert.equal(await w, true);
    assert.equal(b.active, 1);
    b.release();
  });

  it('admits everyone waiting when a reload switches to observe mode', async () => {
    const b = make(cfg(1, 5));
    b.tryAcquire();
    const ws = [b.enqueue(null), b.enqueue(null)];
    b.update(cfg(1, 5, LONG, 'observe'));
    assert.deepEqual(await Promise.all(ws), [true, true]);
    assert.equal(b.active, 3);
    for (let i = 0; i < 3; i++) b.release();
  });

  it('dispose rejects every waiter and clears their timers', async () => {
    const b = make(cfg(1, 5));
    b.tryAcquire();
    const ac = new AbortController();
    const ws = [b.enqueue(null), b.enqueue(ac.signal), b.enqueue(null)];
    assert.equal(activeTimeouts(), timers + 3, 'one timer per waiter');
    b.dispose();
    assert.deepEqual(await Promise.all(ws), [false, false, false]);
    assert.equal(b.queued, 0);
    assert.equal(activeTimeouts(), timers);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    assert.equal(await b.enqueue(null), false, 'nothing queues after dispose');
    b.release();
  });
});
