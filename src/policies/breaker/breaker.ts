/**
 * The circuit breaker of one upstream (SPEC §4.3), shared by every route to
 * it and kept across reloads by the state registry.
 *
 * Mechanism apart from policy (STYLE habit 7):
 * - the rolling window of attempt counts is a RollingCounter
 *   (util/rolling-counter.ts, the one the retry budget counts with too), cut
 *   into buckets of the shared rotation's length (`rotation.ts`);
 * - what opens the breaker is two small strategies (`trip-rules.ts`:
 *   consecutive failures, failure rate over the window);
 * - half-open admission and the success threshold are one more (`probes.ts`);
 * - observe mode is the reject code `admit()` returns, chosen at config time;
 * - the state machine below (closed / open / half-open, forced states) is
 *   ours: opossum's cannot express N probes, a success threshold, a
 *   consecutive trigger or a clock it does not own, and nothing of opossum
 *   is left (see README.md).
 *
 * Time: the open period ends when a Clock read says so, checked lazily in
 * admit()/record/state/isOpen/retryAfterMs/snapshot, so a ManualClock drives it
 * deterministically. So that the transition is also reported without traffic
 * (metrics, logs), an open breaker listens to the shared rotation's ticks and
 * makes the same check there: no timer of its own.
 *
 * Which records count where:
 * - closed: every record feeds the window and the trip rules;
 * - half-open: only probe records count (one success towards the threshold,
 *   one failure re-opens); a non-probe record is a request admitted before
 *   the breaker opened, finishing late: its outcome says nothing about the
 *   upstream *now* and is ignored, so it can neither close nor re-open it;
 * - open: nothing counts (in observe mode, requests that flow while "open"
 *   are exactly the ones enforce mode would have refused; counting them would
 *   make the dry run diverge from what enforcing would have done).
 * A probe record arriving after its half-open period ended frees its slot and
 * is otherwise treated like any record of the current state.
 */
import type { CircuitBreakerConfig, OutcomeKind } from '../../config/types.ts';
import { matches } from '../../pipeline/classify.ts';
import { NO_GRPC_STATUS } from '../../pipeline/grpc.ts';
import { systemClock, type Clock } from '../../util/clock.ts';
import { RollingCounter } from '../../util/rolling-counter.ts';
import { ProbeGate } from './probes.ts';
import { SharedRotation } from './rotation.ts';
import { ConsecutiveFailures, FailureRate } from './trip-rules.ts';

export { SharedRotation } from './rotation.ts';

export type BreakerState = 'closed' | 'open' | 'half-open';

/** What `admit()` answers; small integers so the request path compares numbers. */
export const ADMIT = { ALLOW: 0, PROBE: 1, REJECT: 2, OBSERVED_REJECT: 3 } as const;

export interface BreakerSnapshot {
  state: BreakerState;
  forced: 'open' | 'closed' | null;
  mode: 'enforce' | 'observe';
  window: { total: number; failures: number; successes: number };
  consecutiveFailures: number;
  halfOpen: { inFlight: number; successes: number };
  /** Epoch ms the open period ends; null unless open on its own (a forced open has no end). */
  openUntil: number | null;
}

export type TransitionListener = (from: BreakerState, to: BreakerState) => void;

const CLOSED = 0;
const OPEN = 1;
const HALF_OPEN = 2;
type StateCode = typeof CLOSED | typeof OPEN | typeof HALF_OPEN;
const NAMES: readonly BreakerState[] = ['closed', 'open', 'half-open'];

/** The window's lanes. */
const SUCCESSES = 0;
const FAILURES = 1;

/** How many buckets of `bucketMs` a window of `windowMs` is: enough to cover it. */
function bucketsFor(windowMs: number, bucketMs: number): number {
  return Math.max(1, Math.ceil(windowMs / bucketMs));
}

/**
 * Breakers built without a rotation share this one (system clock), so
 * production code never ends up with a timer per breaker by accident.
 */
let processRotation: SharedRotation | null = null;

export class CircuitBreaker {
  readonly name: string;
  readonly #clock: Clock;
  readonly #rotation: SharedRotation;
  #cfg: CircuitBreakerConfig;
  #state: StateCode = CLOSED;
  #forced: 'open' | 'closed' | null = null;
  /** Clock time the current open period ends (meaningful while open and not forced). */
  #openUntil = 0;
  /** ADMIT.REJECT, or ADMIT.OBSERVED_REJECT in observe mode. */
  #reject: 2 | 3;
  /** Attempt outcomes over `window`, in lanes SUCCESSES and FAILURES. */
  readonly #window: RollingCounter;
  readonly #consecutive: ConsecutiveFailures;
  readonly #rate: FailureRate;
  readonly #probes: ProbeGate;
  #listeners: readonly TransitionListener[] = [];
  #untick: (() => void) | null = null;
  readonly #onTick = (): void => this.#poll();
  #disposed = false;

  constructor(name: string, cfg: CircuitBreakerConfig, deps: { clock?: Clock; rotate?: SharedRotation } = {}) {
    this.name = name;
    this.#clock = deps.clock ?? deps.rotate?.clock ?? systemClock;
    // A breaker given only a clock (tests) gets a rotation on that same clock,
    // so its window ages with the clock that drives its state machine.
    this.#rotation =
      deps.rotate ??
      (deps.clock !== undefined
        ? new SharedRotation({ clock: deps.clock })
        : (processRotation ??= new SharedRotation()));
    this.#rotation.attach();
    this.#cfg = cfg;
    this.#reject = cfg.mode === 'observe' ? ADMIT.OBSERVED_REJECT : ADMIT.REJECT;
    // Every breaker's buckets are the rotation's length, so a reload that
    // changes `window` changes only their number and each count keeps its age.
    const buckets = bucketsFor(cfg.window, this.#rotation.bucketMs);
    this.#window = new RollingCounter({ window: buckets * this.#rotation.bucketMs, buckets, lanes: 2, clock: this.#clock });
    this.#consecutive = new ConsecutiveFailures(cfg.consecutiveFailures);
    this.#rate = new FailureRate(cfg.failureRate, cfg.minimumRequests);
    this.#probes = new ProbeGate(cfg.halfOpenRequests, cfg.successThreshold);
  }

  /**
   * Admission for one request. ALLOW (closed); PROBE (a half-open probe slot
   * was taken: the caller must later call `record(..., true)` once, or
   * `cancelProbe()`); REJECT (open, or every probe slot busy);
   * OBSERVED_REJECT (observe mode: would have rejected, the request proceeds
   * as ALLOW). Allocates nothing.
   */
  admit(): 0 | 1 | 2 | 3 {
    if (this.#state === CLOSED) return ADMIT.ALLOW;
    if (this.#state === OPEN) {
      if (this.#forced !== null || this.#clock.now() < this.#openUntil) return this.#reject;
      this.#toHalfOpen();
    }
    return this.#probes.tryAcquire() ? ADMIT.PROBE : this.#reject;
  }

  /**
   * Record one attempt's outcome (every attempt, retries included). `failOn`
   * decides whether it failed, through the one classifier's `matches`.
   * `probe` is true for exactly one record per PROBE admission (the request's
   * first attempt); its later attempts, if any, record with `probe = false`.
   */
  record(kind: OutcomeKind, status: number, probe: boolean, grpc = NO_GRPC_STATUS): void {
    const failed = matches(this.#cfg.failOn, kind, status, grpc);
    // An open period whose time is up ends first, so a probe record counts.
    this.#poll();
    if (probe) {
      this.#probes.release();
      if (this.#state === HALF_OPEN) {
        if (failed) this.#toOpen();
        else if (this.#probes.succeed()) this.#toClosed();
        return;
      }
    }
    if (this.#state !== CLOSED) return;
    const w = this.#window;
    w.add(failed ? FAILURES : SUCCESSES); // moves the window on: peek() below is current
    const run = this.#consecutive.record(failed);
    if (this.#forced !== null) return;
    const failures = w.peek(FAILURES);
    if (run || this.#rate.tripped(failures, failures + w.peek(SUCCESSES))) this.#toOpen();
  }

  /** A probe slot admitted but never used (e.g. the bulkhead refused the request): give it back. */
  cancelProbe(): void {
    this.#probes.release();
  }

  /** True while open in enforce mode (retry uses this to abandon remaining retries). */
  isOpen(): boolean {
    this.#poll();
    return this.#state === OPEN && this.#reject === ADMIT.REJECT;
  }

  /**
   * Ms until the open period ends (for Retry-After on circuit_open); 0 when
   * not open. A forced open has no end: it answers `openDuration` as a hint.
   */
  retryAfterMs(): number {
    this.#poll();
    if (this.#state !== OPEN) return 0;
    if (this.#forced !== null) return this.#cfg.openDuration;
    return Math.max(0, this.#openUntil - this.#clock.now());
  }

  get state(): BreakerState {
    this.#poll();
    return NAMES[this.#state]!;
  }

  /**
   * Admin override (SPEC §6): 'open' / 'closed' pin the state (a pinned
   * breaker still counts, never trips, never leaves the state on a timer)
   * until 'auto', which returns it to closed with empty windows.
   * NOTE: observe mode still never rejects, even when forced open: observe
   * means "rejects nothing"; switch the mode to enforce to shed traffic.
   */
  force(state: 'open' | 'closed' | 'auto'): void {
    if (state === 'auto') {
      this.#forced = null;
      this.#reset();
      this.#transition(CLOSED);
      return;
    }
    this.#forced = state;
    if (state === 'open') {
      this.#stopTicks(); // a pinned open period has no end to poll for
      this.#transition(OPEN);
    }
    else if (this.#state !== CLOSED) {
      this.#reset();
      this.#transition(CLOSED);
    }
  }

  /** Subscribe to transitions, called synchronously on each one; returns the unsubscribe. */
  onTransition(listener: TransitionListener): () => void {
    this.#listeners = [...this.#listeners, listener];
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    };
  }

  /**
   * New thresholds from a config reload. State, window counts, the run of
   * failures, probe counters and the current open period survive; a new
   * `openDuration` applies from the next opening. A changed `window` resizes
   * the rolling counter: every count younger than the new length keeps its
   * age (the bucket length is the rotation's, so only the bucket count
   * changes). Nothing trips here: the next record applies the new thresholds.
   */
  update(cfg: CircuitBreakerConfig): void {
    this.#cfg = cfg;
    this.#reject = cfg.mode === 'observe' ? ADMIT.OBSERVED_REJECT : ADMIT.REJECT;
    const buckets = bucketsFor(cfg.window, this.#rotation.bucketMs);
    this.#window.resize(buckets * this.#rotation.bucketMs, buckets);
    this.#consecutive.threshold = cfg.consecutiveFailures;
    this.#rate.percent = cfg.failureRate;
    this.#rate.minimumRequests = cfg.minimumRequests;
    this.#probes.limit = cfg.halfOpenRequests;
    this.#probes.successThreshold = cfg.successThreshold;
  }

  snapshot(): BreakerSnapshot {
    this.#poll();
    const w = this.#window;
    const failures = w.sum(FAILURES);
    const successes = w.peek(SUCCESSES);
    const timed = this.#state === OPEN && this.#forced === null;
    return {
      state: NAMES[this.#state]!,
      forced: this.#forced,
      mode: this.#cfg.mode,
      window: { total: failures + successes, failures, successes },
      consecutiveFailures: this.#consecutive.count,
      halfOpen: { inFlight: this.#probes.inFlight, successes: this.#probes.successes },
      // The Clock is monotonic; admin readers want wall time.
      openUntil: timed ? Math.round(Date.now() + (this.#openUntil - this.#clock.now())) : null,
    };
  }

  /** Stop every timer and listener this breaker owns. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#stopTicks();
    this.#listeners = [];
    this.#rotation.detach();
  }

  /** Ends an open period whose time is up. */
  #poll(): void {
    if (this.#state === OPEN && this.#forced === null && this.#clock.now() >= this.#openUntil) this.#toHalfOpen();
  }

  #toOpen(): void {
    this.#openUntil = this.#clock.now() + this.#cfg.openDuration;
    if (this.#untick === null && !this.#disposed) this.#untick = this.#rotation.onTick(this.#onTick);
    this.#transition(OPEN);
  }

  #toHalfOpen(): void {
    this.#stopTicks();
    this.#probes.reset();
    this.#transition(HALF_OPEN);
  }

  #toClosed(): void {
    this.#reset();
    this.#transition(CLOSED);
  }

  /** Fresh windows, no run of failures, no probe progress. */
  #reset(): void {
    this.#stopTicks();
    this.#window.clear();
    this.#consecutive.reset();
    this.#probes.reset();
  }

  #stopTicks(): void {
    if (this.#untick !== null) {
      this.#untick();
      this.#untick = null;
    }
  }

  #transition(to: StateCode): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    const ls = this.#listeners; // copy-on-write: a listener may unsubscribe
    for (let i = 0; i < ls.length; i++) ls[i]!(NAMES[from]!, NAMES[to]!);
  }
}
