/**
 * The bulkhead (SPEC §4.4): at most `maxConcurrent` requests in flight to an
 * upstream, up to `maxQueue` more waiting first-in first-out for at most
 * `queueTimeout`. One per upstream name, kept across reloads (the old and new
 * pipelines share it, so concurrency never overshoots during a reload).
 *
 * The fast path (`tryAcquire`, `release` with nobody waiting) is a counter:
 * no allocation, no timer. Only a request that really waits gets a queue node,
 * a promise and one timer, and every way out of the queue (slot handed over,
 * timeout, abort, dispose) clears both the timer and the abort listener.
 *
 * Invariant: in enforce mode, waiters exist only while `active ≥ maxConcurrent`
 * (a freed slot goes to the head of the queue before anyone else can see it),
 * so a newcomer never overtakes a waiter.
 */
import type { BulkheadConfig } from '../../config/types.ts';
import { failure, type Failure } from '../../errors.ts';
import type { Permit } from '../permit.ts';

const FULL: Failure = Object.freeze(failure('bulkhead_full'));

/** What `tryAcquire` says; numbers so the result is a small integer, not a string compare. */
export const BULKHEAD = { ACQUIRED: 0, OBSERVED: 1, QUEUE: 2, FULL: 3 } as const;
export type BulkheadResult = (typeof BULKHEAD)[keyof typeof BULKHEAD];

/** Lets a waiter's timer and abort listener reach the bulkhead without making that door public. */
const LEAVE = Symbol('breakwater.bulkhead.leave');

/**
 * One queued request. It is its own abort listener (`handleEvent`) and its
 * timer gets it as an argument, so waiting needs no closures beyond the
 * promise's own.
 */
class Waiter {
  readonly owner: Bulkhead;
  readonly signal: AbortSignal | null;
  resolve!: (ok: boolean) => void;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  prev: Waiter | null = null;
  next: Waiter | null = null;
  settled = false;

  constructor(owner: Bulkhead, signal: AbortSignal | null) {
    this.owner = owner;
    this.signal = signal;
  }

  handleEvent(): void {
    this.owner[LEAVE](this);
  }
}

function onQueueTimeout(w: Waiter): void {
  w.timer = undefined;
  w.owner[LEAVE](w);
}

export class Bulkhead {
  #max: number;
  #maxQueue: number;
  #queueTimeout: number;
  #observe: boolean;
  #active = 0;
  #queued = 0;
  #head: Waiter | null = null;
  #tail: Waiter | null = null;
  #disposed = false;

  constructor(cfg: BulkheadConfig) {
    this.#max = cfg.maxConcurrent;
    this.#maxQueue = cfg.maxQueue;
    this.#queueTimeout = cfg.queueTimeout;
    this.#observe = cfg.mode === 'observe';
  }

  get active(): number {
    return this.#active;
  }

  /** A held slot: release() gives it back. */
  readonly #slot: Permit = Object.freeze({ type: 'permit', observed: null, release: () => this.release() });
  /** A slot counted over maxConcurrent in observe mode. */
  readonly #observedSlot: Permit = Object.freeze({ type: 'permit', observed: 'bulkhead_full_observed', release: () => this.release() });

  /**
   * The guard's answer (policies/permit.ts): a slot permit, 'queue' (no slot
   * now, but room to wait: call `acquireQueued`), or `bulkhead_full`.
   */
  acquire(): Permit | 'queue' | Failure {
    switch (this.tryAcquire()) {
      case BULKHEAD.ACQUIRED:
        return this.#slot;
      case BULKHEAD.OBSERVED:
        return this.#observedSlot;
      case BULKHEAD.QUEUE:
        return 'queue';
      default:
        return FULL;
    }
  }

  /** Waits in line (after `acquire` said 'queue'): a slot permit, or `bulkhead_full` on queue timeout or abort. */
  async acquireQueued(signal: AbortSignal | null): Promise<Permit | Failure> {
    return (await this.enqueue(signal)) ? this.#slot : FULL;
  }

  get queued(): number {
    return this.#queued;
  }

  /**
   * ACQUIRED: a slot is held. QUEUE: no slot, but the queue has room — call
   * `enqueue` (nothing is reserved: a caller that cannot wait may just give
   * up). FULL: reject. OBSERVED (observe mode only): over `maxConcurrent`, the
   * slot is counted anyway and must be released like any other.
   */
  tryAcquire(): BulkheadResult {
    if (this.#active < this.#max && this.#head === null) {
      this.#active++;
      return BULKHEAD.ACQUIRED;
    }
    if (this.#observe) {
      // A dry run cannot know whether a request that would have queued would
      // also have timed out, so everything past maxConcurrent is reported:
      // the flag overstates the pressure rather than hiding it.
      this.#active++;
      return BULKHEAD.OBSERVED;
    }
    return this.#queued < this.#maxQueue ? BULKHEAD.QUEUE : BULKHEAD.FULL;
  }

  /**
   * Waits in line for a slot, at most `queueTimeout` ms. true: the slot is
   * held (release it like any other). false: queue timeout, `signal` aborted
   * (the waiter leaves the queue at once and never gets a slot), the queue was
   * full after all, or the bulkhead was disposed.
   */
  enqueue(signal: AbortSignal | null): Promise<boolean> {
    if (this.#disposed || signal?.aborted === true) return Promise.resolve(false);
    // Normally called right after tryAcquire said QUEUE; re-checked so a
    // caller that let time pass cannot overfill the queue or skip a free slot.
    if (this.#active < this.#max && this.#head === null) {
      this.#active++;
      return Promise.resolve(true);
    }
    if (this.#queued >= this.#maxQueue) return Promise.resolve(false);
    const w = new Waiter(this, signal);
    const p = new Promise<boolean>((resolve) => {
      w.resolve = resolve;
    });
    this.#push(w);
    w.timer = setTimeout(onQueueTimeout, this.#queueTimeout, w);
    signal?.addEventListener('abort', w);
    return p;
  }

  /** Gives a slot back, handing it straight to the first waiter if there is room. */
  release(): void {
    if (this.#active <= 0) throw new Error('bulkhead: release() without a matching acquire');
    this.#active--;
    this.#admit();
  }

  /**
   * New limits from a reload. Occupancy and queue are kept: a higher
   * maxConcurrent admits waiters at once; a lower one lets in-flight requests
   * finish (active stays above the limit until they do); a lower maxQueue
   * turns no one out. Waiters keep the timeout they were queued with.
   * Switching to observe admits everyone waiting, since observe rejects and
   * delays nothing.
   */
  update(cfg: BulkheadConfig): void {
    this.#max = cfg.maxConcurrent;
    this.#maxQueue = cfg.maxQueue;
    this.#queueTimeout = cfg.queueTimeout;
    this.#observe = cfg.mode === 'observe';
    if (this.#observe) {
      while (this.#head !== null) this.#settle(this.#head, true);
    } else {
      this.#admit();
    }
  }

  /** Shutdown: every waiter gets false, every timer is cleared; later `enqueue` calls get false at once. */
  dispose(): void {
    this.#disposed = true;
    while (this.#head !== null) this.#settle(this.#head, false);
  }

  /** A waiter timed out or was aborted: out of the queue, no slot. */
  [LEAVE](w: Waiter): void {
    if (!w.settled) this.#settle(w, false);
  }

  /** Hands free slots to waiters, oldest first. */
  #admit(): void {
    while (this.#head !== null && this.#active < this.#max) this.#settle(this.#head, true);
  }

  #settle(w: Waiter, ok: boolean): void {
    w.settled = true;
    this.#unlink(w);
    if (w.timer !== undefined) {
      clearTimeout(w.timer);
      w.timer = undefined;
    }
    w.signal?.removeEventListener('abort', w);
    if (ok) this.#active++;
    w.resolve(ok);
  }

  #push(w: Waiter): void {
    w.prev = this.#tail;
    if (this.#tail === null) this.#head = w;
    else this.#tail.next = w;
    this.#tail = w;
    this.#queued++;
  }

  #unlink(w: Waiter): void {
    if (w.prev === null) this.#head = w.next;
    else w.prev.next = w.next;
    if (w.next === null) this.#tail = w.prev;
    else w.next.prev = w.prev;
    w.prev = null;
    w.next = null;
    this.#queued--;
  }
}
