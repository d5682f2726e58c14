// The rolling counter behind the breaker's window and the retry budget,
// driven by a ManualClock: every expiry happens because the test moved it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManualClock } from '../../../src/util/clock.ts';
import { RollingCounter } from '../../../src/util/rolling-counter.ts';

const A = 0;
const B = 1;

/** A 1s window of ten 100ms buckets, two lanes, on a clock starting at `start`. */
function setup(start = 0, window = 1000, buckets = 10) {
  const clock = new ManualClock(start);
  const counter = new RollingCounter({ window, buckets, lanes: 2, clock });
  return { clock, counter };
}

const sums = (c: RollingCounter) => [c.sum(A), c.sum(B)];

describe('RollingCounter', () => {
  test('sums each lane over the window, and peek() answers the same right after an add', () => {
    const { clock, counter } = setup();
    counter.add(A);
    counter.add(A, 2);
    clock.advance(450);
    counter.add(B);
    assert.equal(counter.peek(A), 3);
    assert.deepEqual(sums(counter), [3, 1]);
    assert.equal(counter.peek(B), 1);
    assert.equal(counter.bucketMs, 100);
  });

  test('counts leave bucket by bucket, oldest first, when their bucket is a window old', () => {
    const { clock, counter } = setup();
    counter.add(A); // bucket [0, 100)
    clock.advance(350);
    counter.add(B); // bucket [300, 400)
    clock.advance(649); // t = 999
    assert.deepEqual(sums(counter), [1, 1]);
    clock.advance(1); // t = 1000: the first bucket has left
    assert.deepEqual(sums(counter), [0, 1]);
    clock.advance(299); // t = 1299
    assert.deepEqual(sums(counter), [0, 1]);
    clock.advance(1); // t = 1300
    assert.deepEqual(sums(counter), [0, 0]);
  });

  test('a count stays between window − bucket and window after it was added', () => {
    const { clock, counter } = setup(50);
    counter.add(A); // at t = 50, in bucket [0, 100)
    clock.advance(899); // 899 ms later
    assert.equal(counter.sum(A), 1);
    clock.advance(1); // 900 ms later, t = 950: still in the window
    assert.equal(counter.sum(A), 1);
    clock.advance(50); // 950 ms later, t = 1000
    assert.equal(counter.sum(A), 0);
  });

  test('an idle gap of a window or more empties it; a shorter one drops only what expired', () => {
    const { clock, counter } = setup();
    counter.add(A, 5);
    clock.advance(500);
    counter.add(B, 7);
    clock.advance(1e12); // far longer than the window: one fill, however long
    assert.deepEqual(sums(counter), [0, 0]);
    counter.add(A);
    clock.advance(1000); // exactly a window
    assert.deepEqual(sums(counter), [0, 0]);
    counter.add(A, 2);
    clock.advance(300);
    counter.add(B, 3);
    clock.advance(800); // the first add has expired, the second has not
    assert.deepEqual(sums(counter), [0, 3]);
  });

  test('keeps counting correctly across many rotations of the ring', () => {
    const { clock, counter } = setup(7);
    // One add every 30 ms for 100 s: at most one ring's worth is ever summed.
    for (let i = 0; i < 3334; i++) {
      counter.add(A);
      clock.advance(30);
    }
    const now = 7 + 3334 * 30;
    // What a direct count says: adds whose bucket is less than 10 buckets old.
    let expect = 0;
    for (let i = 0; i < 3334; i++) if (Math.floor(now / 100) - Math.floor((7 + i * 30) / 100) < 10) expect++;
    assert.equal(counter.sum(A), expect);
  });

  test('clear() forgets every count', () => {
    const { clock, counter } = setup();
    counter.add(A, 4);
    clock.advance(200);
    counter.add(B, 4);
    counter.clear();
    assert.deepEqual(sums(counter), [0, 0]);
    counter.add(B);
    assert.deepEqual(sums(counter), [0, 1]);
  });

  describe('resize (a reload that changes the window)', () => {
    test('more buckets of the same width: every count keeps its age and leaves on time', () => {
      const { clock, counter } = setup(); // 10 × 100 ms
      counter.add(A); // t = 0
      clock.advance(500);
      counter.add(B); // t = 500
      counter.resize(2000, 20);
      assert.equal(counter.window, 2000);
      assert.deepEqual(sums(counter), [1, 1]);
      clock.advance(1499); // t = 1999
      assert.deepEqual(sums(counter), [1, 1]);
      clock.advance(1); // t = 2000: the t = 0 count is two seconds old
      assert.deepEqual(sums(counter), [0, 1]);
      clock.advance(500); // t = 2500
      assert.deepEqual(sums(counter), [0, 0]);
    });

    test('fewer buckets of the same width: what is older than the new window is dropped', () => {
      const { clock, counter } = setup(0, 2000, 20);
      counter.add(A, 2); // t = 0
      clock.advance(800);
      counter.add(B); // t = 800
      counter.resize(500, 5);
      assert.deepEqual(sums(counter), [0, 1]);
      clock.advance(499);
      assert.deepEqual(sums(counter), [0, 1]);
      clock.advance(1);
      assert.deepEqual(sums(counter), [0, 0]);
    });

    test('a new bucket width keeps each bucket\'s place: totals carry over, then expire at the new pace', () => {
      const { clock, counter } = setup(3000, 10_000, 10); // 1 s buckets
      counter.add(A, 5);
      counter.resize(2000, 10); // 200 ms buckets
      assert.equal(counter.bucketMs, 200);
      assert.equal(counter.sum(A), 5);
      clock.advance(1999);
      assert.equal(counter.sum(A), 5);
      clock.advance(1);
      assert.equal(counter.sum(A), 0, 'one new window later the carried-over counts are gone');
    });

    test('the same window and bucket count change nothing', () => {
      const { clock, counter } = setup();
      counter.add(A);
      clock.advance(950);
      counter.resize(1000, 10);
      assert.equal(counter.sum(A), 1);
      clock.advance(50);
      assert.equal(counter.sum(A), 0);
    });
  });

  describe('a clock that goes backwards', () => {
    test('a small step back loses nothing and expires nothing early', () => {
      const { clock, counter } = setup(10_000);
      counter.add(A); // bucket [10000, 10100)
      clock.advance(-350);
      counter.add(B); // counted in the newest bucket, not in an older one
      assert.deepEqual(sums(counter), [1, 1]);
      clock.advance(350 + 999); // t = 10999: back where it was, and on
      assert.deepEqual(sums(counter), [1, 1]);
      clock.advance(1); // t = 11000: both leave with the newest bucket
      assert.deepEqual(sums(counter), [0, 0]);
    });

    test('a step back of a window or more starts over', () => {
      const { clock, counter } = setup(10_000);
      counter.add(A, 3);
      clock.advance(-5000);
      assert.deepEqual(sums(counter), [0, 0]);
      counter.add(B);
      clock.advance(999);
      assert.deepEqual(sums(counter), [0, 1]);
      clock.advance(1);
      assert.deepEqual(sums(counter), [0, 0]);
    });
  });

  test('a window of zero remembers nothing past its 1 µs buckets', () => {
    const { clock, counter } = setup(0, 0, 10);
    counter.add(A);
    assert.equal(counter.sum(A), 1);
    clock.advance(1);
    assert.equal(counter.sum(A), 0);
  });

  test('refuses a bucket or lane count that is not a positive integer', () => {
    const clock = new ManualClock();
    assert.throws(() => new RollingCounter({ window: 1000, buckets: 0, lanes: 1, clock }), RangeError);
    assert.throws(() => new RollingCounter({ window: 1000, buckets: 2.5, lanes: 1, clock }), RangeError);
    assert.throws(() => new RollingCounter({ window: 1000, buckets: 10, lanes: 0, clock }), RangeError);
    const c = new RollingCounter({ window: 1000, buckets: 10, lanes: 1, clock });
    assert.throws(() => c.resize(1000, 0), RangeError);
  });
});
