/**
 * Injectable time source. Policies read time through a Clock so their state
 * machines can be unit-tested with a manual clock instead of real sleeps.
 */
export interface Clock {
  /** Monotonic milliseconds (may be fractional). */
  now(): number;
}

export const systemClock: Clock = { now: () => performance.now() };

/** A clock that only moves when told to: for tests of time-driven state. */
export class ManualClock implements Clock {
  #t: number;
  constructor(start = 0) {
    this.#t = start;
  }
  now(): number {
    return this.#t;
  }
  advance(ms: number): void {
    this.#t += ms;
  }
}
