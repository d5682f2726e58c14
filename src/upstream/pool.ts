/**
 * Connection pools and endpoint choice for one upstream.
 *
 * Each endpoint gets one undici Pool (keep-alive, bounded connections). Pools
 * are keyed by origin and options in the state registry, so a config reload
 * that leaves an endpoint unchanged keeps its warm connections. The TLS
 * settings of an https:// endpoint are part of the key, so a reload that
 * changes them gets new pools (a rotation of the files on disk does not:
 * upstream/tls.ts swaps what new connections use).
 */
import { Pool, buildConnector } from 'undici';
import type { BalanceMode, Endpoint, Millis } from '../config/types.ts';
import { skippingContinue } from './interim.ts';
import type { TlsSource } from './tls.ts';

export interface PoolOptions {
  readonly connections: number;
  readonly keepAlive: Millis;
  readonly connectTimeout: Millis;
  /** The upstream's `tls` block, for an https:// origin; null: node's defaults (system roots, full verification). */
  readonly tls?: TlsSource | null;
}

export function poolKey(origin: string, o: PoolOptions): string {
  const key = `${origin}|${o.connections}|${o.keepAlive}|${o.connectTimeout}`;
  return o.tls == null ? key : `${key}|${o.tls.key}`;
}

export function createPool(origin: string, o: PoolOptions): Pool {
  const base = { timeout: o.connectTimeout };
  const options: Pool.Options = {
    connections: o.connections,
    keepAliveTimeout: o.keepAlive,
    // The longest keep-alive an upstream's `Keep-Alive: timeout=` hint may raise us to.
    keepAliveMaxTimeout: Math.max(o.keepAlive, 600_000),
    connect: skippingContinue(o.tls == null ? buildConnector(base) : o.tls.connector(base)),
    pipelining: 1,
    // breakwater's own perTry/idle timers govern; undici's defaults (300 s) would
    // only get in the way of long streams.
    headersTimeout: 0,
    bodyTimeout: 0,
  };
  return o.tls == null ? new Pool(origin, options) : new TlsPool(origin, options, o.tls);
}

/** A pool that holds its upstream's TlsSource: the files are watched while a pool uses them. */
class TlsPool extends Pool {
  #tls: TlsSource | null;

  constructor(origin: string, options: Pool.Options, tls: TlsSource) {
    super(origin, options);
    tls.retain();
    this.#tls = tls;
  }

  // undici's promise forms call the callback forms: releasing is idempotent.
  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.#release();
    return callback === undefined ? super.close() : super.close(callback);
  }

  override destroy(...args: unknown[]): any {
    this.#release();
    return (Pool.prototype.destroy as (...a: unknown[]) => unknown).apply(this, args);
  }

  #release(): void {
    this.#tls?.release();
    this.#tls = null;
  }
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
