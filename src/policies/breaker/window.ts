/**
 * The breaker's rolling window of attempt counts: opossum's `Status` (a ring
 * of time buckets) behind a narrow interface — record a success or a failure,
 * read the totals, clear, resize, dispose. Nothing else in the breaker knows
 * opossum exists.
 *
 * How we drive opossum's Status, and why not through `fire()`:
 * - Created with `CircuitBreaker.newStatus` (opossum's public factory), with
 *   our SharedRotation as `rotateBucketController` (no per-window interval),
 *   `enableSnapshots: false` (no snapshot interval) and
 *   `rollingPercentilesEnabled: false` (we never read latencies).
 * - An outcome is one integer increment on the current bucket object (the
 *   `Bucket` shape opossum exposes through `status.window`). `fire()` would
 *   allocate a promise and a closure per request, and even `status.increment`
 *   pushes a latency sample into an array per call; neither is needed here.
 * - Reading: opossum's `stats` getter folds every bucket (allocating) on each
 *   call. Instead the sums of the older buckets are cached once per rotation
 *   (the rotation's generation number tells us when), so the hot path reads
 *   `older + current`: a few additions.
 */
import Opossum from 'opossum';
import type { SharedRotation } from './rotation.ts';

/** The part of an opossum bucket we use (the rest stays zero). */
interface Bucket {
  successes: number;
  failures: number;
}

/** The part of opossum's Status we use; `shutdown` is missing from @types/opossum. */
interface StatusEngine {
  readonly window: Bucket[];
  shutdown(): void;
}

function newStatus(buckets: number, rotation: SharedRotation): StatusEngine {
  rotation.noteBuckets(buckets);
  return Opossum.newStatus({
    rollingCountBuckets: buckets,
    // Only used by opossum to size its own interval, which a controller replaces.
    rollingCountTimeout: buckets * rotation.bucketMs,
    rollingPercentilesEnabled: false,
    enableSnapshots: false,
    rotateBucketController: rotation.controller,
  }) as unknown as StatusEngine;
}

export function bucketsFor(windowMs: number, bucketMs: number): number {
  return Math.max(1, Math.ceil(windowMs / bucketMs));
}

export class RollingWindow {
  readonly #rotation: SharedRotation;
  #buckets: number;
  #status: StatusEngine;
  /** Rotation generation the cache below was taken at. */
  #gen = -1;
  #current: Bucket = { successes: 0, failures: 0 };
  #olderSuccesses = 0;
  #olderFailures = 0;

  constructor(windowMs: number, rotation: SharedRotation) {
    this.#rotation = rotation;
    this.#buckets = bucketsFor(windowMs, rotation.bucketMs);
    this.#status = newStatus(this.#buckets, rotation);
  }

  get buckets(): number {
    return this.#buckets;
  }

  record(failed: boolean): void {
    if (this.#gen !== this.#rotation.generation) this.#refresh();
    if (failed) this.#current.failures++;
    else this.#current.successes++;
  }

  get failures(): number {
    if (this.#gen !== this.#rotation.generation) this.#refresh();
    return this.#olderFailures + this.#current.failures;
  }

  get successes(): number {
    if (this.#gen !== this.#rotation.generation) this.#refresh();
    return this.#olderSuccesses + this.#current.successes;
  }

  get total(): number {
    return this.failures + this.successes;
  }

  /** Forget everything (the breaker closed: fresh windows). */
  clear(): void {
    this.#replace(newStatus(this.#buckets, this.#rotation));
  }

  /**
   * A reload changed the window length. opossum fixes the bucket count at
   * construction, so a new Status is built and the counts are carried across
   * bucket by bucket, newest first: what fits in the new length keeps its age
   * and ages out on time; what is older than the new length is dropped.
   * (opossum's own restore, `newStatus({ stats })`, would put every count into
   * the newest bucket, keeping old failures alive for a whole extra window.)
   */
  resize(windowMs: number): void {
    const buckets = bucketsFor(windowMs, this.#rotation.bucketMs);
    if (buckets === this.#buckets) return;
    const from = this.#status.window;
    const next = newStatus(buckets, this.#rotation);
    const to = next.window;
    const n = Math.min(from.length, to.length);
    for (let i = 0; i < n; i++) {
      to[i]!.successes = from[i]!.successes;
      to[i]!.failures = from[i]!.failures;
    }
    this.#buckets = buckets;
    this.#replace(next);
  }

  /** Unsubscribe from the rotation. */
  dispose(): void {
    this.#status.shutdown();
  }

  #replace(next: StatusEngine): void {
    this.#status.shutdown();
    this.#status = next;
    this.#gen = -1;
  }

  /** Once per rotation: re-point at the newest bucket and re-sum the older ones. */
  #refresh(): void {
    const w = this.#status.window; // a copy of the array, same bucket objects
    let s = 0;
    let f = 0;
    for (let i = 1; i < w.length; i++) {
      s += w[i]!.successes;
      f += w[i]!.failures;
    }
    this.#current = w[0]!;
    this.#olderSuccesses = s;
    this.#olderFailures = f;
    this.#gen = this.#rotation.generation;
  }
}
