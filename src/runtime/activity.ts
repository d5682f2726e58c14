/** Counts a runtime's in-flight requests, so a replaced runtime's state is dropped only once it is idle. */
export class Activity {
  inflight = 0;
  #waiters: (() => void)[] = [];

  start(): void {
    this.inflight++;
  }

  end(): void {
    if (--this.inflight === 0 && this.#waiters.length > 0) {
      const w = this.#waiters;
      this.#waiters = [];
      for (const f of w) f();
    }
  }

  /** Resolves when nothing is in flight. */
  idle(): Promise<void> {
    return this.inflight === 0 ? Promise.resolve() : new Promise((r) => this.#waiters.push(r));
  }
}
