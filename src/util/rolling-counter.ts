/**
 * Counts over a rolling time window: the one implementation behind the
 * circuit breaker's failure-rate window (SPEC §4.3) and the retry budget
 * (SPEC §4.2).
 *
 * The window is a ring of `buckets` equal time slices, each holding one count
 * per lane (the breaker counts successes and failures, the budget requests
 * and retries). A running total per lane makes `add` and `sum` O(1), and
 * nothing is allocated after construction.
 *
 * The ring moves on lazily, from a Clock read, whenever it is touched: bucket
 * `e` covers clock times [e·w, (e+1)·w) for bucket width w = window/buckets,
 * and a count stays in the sums while the current bucket is less than
 * `buckets` ahead of its own. So a count leaves the window between
 * `window − w` and `window` after it was added: the price of buckets. There
 * is no timer: an idle counter costs nothing, and coming back after a gap
 * empties at most `buckets` slices (a gap of a window or more clears the ring
 * at once), so the work is bounded whatever the gap.
 *
 * The clock is expected to be monotonic (performance.now()). If it steps
 * back by less than a window, the ring stays where it was and new counts go
 * into the newest bucket, so nothing is lost or expires early; a step back of
 * a window or more is treated like a gap of that length: the ring starts over.
 */
import type { Clock } from './clock.ts';

export interface RollingCounterOptions {
  /** The window's length in clock ms; a window of 0 (or less) remembers nothing. */
  readonly window: number;
  /** Time slices the window is cut into (a positive integer). */
  readonly buckets: number;
  /** Independent counts kept per slice (a positive integer); lanes are numbered from 0. */
  readonly lanes: number;
  readonly clock: Clock;
}

/** Bucket width for a window that remembers nothing: 1 µs. */
const EMPTY_WIDTH = 0.001;

export class RollingCounter {
  readonly #clock: Clock;
  readonly #lanes: number;
  #window: number;
  #buckets: number;
  /** Bucket width in clock ms. */
  #width: number;
  /** buckets × lanes counts; the slice of bucket b is [b·lanes, (b+1)·lanes). */
  #slots: Float64Array;
  /** Per lane: the sum over every bucket. */
  readonly #totals: Float64Array;
  /** Ring index of the bucket being filled. */
  #head = 0;
  /** Absolute index (clock time / width) of the bucket being filled. */
  #epoch: number;

  constructor(opts: RollingCounterOptions) {
    const { buckets, lanes } = opts;
    if (!Number.isInteger(buckets) || buckets < 1) throw new RangeError(`buckets must be a positive integer, got ${buckets}`);
    if (!Number.isInteger(lanes) || lanes < 1) throw new RangeError(`lanes must be a positive integer, got ${lanes}`);
    this.#clock = opts.clock;
    this.#lanes = lanes;
    this.#window = opts.window;
    this.#buckets = buckets;
    this.#width = widthOf(opts.window, buckets);
    this.#slots = new Float64Array(buckets * lanes);
    this.#totals = new Float64Array(lanes);
    this.#epoch = Math.floor(this.#clock.now() / this.#width);
  }

  get window(): number {
    return this.#window;
  }

  get buckets(): number {
    return this.#buckets;
  }

  /** Width of one bucket in clock ms. */
  get bucketMs(): number {
    return this.#width;
  }

  /** Adds `n` (default 1) to `lane` now. */
  add(lane: number, n = 1): void {
    this.#advance();
    this.#slots[this.#head * this.#lanes + lane]! += n;
    this.#totals[lane]! += n;
  }

  /** The sum of `lane` over the window ending now. */
  sum(lane: number): number {
    this.#advance();
    return this.#totals[lane]!;
  }

  /**
   * The sum of `lane` as of the last `add` or `sum`, without reading the
   * clock: for a read that immediately follows one of those (the breaker
   * checks its rate right after recording).
   */
  peek(lane: number): number {
    return this.#totals[lane]!;
  }

  /** Forgets every count. */
  clear(): void {
    this.#slots.fill(0);
    this.#totals.fill(0);
  }

  /**
   * A new window length and bucket count (a config reload). The newest
   * buckets are kept in order, as the newest buckets of the new ring, as many
   * as it holds; older ones are dropped. With an unchanged bucket width every
   * kept count keeps its age and leaves on time; with a new width each keeps
   * its place in the ring, so the totals carry over and then expire at the new
   * pace. Allocates: for reloads, not for the request path.
   */
  resize(window: number, buckets: number): void {
    if (!Number.isInteger(buckets) || buckets < 1) throw new RangeError(`buckets must be a positive integer, got ${buckets}`);
    const width = widthOf(window, buckets);
    if (buckets === this.#buckets && width === this.#width) {
      this.#window = window;
      return;
    }
    this.#advance();
    const lanes = this.#lanes;
    const from = this.#slots;
    const to = new Float64Array(buckets * lanes);
    const keep = Math.min(buckets, this.#buckets);
    this.#totals.fill(0);
    // The k-th newest old bucket becomes the k-th newest new one; the new
    // head is slot keep − 1, so the kept buckets fill slots keep − 1 … 0.
    for (let k = 0; k < keep; k++) {
      const src = ((this.#head - k + this.#buckets) % this.#buckets) * lanes;
      const dst = (keep - 1 - k) * lanes;
      for (let l = 0; l < lanes; l++) {
        const v = from[src + l]!;
        to[dst + l] = v;
        this.#totals[l]! += v;
      }
    }
    this.#window = window;
    this.#buckets = buckets;
    this.#width = width;
    this.#slots = to;
    this.#head = keep - 1;
    this.#epoch = Math.floor(this.#clock.now() / width);
  }

  /** Empties the buckets that have left the window since the last call. */
  #advance(): void {
    const epoch = Math.floor(this.#clock.now() / this.#width);
    const gap = epoch - this.#epoch;
    if (gap === 0) return;
    const buckets = this.#buckets;
    if (gap >= buckets || gap <= -buckets) {
      // Idle for a window or more (or the clock jumped back as far): start over.
      this.#slots.fill(0);
      this.#totals.fill(0);
      this.#epoch = epoch;
      return;
    }
    if (gap < 0) return; // a small step back: stay on the newest bucket
    const lanes = this.#lanes;
    const slots = this.#slots;
    const totals = this.#totals;
    let head = this.#head;
    for (let i = 0; i < gap; i++) {
      head = head + 1 === buckets ? 0 : head + 1;
      const base = head * lanes;
      for (let l = 0; l < lanes; l++) {
        totals[l]! -= slots[base + l]!;
        slots[base + l] = 0;
      }
    }
    this.#head = head;
    this.#epoch = epoch;
  }
}

function widthOf(window: number, buckets: number): number {
  return window > 0 ? window / buckets : EMPTY_WIDTH;
}
