/**
 * One bucket clock for every breaker's rolling window (STYLE habit 14).
 *
 * opossum gives each window its own `setInterval` unless it is handed a
 * `rotateBucketController`: an EventEmitter on which a 'rotate' event moves
 * every listening window on by one bucket. SharedRotation is that controller
 * for all breakers of a process, so a thousand upstreams cost one timer.
 *
 * Bucket boundaries follow the Clock, not the timer: `sync()` emits one
 * 'rotate' per bucket boundary the clock has passed since the last call. The
 * timer only calls `sync()` so windows age without traffic; the breaker also
 * calls it before each record. That makes rotation exact under a ManualClock
 * (tests advance the clock and the next record sees the roll-off) and
 * self-correcting under a late or stalled timer (a missed tick is caught up,
 * never lost).
 *
 * Because every window shares one bucket length, a window of `w` ms is
 * `ceil(w / bucketMs)` buckets; its effective span is between
 * `w - bucketMs` and `w` depending on where in the current bucket we are.
 */
import { EventEmitter } from 'node:events';
import { systemClock, type Clock } from '../../util/clock.ts';

/** Bucket length when none is given: fine enough for the 1s–60s windows configs use. */
export const DEFAULT_BUCKET_MS = 250;

/** opossum's Status listens for this event name on the controller. */
const ROTATE = 'rotate';

export class SharedRotation {
  readonly bucketMs: number;
  readonly #clock: Clock;
  /** Handed to opossum as `rotateBucketController`. */
  readonly #controller = new EventEmitter();
  /** Called after each sync that crossed a boundary (open breakers poll their open timer here). */
  readonly #tickListeners = new Set<() => void>();
  #members = 0;
  #timer: NodeJS.Timeout | null = null;
  /** Clock time of the next bucket boundary. */
  #next: number;
  /** Bumped on every rotation: windows compare it to know their cached sums are stale. */
  #generation = 0;
  /** Longest window seen, in buckets: catching up further than that changes nothing. */
  #maxBuckets = 1;

  constructor(opts: { clock?: Clock; bucketMs?: number } = {}) {
    this.#clock = opts.clock ?? systemClock;
    this.bucketMs = opts.bucketMs ?? DEFAULT_BUCKET_MS;
    if (!(this.bucketMs > 0)) throw new RangeError(`bucketMs must be positive, got ${this.bucketMs}`);
    // Every breaker's window listens on this one emitter.
    this.#controller.setMaxListeners(0);
    this.#next = this.#clock.now() + this.bucketMs;
  }

  get clock(): Clock {
    return this.#clock;
  }

  /** The EventEmitter opossum's Status subscribes to. */
  get controller(): EventEmitter {
    return this.#controller;
  }

  /** Rotations so far. */
  get generation(): number {
    return this.#generation;
  }

  /** Breakers attached (holding the timer alive). */
  get members(): number {
    return this.#members;
  }

  /** Whether the shared timer currently exists. */
  get running(): boolean {
    return this.#timer !== null;
  }

  /** A breaker starts using the rotation: the first one starts the (unref'd) timer. */
  attach(): void {
    if (this.#members++ === 0) {
      this.#next = this.#clock.now() + this.bucketMs;
      this.#timer = setInterval(() => this.sync(), this.bucketMs);
      this.#timer.unref();
    }
  }

  /** A breaker is disposed: the last one stops the timer. */
  detach(): void {
    if (this.#members === 0) return;
    if (--this.#members === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  /** A window of `buckets` buckets exists: catch-up rotations are capped at the longest one. */
  noteBuckets(buckets: number): void {
    if (buckets > this.#maxBuckets) this.#maxBuckets = buckets;
  }

  /** Subscribe to ticks (each sync that crossed at least one boundary). Returns the unsubscribe. */
  onTick(fn: () => void): () => void {
    this.#tickListeners.add(fn);
    return () => {
      this.#tickListeners.delete(fn);
    };
  }

  /** Emit one 'rotate' per bucket boundary passed. Cheap when none was: one clock read, one compare. */
  sync(): void {
    const now = this.#clock.now();
    if (now < this.#next) return;
    const passed = Math.floor((now - this.#next) / this.bucketMs) + 1;
    this.#next += passed * this.bucketMs;
    const n = passed < this.#maxBuckets ? passed : this.#maxBuckets;
    for (let i = 0; i < n; i++) {
      this.#generation++;
      this.#controller.emit(ROTATE);
    }
    // Deleting from a Set while iterating it is safe: an open breaker that
    // turns half-open here unsubscribes itself.
    for (const fn of this.#tickListeners) fn();
  }
}
