/**
 * The retry budget (SPEC §4.2): retries are allowed while the retries seen in
 * the last `window` stay below max(minPerSecond × window, ratio × requests in
 * window). It counts requests and retries, not attempts: the first attempt of
 * a request is its request, every later one a retry.
 *
 * The window is a ring of BUCKETS buckets rotated lazily from the clock when
 * the budget is touched, so an idle budget costs nothing and there is no timer
 * to stop. The cost is granularity: the window slides one bucket (window/10)
 * at a time, so counts expire up to a tenth of a window early.
 */
import type { BudgetConfig } from '../../config/types.ts';
import { systemClock, type Clock } from '../../util/clock.ts';

const BUCKETS = 10;
/**
 * `ratio × requests` is a float product (0.1 × 30 = 3.0000000000000004); a
 * limit within EPSILON of a whole number is treated as that number, so such a
 * product does not let one retry more through.
 */
const EPSILON = 1e-9;

export class RetryBudget {
  readonly #clock: Clock;
  #ratio: number;
  #floor: number;
  #bucketMs: number;
  readonly #requests = new Float64Array(BUCKETS);
  readonly #retries = new Float64Array(BUCKETS);
  #totalRequests = 0;
  #totalRetries = 0;
  /** Absolute index (time / bucketMs) of the bucket now being filled. */
  #epoch: number;

  constructor(cfg: BudgetConfig, clock: Clock = systemClock) {
    this.#clock = clock;
    this.#ratio = cfg.ratio;
    this.#floor = (cfg.minPerSecond * cfg.window) / 1000;
    this.#bucketMs = bucketWidth(cfg.window);
    this.#epoch = Math.floor(clock.now() / this.#bucketMs);
  }

  /** Counts one request (once per request, whether or not it is retried). */
  recordRequest(): void {
    this.#rotate();
    this.#requests[this.#epoch % BUCKETS]! += 1;
    this.#totalRequests += 1;
  }

  /** true: the retry is allowed and now counts against the budget; false: the budget is spent. */
  tryAcquire(): boolean {
    this.#rotate();
    if (this.#limit() - this.#totalRetries <= EPSILON) return false;
    this.#retries[this.#epoch % BUCKETS]! += 1;
    this.#totalRetries += 1;
    return true;
  }

  /** How many more retries tryAcquire would allow right now (for the admin API). */
  remaining(): number {
    this.#rotate();
    const left = this.#limit() - this.#totalRetries;
    // Retries are allowed while the count stays *below* the limit: with a
    // limit of 2.5 and none spent, three (0, 1, 2) still go through.
    return left <= EPSILON ? 0 : Math.ceil(left - EPSILON);
  }

  /**
   * New thresholds from a reload, keeping what was counted. A new window
   * length re-times the buckets: the ones already filled are read as the most
   * recent buckets of the new width, so the totals carry over unchanged and
   * then expire at the new pace (at most one new window later).
   */
  update(cfg: BudgetConfig): void {
    this.#rotate();
    this.#ratio = cfg.ratio;
    this.#floor = (cfg.minPerSecond * cfg.window) / 1000;
    const width = bucketWidth(cfg.window);
    if (width === this.#bucketMs) return;
    const epoch = Math.floor(this.#clock.now() / width);
    const shift = (((epoch - this.#epoch) % BUCKETS) + BUCKETS) % BUCKETS;
    if (shift !== 0) {
      rotateRing(this.#requests, shift);
      rotateRing(this.#retries, shift);
    }
    this.#bucketMs = width;
    this.#epoch = epoch;
  }

  #limit(): number {
    const byRatio = this.#ratio * this.#totalRequests;
    return byRatio > this.#floor ? byRatio : this.#floor;
  }

  /** Empties the buckets that have fallen out of the window since the last call. */
  #rotate(): void {
    const epoch = Math.floor(this.#clock.now() / this.#bucketMs);
    const gap = epoch - this.#epoch;
    if (gap <= 0) return; // same bucket (or a clock that stepped back: stay put)
    if (gap >= BUCKETS) {
      this.#requests.fill(0);
      this.#retries.fill(0);
      this.#totalRequests = 0;
      this.#totalRetries = 0;
    } else {
      for (let e = this.#epoch + 1; e <= epoch; e++) {
        const i = e % BUCKETS;
        this.#totalRequests -= this.#requests[i]!;
        this.#totalRetries -= this.#retries[i]!;
        this.#requests[i] = 0;
        this.#retries[i] = 0;
      }
    }
    this.#epoch = epoch;
  }
}

function bucketWidth(window: number): number {
  // A zero window would divide by zero; a 1 µs bucket remembers nothing, as asked.
  return window > 0 ? window / BUCKETS : 0.001;
}

/** Moves every slot `shift` places forward in the ring (rare: only on a reload that changes the window). */
function rotateRing(ring: Float64Array, shift: number): void {
  const copy = ring.slice();
  for (let i = 0; i < BUCKETS; i++) ring[(i + shift) % BUCKETS] = copy[i]!;
}
