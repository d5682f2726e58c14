/**
 * The guards a tunnel takes (WebSocket upgrades, CONNECT byte tunnels), in
 * the order an HTTP request meets them (SPEC §4): route rate limit →
 * upstream rate limit → circuit breaker admission → bulkhead. The same
 * guard objects and the same permits as the upstream's HTTP requests, so
 * observe mode, flags and gauges cannot drift between protocols.
 *
 * A tunnel never waits: a rate limit takes its token now or refuses
 * (`maxWait` does not apply), and a full bulkhead refuses instead of queueing
 * (a queued tunnel would hold the client's socket waiting). Whatever was
 * acquired before a refusal is given back before the refusal is returned.
 */
import { ERRORS, failure, type Failure } from '../errors.ts';
import type { BreakerGuard, BreakerPermit } from './breaker/permit.ts';
import type { Bulkhead } from './bulkhead/bulkhead.ts';
import type { Permit } from './permit.ts';

export interface TunnelBucket {
  /** A local TokenBucket, or a global limit's `acquireNow` view (never waits). */
  readonly bucket: { acquire(maxWaitMs: number, observe: boolean): Permit | number | Failure };
  readonly observe: boolean;
}

/** One route's view of the guards, built once per config load. */
export interface TunnelGuards {
  readonly routeRateLimit: TunnelBucket | null;
  readonly upstreamRateLimit: TunnelBucket | null;
  readonly breaker: BreakerGuard | null;
  readonly bulkhead: Bulkhead | null;
}

export type TunnelRefusal = 'rate_limited' | 'circuit_open' | 'bulkhead_full';

/** What an admitted tunnel holds until it closes. */
export interface TunnelPermits {
  readonly type: 'permits';
  /** Record each connect attempt through it (a half-open probe hands over to an ordinary permit). */
  breaker: BreakerPermit | null;
  slot: Permit | null;
}

const BULKHEAD_FULL: Failure = Object.freeze(failure('bulkhead_full'));

/**
 * Takes every guard's permit, pushing observe-mode flags onto `flags`; or
 * refuses with the guard's Failure (code and Retry-After), having given
 * back whatever it took and flagged the refusal (`rate_limited`,
 * `circuit_open`, `bulkhead_full`) as a refused request's line has it.
 */
export function acquireTunnelGuards(g: TunnelGuards, flags: string[]): TunnelPermits | (Failure & { readonly code: TunnelRefusal }) {
  const limited = takeToken(g.routeRateLimit, flags) ?? takeToken(g.upstreamRateLimit, flags);
  if (limited !== null) return refused(limited, flags);
  let breaker: BreakerPermit | null = null;
  if (g.breaker !== null) {
    const p = g.breaker.acquire();
    if (p.type === 'failure') return refused(p as Failure & { code: 'circuit_open' }, flags);
    if (p.observed !== null) addFlag(flags, p.observed);
    breaker = p;
  }
  let slot: Permit | null = null;
  if (g.bulkhead !== null) {
    const p = g.bulkhead.acquire();
    if (p === 'queue' || p.type === 'failure') {
      breaker?.release();
      return refused(BULKHEAD_FULL as Failure & { code: 'bulkhead_full' }, flags);
    }
    if (p.observed !== null) addFlag(flags, p.observed);
    slot = p;
  }
  return { type: 'permits', breaker, slot };
}

function refused<F extends Failure & { readonly code: TunnelRefusal }>(f: F, flags: string[]): F {
  addFlag(flags, ERRORS[f.code].flag ?? f.code);
  return f;
}

/** One token now, or `rate_limited` (null: taken, or no limit). */
function takeToken(rl: TunnelBucket | null, flags: string[]): (Failure & { readonly code: 'rate_limited' }) | null {
  if (rl === null) return null;
  const p = rl.bucket.acquire(0, rl.observe);
  // With maxWait 0 a wait is never offered; a number here would be a bug, refused as rate_limited.
  if (typeof p === 'number') return failure('rate_limited', p) as Failure & { code: 'rate_limited' };
  if (p.type === 'failure') return p as Failure & { code: 'rate_limited' };
  if (p.observed !== null) addFlag(flags, p.observed);
  return null;
}

/** A flag once, as Exchange.flag keeps it: a route's and its upstream's limits may both raise the same one. */
export function addFlag(flags: string[], flag: string): void {
  if (!flags.includes(flag)) flags.push(flag);
}

/** Gives back what an admitted tunnel holds. Once per acquisition. */
export function releaseTunnelGuards(p: TunnelPermits): void {
  p.breaker?.release();
  p.breaker = null;
  p.slot?.release();
  p.slot = null;
}
