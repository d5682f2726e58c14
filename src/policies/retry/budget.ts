/**
 * The retry budget (SPEC §4.2): retries are allowed while the retries seen in
 * the last `window` stay below max(minPerSecond × window, ratio × requests in
 * window). It counts requests and retries, not attempts: the first attempt of
 * a request is its request, every later one a retry.
 *
 * The counts live in a RollingCounter (util/rolling-counter.ts, the same one
 * the circuit breaker's window uses) of BUCKETS buckets, moved on lazily from
 * the clock when the budget is touched, so an idle budget costs nothing and
 * there is no timer to stop. The cost is granularity: the window slides one
 * bucket (window/10) at a time, so counts expire up to a tenth of a window
 * early.
 */
import type { BudgetConfig } from '../../config/types.ts';
import { systemClock, type Clock } from '../../util/clock.ts';
import { RollingCounter } from '../../util/rolling-counter.ts';

const BUCKETS = 10;
/** The counter's lanes. */
const REQUESTS = 0;
const RETRIES = 1;
/**
 * `ratio × requests` is a float product (0.1 × 30 = 3.0000000000000004); a
 * limit within EPSILON of a whole number is treated as that number, so such a
 * product does not let one retry more through.
 */
const EPSILON = 1e-9;

export class RetryBudget {
  #ratio: number;
  #floor: number;
  readonly #counts: RollingCounter;

  constructor(cfg: BudgetConfig, clock: Clock = systemClock) {
    this.#ratio = cfg.ratio;
    this.#floor = (cfg.minPerSecond * cfg.window) / 1000;
    this.#counts = new RollingCounter({ window: cfg.window, buckets: BUCKETS, lanes: 2, clock });
  }

  /** Counts one request (once per request, whether or not it is retried). */
  recordRequest(): void {
    this.#counts.add(REQUESTS);
  }

  /** true: the retry is allowed and now counts against the budget; false: the budget is spent. */
  tryAcquire(): boolean {
    if (this.#left() <= EPSILON) return false;
    this.#counts.add(RETRIES);
    return true;
  }

  /** How many more retries tryAcquire would allow right now (for the admin API). */
  remaining(): number {
    const left = this.#left();
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
    this.#ratio = cfg.ratio;
    this.#floor = (cfg.minPerSecond * cfg.window) / 1000;
    this.#counts.resize(cfg.window, BUCKETS);
  }

  /** The limit minus the retries spent, over the window ending now. */
  #left(): number {
    const retries = this.#counts.sum(RETRIES); // moves the window on
    const byRatio = this.#ratio * this.#counts.peek(REQUESTS);
    return (byRatio > this.#floor ? byRatio : this.#floor) - retries;
  }
}
