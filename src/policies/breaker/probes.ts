/**
 * Half-open admission: up to `limit` probe requests at once, closed after
 * `successThreshold` probe successes in a row (any probe failure re-opens the
 * breaker, so "in a row" and "since half-open began" are the same count).
 *
 * Slots are plain counters because `admit()` hands out no token: a PROBE
 * admission is paid back by exactly one `record(..., probe = true)` or one
 * `cancelProbe()`. The counters are reset whenever the breaker becomes
 * half-open, so a slot lost by a caller can block probing for at most one
 * open period, never forever.
 * NOTE: the price of that reset is that a probe still running from an earlier
 * half-open period (slower than `openDuration`) reports into the current one
 * and frees a slot early; its outcome is still a fresh observation of the
 * upstream, and the release is clamped so the count never goes negative.
 */
export class ProbeGate {
  limit: number;
  successThreshold: number;
  #inFlight = 0;
  #successes = 0;

  constructor(limit: number, successThreshold: number) {
    this.limit = limit;
    this.successThreshold = successThreshold;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get successes(): number {
    return this.#successes;
  }

  tryAcquire(): boolean {
    if (this.#inFlight >= this.limit) return false;
    this.#inFlight++;
    return true;
  }

  release(): void {
    if (this.#inFlight > 0) this.#inFlight--;
  }

  /** One probe succeeded; true when that closes the breaker. */
  succeed(): boolean {
    return ++this.#successes >= this.successThreshold;
  }

  reset(): void {
    this.#inFlight = 0;
    this.#successes = 0;
  }
}
