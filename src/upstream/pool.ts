/**
 * Connection pools and endpoint choice for one upstream.
 *
 * Each endpoint gets one undici Pool (keep-alive, bounded connections). Pools
 * are keyed by origin and options in the state registry, so a config reload
 * that leaves an endpoint unchanged keeps its warm connections.
 */
import { Pool } from 'undici';
import type { BalanceMode, Endpoint, Millis } from '../config/types.ts';
import { connectorSkippingContinue } from './interim.ts';

export interface PoolOptions {
  readonly connections: number;
  readonly keepAlive: Millis;
  readonly connectTimeout: Millis;
}

export function poolKey(origin: string, o: PoolOptions): string {
  return `${origin}|${o.connections}|${o.keepAlive}|${o.connectTimeout}`;
}

export function createPool(origin: string, o: PoolOptions): Pool {
  return new Pool(origin, {
    connections: o.connections,
    keepAliveTimeout: o.keepAlive,
    // The longest keep-alive an upstream's `Keep-Alive: timeout=` hint may raise us to.
    keepAliveMaxTimeout: Math.max(o.keepAlive, 600_000),
    connect: connectorSkippingContinue({ timeout: o.connectTimeout }),
    pipelining: 1,
    // breakwater's own perTry/idle timers govern; undici's defaults (300 s) would
    // only get in the way of long streams.
    headersTimeout: 0,
    bodyTimeout: 0,
  });
}

export class EndpointPool {
  readonly endpoint: Endpoint;
  readonly pool: Pool;
  /** Attempts in flight on this endpoint (least-request balancing). */
  inflight = 0;
  constructor(endpoint: Endpoint, pool: Pool) {
    this.endpoint = endpoint;
    this.pool = pool;
  }
}

/** Chooses an endpoint per attempt. Built once per config load. */
export class Balancer {
  readonly endpoints: readonly EndpointPool[];
  readonly #mode: BalanceMode;
  #next = 0;

  constructor(endpoints: readonly EndpointPool[], mode: BalanceMode) {
    if (endpoints.length === 0) throw new Error('an upstream needs at least one endpoint');
    this.endpoints = endpoints;
    this.#mode = mode;
  }

  pick(): EndpointPool {
    const eps = this.endpoints;
    const n = eps.length;
    if (n === 1) return eps[0]!;
    switch (this.#mode) {
      case 'random':
        return eps[Math.floor(Math.random() * n)]!;
      case 'least-request': {
        // Scan from a rotating start so ties spread instead of piling on endpoint 0.
        const start = this.#next++ % n;
        let best = eps[start]!;
        for (let i = 1; i < n; i++) {
          const e = eps[(start + i) % n]!;
          if (e.inflight < best.inflight) best = e;
        }
        return best;
      }
      default: {
        const e = eps[this.#next % n]!;
        this.#next = (this.#next + 1) % n;
        return e;
      }
    }
  }
}
