// The breaker's state machine (SPEC §4.3), driven by a ManualClock: every
// time-dependent step happens because the test moved the clock.
import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { CircuitBreakerConfig, ConditionSet } from '../../../../src/config/types.ts';
import { ADMIT, CircuitBreaker, SharedRotation } from '../../../../src/policies/breaker/breaker.ts';
import { ManualClock } from '../../../../src/util/clock.ts';

const ALL_5XX = Array.from({ length: 100 }, (_, i) => 500 + i);

function failOn(kinds: ('timeout' | 'connect-failure' | 'reset')[], statuses: number[]): ConditionSet {
  return {
    connectFailure: kinds.includes('connect-failure'),
    reset: kinds.includes('reset'),
    timeout: kinds.includes('timeout'),
    statuses: new Set(statuses),
    grpc: 0,
    source: [...kinds, ...statuses],
  };
}

/** SPEC §4.3 built-ins. */
function config(over: Partial<CircuitBreakerConfig> = {}): CircuitBreakerConfig {
  return {
    consecutiveFailures: null,
    failureRate: 50,
    minimumRequests: 20,
    window: 10_000,
    openDuration: 30_000,
    halfOpenRequests: 1,
    successThreshold: 1,
    failOn: failOn(['timeout', 'connect-failure', 'reset'], ALL_5XX),
    mode: 'enforce',
    ...over,
  };
}

const live: CircuitBreaker[] = [];
afterEach(() => {
  for (const b of live.splice(0)) b.dispose();
});

/** A breaker on a ManualClock with 100ms buckets, and the transitions it reported. */
function setup(over: Partial<CircuitBreakerConfig> = {}) {
  const clock = new ManualClock(1000);
  const rotation = new SharedRotation({ clock, bucketMs: 100 });
  const breaker = new CircuitBreaker('payments', config(over), { clock, rotate: rotation });
  live.push(breaker);
  const transitions: string[] = [];
  breaker.onTransition((from, to) => transitions.push(`${from}->${to}`));
  return { clock, rotation, breaker, transitions };
}

const fail = (b: CircuitBreaker, n = 1, probe = false) => {
  for (let i = 0; i < n; i++) b.record('5xx', 503, probe);
};
const succeed = (b: CircuitBreaker, n = 1, probe = false) => {
  for (let i = 0; i < n; i++) b.record('success', 200, probe);
};

/** Open a breaker set up with `consecutiveFailures: 3`, then let the built-in `openDuration` pass. */
function toHalfOpen(s: ReturnType<typeof setup>): void {
  fail(s.breaker, 3);
  assert.equal(s.breaker.state, 'open');
  s.clock.advance(30_000);
  assert.equal(s.breaker.state, 'half-open');
}

describe('closed → open', () => {
  test('opens when consecutiveFailures attempts fail in a row', () => {
    const { breaker, transitions } = setup({ consecutiveFailures: 3, failureRate: null });
    fail(breaker, 2);
    assert.equal(breaker.admit(), ADMIT.ALLOW);
    fail(breaker);
    assert.equal(breaker.state, 'open');
    assert.equal(breaker.admit(), ADMIT.REJECT);
    assert.equal(breaker.isOpen(), true);
    assert.deepEqual(transitions, ['closed->open']);
  });

  test('a success in between breaks the run of consecutive failures', () => {
    const { breaker } = setup({ consecutiveFailures: 3, failureRate: null });
    fail(breaker, 2);
    succeed(breaker);
    fail(breaker, 2);
    assert.equal(breaker.state, 'closed');
    assert.equal(breaker.snapshot().consecutiveFailures, 2);
    fail(breaker);
    assert.equal(breaker.state, 'open');
  });

  test('the rate trigger waits for minimumRequests attempts, then opens at the threshold', () => {
    const { breaker } = setup({ failureRate: 50, minimumRequests: 10 });
    fail(breaker, 9); // 100% failed, but only 9 seen
    assert.equal(breaker.state, 'closed');
    fail(breaker);
    assert.equal(breaker.state, 'open');
  });

  test('the rate trigger opens when the failed share reaches (not only exceeds) failureRate', () => {
    const { breaker } = setup({ failureRate: 50, minimumRequests: 4 });
    succeed(breaker, 2);
    fail(breaker);
    assert.equal(breaker.state, 'closed'); // 3 seen: below minimumRequests
    fail(breaker); // 2 of 4 = 50%
    assert.equal(breaker.state, 'open');
  });

  test('the rate trigger stays closed below the threshold however many attempts are seen', () => {
    const { breaker } = setup({ failureRate: 50, minimumRequests: 4 });
    for (let i = 0; i < 50; i++) {
      succeed(breaker, 2);
      fail(breaker);
    }
    assert.equal(breaker.state, 'closed');
    assert.deepEqual(breaker.snapshot().window, { total: 150, failures: 50, successes: 100 });
  });

  test('the success that brings the window up to minimumRequests opens it if the rate is already over', () => {
    const { breaker } = setup({ failureRate: 50, minimumRequests: 4 });
    fail(breaker, 3);
    assert.equal(breaker.state, 'closed');
    succeed(breaker); // 3 of 4 failed
    assert.equal(breaker.state, 'open');
  });

  test('failures older than the window age out and no longer count towards the rate', () => {
    const { breaker, clock } = setup({ failureRate: 50, minimumRequests: 4, window: 1000 });
    fail(breaker, 3);
    assert.equal(breaker.snapshot().window.failures, 3);
    clock.advance(600);
    assert.equal(breaker.snapshot().window.failures, 3, 'still inside the window');
    clock.advance(500);
    assert.deepEqual(breaker.snapshot().window, { total: 0, failures: 0, successes: 0 });
    fail(breaker); // 1 of 1: would have been 4 of 4 without the roll-off
    succeed(breaker, 3);
    assert.equal(breaker.state, 'closed');
  });

  test('a window that is not a whole number of buckets is covered by whole buckets', () => {
    const { breaker, clock } = setup({ failureRate: null, window: 1050 }); // 11 buckets of 100ms
    fail(breaker); // at t = 1000, the start of a bucket
    clock.advance(1099);
    assert.equal(breaker.snapshot().window.failures, 1);
    clock.advance(1);
    assert.equal(breaker.snapshot().window.failures, 0);
  });

  test('either trigger may be off: with both off nothing opens it', () => {
    const { breaker } = setup({ failureRate: null, consecutiveFailures: null, minimumRequests: 1 });
    fail(breaker, 100);
    assert.equal(breaker.state, 'closed');
    assert.equal(breaker.snapshot().consecutiveFailures, 100);
  });
});

describe('failOn', () => {
  test('4xx responses are not failures unless listed', () => {
    const { breaker } = setup({ consecutiveFailures: 2, failureRate: null });
    for (const status of [400, 404, 429, 499]) breaker.record('4xx', status, false);
    assert.equal(breaker.state, 'closed');
    assert.equal(breaker.snapshot().window.failures, 0);
    assert.equal(breaker.snapshot().window.successes, 4);
  });

  test('a listed 429 counts as a failure, while other 4xx still do not', () => {
    const { breaker } = setup({ consecutiveFailures: 2, failureRate: null, failOn: failOn([], [429, 503]) });
    breaker.record('4xx', 404, false);
    breaker.record('4xx', 429, false);
    assert.equal(breaker.snapshot().consecutiveFailures, 1);
    breaker.record('4xx', 429, false);
    assert.equal(breaker.state, 'open');
  });

  test('explicit statuses replace the 5xx default: an unlisted 500 is not a failure', () => {
    const { breaker } = setup({ consecutiveFailures: 1, failureRate: null, failOn: failOn([], [502, 503, 504]) });
    breaker.record('5xx', 500, false);
    assert.equal(breaker.state, 'closed');
    breaker.record('5xx', 502, false);
    assert.equal(breaker.state, 'open');
  });

  test('timeout, connect_failure and reset count only when their flag is set', () => {
    const { breaker } = setup({ consecutiveFailures: 1, failureRate: null, failOn: failOn(['reset'], []) });
    breaker.record('timeout', 0, false);
    breaker.record('connect_failure', 0, false);
    assert.equal(breaker.state, 'closed');
    breaker.record('reset', 0, false);
    assert.equal(breaker.state, 'open');
  });
});

describe('open → half-open → closed / open', () => {
  test('stays open for openDuration, then lets exactly halfOpenRequests probes through at once', () => {
    const s = setup({ consecutiveFailures: 3, halfOpenRequests: 2 });
    fail(s.breaker, 3);
    s.clock.advance(29_999);
    assert.equal(s.breaker.admit(), ADMIT.REJECT);
    s.clock.advance(1);
    assert.equal(s.breaker.admit(), ADMIT.PROBE);
    assert.equal(s.breaker.admit(), ADMIT.PROBE);
    assert.equal(s.breaker.admit(), ADMIT.REJECT, 'both probe slots are taken');
    assert.equal(s.breaker.isOpen(), false, 'half-open is not open: retries of probes may go on');
    assert.deepEqual(s.breaker.snapshot().halfOpen, { inFlight: 2, successes: 0 });
    assert.deepEqual(s.transitions, ['closed->open', 'open->half-open']);
  });

  test('a cancelled probe gives its slot back', () => {
    const s = setup({ consecutiveFailures: 3 });
    toHalfOpen(s);
    assert.equal(s.breaker.admit(), ADMIT.PROBE);
    assert.equal(s.breaker.admit(), ADMIT.REJECT);
    s.breaker.cancelProbe();
    assert.equal(s.breaker.admit(), ADMIT.PROBE);
  });

  test('successThreshold probe successes close it, with fresh windows', () => {
    const s = setup({ consecutiveFailures: 3, successThreshold: 2, halfOpenRequests: 1 });
    succeed(s.breaker, 5);
    toHalfOpen(s);
    assert.equal(s.breaker.admit(), ADMIT.PROBE);
    succeed(s.breaker, 1, true);
    assert.equal(s.breaker.state, 'half-open', 'one success of two');
    assert.equal(s.breaker.admit(), ADMIT.PROBE, 'the finished probe freed its slot');
    succeed(s.breaker, 1, true);
    assert.equal(s.breaker.state, 'closed');
    const snap = s.breaker.snapshot();
    assert.deepEqual(snap.window, { total: 0, failures: 0, successes: 0 });
    assert.equal(snap.consecutiveFailures, 0);
    assert.equal(snap.openUntil, null);
    assert.deepEqual(s.transitions, ['closed->open', 'open->half-open', 'half-open->closed']);
  });

  test('a probe failure re-opens it for another full openDuration', () => {
    const s = setup({ consecutiveFailures: 3, successThreshold: 3 });
    toHalfOpen(s);
    assert.equal(s.breaker.admit(), ADMIT.PROBE);
    succeed(s.breaker, 1, true);
    assert.equal(s.breaker.admit(), ADMIT.PROBE);
    fail(s.breaker, 1, true);
    assert.equal(s.breaker.state, 'open');
    assert.equal(s.breaker.retryAfterMs(), 30_000);
    s.clock.advance(29_000);
    assert.equal(s.breaker.admit(), ADMIT.REJECT);
    s.clock.advance(1000);
    assert.equal(s.breaker.admit(), ADMIT.PROBE);
    assert.equal(s.breaker.snapshot().halfOpen.successes, 0, 'progress from the earlier half-open period is gone');
    assert.deepEqual(s.transitions, ['closed->open', 'open->half-open', 'half-open->open', 'open->half-open']);
  });

  test('late non-probe records while half-open or open change nothing', () => {
    const s = setup({ consecutiveFailures: 3 });
    fail(s.breaker, 3);
    fail(s.breaker, 5); // requests admitted before it opened, finishing now
    succeed(s.breaker, 5);
    assert.equal(s.breaker.state, 'open');
    s.clock.advance(30_000);
    assert.equal(s.breaker.admit(), ADMIT.PROBE);
    fail(s.breaker, 5);
    succeed(s.breaker, 5);
    assert.equal(s.breaker.state, 'half-open');
    assert.deepEqual(s.breaker.snapshot().halfOpen, { inFlight: 1, successes: 0 });
    succeed(s.breaker, 1, true);
    assert.equal(s.breaker.state, 'closed');
  });

  test('a probe that records after its half-open period ended does not drive the count negative', () => {
    const s = setup({ consecutiveFailures: 3, halfOpenRequests: 2 });
    toHalfOpen(s);
    s.breaker.admit();
    s.breaker.admit();
    fail(s.breaker, 1, true); // re-opens
    succeed(s.breaker, 1, true); // the other probe, late: ignored, slot released
    assert.equal(s.breaker.state, 'open');
    s.breaker.cancelProbe(); // a spurious extra release
    s.clock.advance(30_000);
    assert.equal(s.breaker.admit(), ADMIT.PROBE);
    assert.equal(s.breaker.admit(), ADMIT.PROBE);
    assert.equal(s.breaker.admit(), ADMIT.REJECT);
  });

  test('retryAfterMs counts down the open period and is 0 when not open', () => {
    const s = setup({ consecutiveFailures: 1, openDuration: 10_000 });
    assert.equal(s.breaker.retryAfterMs(), 0);
    fail(s.breaker);
    assert.equal(s.breaker.retryAfterMs(), 10_000);
    s.clock.advance(2500);
    assert.equal(s.breaker.retryAfterMs(), 7500);
    const until = s.breaker.snapshot().openUntil;
    assert.ok(until !== null && Math.abs(until - (Date.now() + 7500)) < 1000, 'openUntil is wall-clock ms');
    s.clock.advance(7500);
    assert.equal(s.breaker.retryAfterMs(), 0);
    assert.equal(s.breaker.state, 'half-open');
  });
});

describe('observe mode', () => {
  test('never rejects, but computes and reports every transition', () => {
    const s = setup({ consecutiveFailures: 3, mode: 'observe' });
    fail(s.breaker, 3);
    assert.equal(s.breaker.state, 'open');
    assert.equal(s.breaker.admit(), ADMIT.OBSERVED_REJECT);
    assert.equal(s.breaker.isOpen(), false, 'retries are not abandoned in a dry run');
    s.clock.advance(30_000);
    assert.equal(s.breaker.admit(), ADMIT.PROBE);
    assert.equal(s.breaker.admit(), ADMIT.OBSERVED_REJECT, 'probe slots busy');
    succeed(s.breaker, 1, true);
    assert.equal(s.breaker.state, 'closed');
    assert.deepEqual(s.transitions, ['closed->open', 'open->half-open', 'half-open->closed']);
    assert.equal(s.breaker.snapshot().mode, 'observe');
  });

  test('requests that flow while observing "open" do not feed the window', () => {
    const s = setup({ consecutiveFailures: 3, mode: 'observe' });
    fail(s.breaker, 3);
    s.breaker.admit();
    succeed(s.breaker, 10);
    assert.equal(s.breaker.state, 'open');
    assert.equal(s.breaker.snapshot().window.total, 3);
  });
});

describe('force', () => {
  test('force open rejects until auto, with no end to the open period', () => {
    const s = setup({ consecutiveFailures: 3 });
    s.breaker.force('open');
    assert.equal(s.breaker.admit(), ADMIT.REJECT);
    s.clock.advance(10 * 30_000);
    assert.equal(s.breaker.state, 'open', 'a pinned open never turns half-open');
    assert.equal(s.breaker.retryAfterMs(), 30_000, 'Retry-After hint: one openDuration');
    assert.deepEqual(
      { forced: s.breaker.snapshot().forced, openUntil: s.breaker.snapshot().openUntil },
      { forced: 'open', openUntil: null },
    );
    s.breaker.force('auto');
    assert.equal(s.breaker.state, 'closed');
    assert.equal(s.breaker.admit(), ADMIT.ALLOW);
    assert.deepEqual(s.transitions, ['closed->open', 'open->closed']);
  });

  test('force closed admits everything and never trips, while still counting', () => {
    const s = setup({ consecutiveFailures: 3 });
    fail(s.breaker, 3);
    s.breaker.force('closed');
    assert.equal(s.breaker.state, 'closed');
    fail(s.breaker, 10);
    assert.equal(s.breaker.state, 'closed');
    assert.equal(s.breaker.admit(), ADMIT.ALLOW);
    assert.equal(s.breaker.snapshot().window.failures, 10);
    assert.equal(s.breaker.snapshot().forced, 'closed');
  });

  test('auto returns it to closed with empty windows', () => {
    const s = setup({ consecutiveFailures: 3 });
    s.breaker.force('closed');
    fail(s.breaker, 10);
    s.breaker.force('auto');
    const snap = s.breaker.snapshot();
    assert.deepEqual(
      { state: snap.state, forced: snap.forced, window: snap.window, run: snap.consecutiveFailures },
      { state: 'closed', forced: null, window: { total: 0, failures: 0, successes: 0 }, run: 0 },
    );
    fail(s.breaker, 3);
    assert.equal(s.breaker.state, 'open', 'trips again once released');
  });

  test('auto on a breaker that opened on its own closes it at once', () => {
    const s = setup({ consecutiveFailures: 1 });
    fail(s.breaker);
    s.breaker.force('auto');
    assert.equal(s.breaker.admit(), ADMIT.ALLOW);
    assert.deepEqual(s.transitions, ['closed->open', 'open->closed']);
  });
});

describe('update (config reload)', () => {
  test('an open breaker stays open, with its open period, across an update that rebuilds the window', () => {
    const s = setup({ consecutiveFailures: 3, window: 1000 });
    succeed(s.breaker, 4);
    fail(s.breaker, 3);
    s.clock.advance(10_000);
    s.breaker.update(config({ consecutiveFailures: 5, window: 5000, openDuration: 60_000 }));
    assert.equal(s.breaker.state, 'open');
    assert.equal(s.breaker.admit(), ADMIT.REJECT);
    assert.equal(s.breaker.retryAfterMs(), 20_000, 'the running open period keeps its end');
    assert.deepEqual(s.transitions, ['closed->open']);
    s.clock.advance(20_000);
    assert.equal(s.breaker.admit(), ADMIT.PROBE);
    fail(s.breaker, 1, true);
    assert.equal(s.breaker.retryAfterMs(), 60_000, 'the next open period uses the new openDuration');
  });

  test('window counts and the run of failures survive, and new thresholds apply from the next record', () => {
    const s = setup({ consecutiveFailures: 5, failureRate: null, window: 1000 });
    fail(s.breaker, 3);
    s.breaker.update(config({ consecutiveFailures: 4, failureRate: null, window: 1000 }));
    assert.equal(s.breaker.snapshot().consecutiveFailures, 3);
    assert.equal(s.breaker.state, 'closed');
    fail(s.breaker);
    assert.equal(s.breaker.state, 'open', '4 in a row under the new threshold');
  });

  test('a longer window carries each count at its age: it ages out on time', () => {
    const s = setup({ failureRate: null, window: 1000 });
    fail(s.breaker, 2); // at t0
    s.clock.advance(500);
    succeed(s.breaker, 3); // at t0+500
    s.breaker.update(config({ failureRate: null, window: 2000 }));
    assert.deepEqual(s.breaker.snapshot().window, { total: 5, failures: 2, successes: 3 });
    s.clock.advance(1200); // t0+1700: inside the new 2s window
    assert.deepEqual(s.breaker.snapshot().window, { total: 5, failures: 2, successes: 3 });
    s.clock.advance(400); // t0+2100: the failures leave, the successes stay
    assert.deepEqual(s.breaker.snapshot().window, { total: 3, failures: 0, successes: 3 });
  });

  test('a shorter window drops what is older than its new length', () => {
    const s = setup({ failureRate: null, window: 2000 });
    fail(s.breaker, 2);
    s.clock.advance(800);
    succeed(s.breaker, 1);
    s.breaker.update(config({ failureRate: null, window: 500 }));
    assert.deepEqual(s.breaker.snapshot().window, { total: 1, failures: 0, successes: 1 });
  });

  test('switching to observe mode stops rejections of an open breaker without closing it', () => {
    const s = setup({ consecutiveFailures: 1 });
    fail(s.breaker);
    s.breaker.update(config({ consecutiveFailures: 1, mode: 'observe' }));
    assert.equal(s.breaker.admit(), ADMIT.OBSERVED_REJECT);
    assert.equal(s.breaker.state, 'open');
    assert.equal(s.breaker.isOpen(), false);
  });

  test('more half-open probe slots apply in the current half-open period', () => {
    const s = setup({ consecutiveFailures: 3, halfOpenRequests: 1 });
    toHalfOpen(s);
    assert.equal(s.breaker.admit(), ADMIT.PROBE);
    assert.equal(s.breaker.admit(), ADMIT.REJECT);
    s.breaker.update(config({ consecutiveFailures: 3, halfOpenRequests: 3 }));
    assert.equal(s.breaker.admit(), ADMIT.PROBE);
    assert.equal(s.breaker.admit(), ADMIT.PROBE);
    assert.equal(s.breaker.admit(), ADMIT.REJECT);
  });
});

describe('transition listeners', () => {
  test('are called synchronously with from and to, and stop after their dispose function is called', () => {
    const s = setup({ consecutiveFailures: 1 });
    const seen: string[] = [];
    const off = s.breaker.onTransition((from, to) => seen.push(`${from}->${to}:${s.breaker.state}`));
    fail(s.breaker);
    assert.deepEqual(seen, ['closed->open:open'], 'called before record() returned, state already updated');
    off();
    off(); // idempotent
    s.breaker.force('auto');
    assert.deepEqual(seen, ['closed->open:open']);
    assert.deepEqual(s.transitions, ['closed->open', 'open->closed'], 'other listeners unaffected');
  });

  test('a listener may unsubscribe itself while being called without skipping the others', () => {
    const s = setup({ consecutiveFailures: 1 });
    const order: string[] = [];
    const off = s.breaker.onTransition(() => {
      order.push('first');
      off();
    });
    s.breaker.onTransition(() => order.push('second'));
    fail(s.breaker);
    assert.deepEqual(order, ['first', 'second']);
  });
});
