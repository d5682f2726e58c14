/**
 * Connection pools and endpoint choice for one upstream.
 *
 * Each endpoint gets one undici Pool (keep-alive, bounded connections). Pools
 * are keyed by origin and options in the state registry, so a config reload
 * that leaves an endpoint unchanged keeps its warm connections. The TLS
 * settings of an https:// endpoint are part of the key, so a reload that
 * changes them gets new pools (a rotation of the files on disk does not:
 * upstream/tls.ts swaps what new connections use).
 *
 * The upstream's `protocol` (SPEC §10.1) is part of the key too, and decides
 * what the connector offers: http1 never offers h2 in ALPN (undici's own
 * connector would: its `allowH2` defaults to true); h2c marks a cleartext
 * socket as HTTP/2 with prior knowledge; h2 offers h2 only in effect — a
 * server whose ALPN picks anything else fails the connect; auto offers h2
 * first, then HTTP/1.1. undici's Client then speaks HTTP/2 on any socket
 * whose `alpnProtocol` is h2, multiplexing up to the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS (at most 100) streams per connection, and
 * the pool opens another connection (up to `pool.connections`) only when
 * every one is full.
 */
import type { TLSSocket } from 'node:tls';
import { Pool, buildConnector } from 'undici';
import type { BalanceMode, Endpoint, Millis, UpstreamProtocol } from '../config/types.ts';
import { keepingTrailersLast } from './h2-trailers.ts';
import { skippingContinue } from './interim.ts';
import type { TlsSource } from './tls.ts';

export interface PoolOptions {
  readonly connections: number;
  readonly keepAlive: Millis;
  readonly connectTimeout: Millis;
  /** The upstream's `tls` block, for an https:// origin; null: node's defaults (system roots, full verification). */
  readonly tls?: TlsSource | null;
  /** The upstream's `protocol`; absent: http1. */
  readonly protocol?: UpstreamProtocol;
}

export function poolKey(origin: string, o: PoolOptions): string {
  const key = `${origin}|${o.connections}|${o.keepAlive}|${o.connectTimeout}|${o.protocol ?? 'http1'}`;
  return o.tls == null ? key : `${key}|${o.tls.key}`;
}

/** undici's connector options, with `useH2c`, which its type declarations leave out. */
type ConnectorOptions = buildConnector.BuildOptions & { useH2c?: boolean };

/** undici's connector options for a protocol (SPEC §10.1). */
function connectorOptions(protocol: UpstreamProtocol, connectTimeout: Millis): ConnectorOptions {
  switch (protocol) {
    case 'h2c':
      return { timeout: connectTimeout, allowH2: true, useH2c: true };
    case 'h2':
    case 'auto':
      return { timeout: connectTimeout, allowH2: true, preferH2: true };
    default:
      return { timeout: connectTimeout, allowH2: false };
  }
}

export function createPool(origin: string, o: PoolOptions): Pool {
  const protocol = o.protocol ?? 'http1';
  const base = connectorOptions(protocol, o.connectTimeout);
  let connect = o.tls == null ? buildConnector(base) : o.tls.connector(base);
  if (protocol === 'h2') connect = requiringH2(connect);
  const options: Pool.Options & { useH2c?: boolean } = {
    connections: o.connections,
    keepAliveTimeout: o.keepAlive,
    // The longest keep-alive an upstream's `Keep-Alive: timeout=` hint may raise us to.
    keepAliveMaxTimeout: Math.max(o.keepAlive, 600_000),
    // The 100-continue filter reads HTTP/1.1 bytes: HTTP/2 sockets are left
    // alone, and are marked so that their streams' trailers stay behind their
    // body (undici drops DATA still buffered at the trailers: h2-trailers.ts).
    connect: skippingContinue(keepingTrailersLast(connect)),
    allowH2: protocol !== 'http1',
    useH2c: protocol === 'h2c',
    pipelining: 1,
    // breakwater's own perTry/idle timers govern; undici's defaults (300 s) would
    // only get in the way of long streams.
    headersTimeout: 0,
    bodyTimeout: 0,
  };
  return o.tls == null ? new Pool(origin, options) : new TlsPool(origin, options, o.tls);
}

/**
 * `protocol: h2` means HTTP/2 or nothing: a connection whose ALPN settled on
 * HTTP/1.1 (or none) is closed and fails as a connect failure, which says
 * what went wrong instead of quietly speaking HTTP/1.1.
 */
function requiringH2(connect: buildConnector.connector): buildConnector.connector {
  return (options, callback) =>
    connect(options, (err, socket) => {
      if (err !== null) return callback(err, null);
      const alpn = (socket as TLSSocket).alpnProtocol;
      if (alpn === 'h2') return callback(null, socket);
      socket.destroy();
      const e = new Error(`protocol h2: the upstream's TLS ALPN chose ${alpn === false || alpn == null ? 'no protocol' : alpn}, not h2`) as Error & { code: string };
      e.code = 'BW_ALPN_NOT_H2';
      callback(e, null);
    });
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
