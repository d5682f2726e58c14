/**
 * The rules that open a closed breaker (SPEC §4.3), as small strategies the
 * breaker consults after each closed-state record. Each is pure bookkeeping:
 * the breaker owns the state machine and decides what a trip means.
 */

/** Opens after `threshold` failed attempts in a row; `null` = trigger off (the run is still counted, for display). */
export class ConsecutiveFailures {
  threshold: number | null;
  #run = 0;

  constructor(threshold: number | null) {
    this.threshold = threshold;
  }

  get count(): number {
    return this.#run;
  }

  /** Counts one outcome; true when the run of failures reached the threshold. */
  record(failed: boolean): boolean {
    if (!failed) {
      this.#run = 0;
      return false;
    }
    this.#run++;
    return this.threshold !== null && this.#run >= this.threshold;
  }

  reset(): void {
    this.#run = 0;
  }
}

/**
 * Opens when the window holds at least `minimumRequests` attempts and the
 * failed share reached `percent`. Checked after every record, successes
 * included: a success can be the attempt that brings the window up to
 * `minimumRequests` with the rate already at or over the threshold.
 */
export class FailureRate {
  percent: number | null;
  minimumRequests: number;

  constructor(percent: number | null, minimumRequests: number) {
    this.percent = percent;
    this.minimumRequests = minimumRequests;
  }

  /** `failures` and `total` (failures + successes) are the window's counts now. */
  tripped(failures: number, total: number): boolean {
    if (this.percent === null || failures === 0) return false;
    // failures/total >= percent/100, without the division.
    return total >= this.minimumRequests && failures * 100 >= this.percent * total;
  }
}
