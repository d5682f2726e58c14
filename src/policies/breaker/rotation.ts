/**
 * The breakers' one shared ticker (STYLE habit 14), and their bucket length.
 *
 * A breaker's rolling window needs no timer: it is a RollingCounter
 * (util/rolling-counter.ts) that moves on lazily from the Clock whenever it
 * is read or written. The one thing that needs time to pass without traffic
 * is reporting `open → half-open` (the transition listeners feed metrics and
 * logs): an open breaker subscribes to this ticker's ticks and checks its
 * open period there. So a thousand upstreams cost one unref'd `setInterval`,
 * created when the first breaker attaches and cleared when the last one
 * detaches; the transition is reported within one tick.
 *
 * Ticks follow the Clock, not the timer: `sync()` counts the tick boundaries
 * the clock has passed since the last call (`generation`) and calls the
 * listeners once if there was at least one. A late or stalled timer is
 * caught up in one call, and a ManualClock drives the ticks exactly.
 *
 * `bucketMs` is also the breakers' bucket length: a window of `w` ms is
 * `ceil(w / bucketMs)` buckets, so its effective span is between
 * `w − bucketMs` and `w` depending on where in the current bucket we are.
 */
import { systemClock, type Clock } from '../../util/clock.ts';

/** Bucket length and tick period when none is given: fine enough for the 1s–60s windows configs use. */
export const DEFAULT_BUCKET_MS = 250;

export class SharedRotation {
  readonly bucketMs: number;
  readonly #clock: Clock;
  /** Called after each sync that crossed a boundary (open breakers poll their open period here). */
  readonly #tickListeners = new Set<() => void>();
  #members = 0;
  #timer: NodeJS.Timeout | null = null;
  /** Clock time of the next tick boundary. */
  #next: number;
  /** Tick boundaries passed so far. */
  #generation = 0;

  constructor(opts: { clock?: Clock; bucketMs?: number } = {}) {
    this.#clock = opts.clock ?? systemClock;
    this.bucketMs = opts.bucketMs ?? DEFAULT_BUCKET_MS;
    if (!(this.bucketMs > 0)) throw new RangeError(`bucketMs must be positive, got ${this.bucketMs}`);
    this.#next = this.#clock.now() + this.bucketMs;
  }

  get clock(): Clock {
    return this.#clock;
  }

  /** Tick boundaries the clock has passed, as of the last sync. */
  get generation(): number {
    return this.#generation;
  }

  /** Breakers attached (holding the timer alive). */
  get members(): number {
    return this.#members;
  }

  /** Tick listeners: one per breaker that is open on its own (not forced). */
  get subscribers(): number {
    return this.#tickListeners.size;
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

  /** Subscribe to ticks (each sync that crossed at least one boundary). Returns the unsubscribe. */
  onTick(fn: () => void): () => void {
    this.#tickListeners.add(fn);
    return () => {
      this.#tickListeners.delete(fn);
    };
  }

  /** Counts the tick boundaries passed and calls the listeners once if any was. Cheap when none was: one clock read, one compare. */
  sync(): void {
    const now = this.#clock.now();
    if (now < this.#next) return;
    const passed = Math.floor((now - this.#next) / this.bucketMs) + 1;
    this.#next += passed * this.bucketMs;
    this.#generation += passed;
    // Deleting from a Set while iterating it is safe: an open breaker that
    // turns half-open here unsubscribes itself.
    for (const fn of this.#tickListeners) fn();
  }
}
