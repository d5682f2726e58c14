/**
 * CONNECT byte tunnels (SPEC §10.3): `CONNECT host:PORT` for a port other
 * than 80, as clients with `HTTPS_PROXY` send it. The client does TLS end to
 * end, so breakwater sees only bytes; it protects the TCP level instead:
 *
 * - allowed only on a route with `allowConnect: true` whose host condition
 *   accepts `host`, and only to an authority that is one of the route's
 *   upstream's endpoints (anything else was answered 405 by the edge, with
 *   nothing dialled);
 * - the route's and the upstream's rate limits (one token per tunnel, never
 *   waited for), breaker admission and one bulkhead slot held while the
 *   tunnel is open (policies/tunnel-guards.ts, shared with WebSocket tunnels);
 * - each connect attempt is bounded by `timeout.connect`, recorded through
 *   the breaker permit and counted as an upstream attempt; a failed connect
 *   is retried (retry `on` lists `connect-failure`: the tunnel never left, so
 *   the method does not matter) up to `maxRetries` with the route's backoff,
 *   while the breaker stays closed and the wait fits in `timeout.total`,
 *   which bounds the whole connect phase;
 * - `200 Connection Established` is written only once the upstream's TCP
 *   connection is up; a failure is a §4.7 answer and a close;
 * - then bytes flow both ways with backpressure (pipe), until either side
 *   closes or nothing moves either way for `timeout.idle`.
 *
 * When it is over, the permits are given back, and one `tunnel` log line and
 * the connect_tunnel metrics say how it ended; the same line goes to the tap
 * while someone listens (observability/tap.ts).
 *
 * NOTE: connect retries do not spend the retry budget: a refused connect
 * costs the upstream nothing, and the breaker (which sees every attempt)
 * is what stops a retry storm against a dead endpoint.
 */
import net, { type Socket } from 'node:net';
import type { Endpoint, OutcomeKind, RouteConfig, UpstreamConfig } from '../config/types.ts';
import type { Logger } from '../observability/logger.ts';
import { emitTunnel, type LiveTap } from '../observability/tap.ts';
import type { RouteMetrics, TunnelResult } from '../observability/metrics/index.ts';
import { errorCodeFor } from '../pipeline/classify.ts';
import { backoffDelay } from '../policies/retry/backoff.ts';
import { isRetriableKind } from '../policies/retry/decide.ts';
import { acquireTunnelGuards, releaseTunnelGuards, type TunnelGuards, type TunnelPermits } from '../policies/tunnel-guards.ts';
import { hostOf, validHost } from './request-head.ts';
import { writeRawError } from './respond.ts';

export interface ConnectDeps {
  readonly listener: string;
  readonly route: RouteConfig;
  readonly upstream: UpstreamConfig;
  /** The route's and its upstream's guards: the same objects, and permits, as its HTTP requests use. */
  readonly guards: TunnelGuards;
  readonly metrics: RouteMetrics;
  /** upstream_attempts_total and its duration, per connect attempt. */
  readonly onAttempt: (kind: OutcomeKind, seconds: number) => void;
  /** Where the `tunnel` line goes (null: access log off). */
  readonly logger: Logger | null;
  /** The tap the `tunnel` line is offered to while someone listens (access log on or off); null under `validate`. */
  readonly tap: LiveTap | null;
}

/** A route's CONNECT entry, built once per config load (null for a route without allowConnect). */
export interface ConnectTunnels {
  /** Is `host:port` (host lower-case, IPv6 in brackets) one of the upstream's endpoints? */
  accepts(host: string, port: number): boolean;
  open(client: Socket, head: Buffer, host: string, port: number, requestId: string): void;
}

/** The authority of a `CONNECT host:port` target (RFC 9110 §9.3.6), host lower-case; null when malformed. */
export function connectAuthority(target: string): { host: string; port: number } | null {
  const colon = target.lastIndexOf(':');
  if (colon <= 0) return null;
  const p = target.slice(colon + 1);
  if (!/^[0-9]{1,5}$/.test(p)) return null;
  const port = Number(p);
  const host = target.slice(0, colon);
  if (port < 1 || port > 65535 || !validHost(host)) return null;
  return { host: hostOf(host), port };
}

export function connectTunnels(deps: ConnectDeps): ConnectTunnels | null {
  if (!deps.route.allowConnect) return null;
  // Port 80 is never a byte tunnel: the edge serves `CONNECT host:80` as HTTP.
  const byAuthority = new Map<string, Endpoint>();
  for (const e of deps.upstream.endpoints) if (e.port !== 80) byAuthority.set(e.authority.toLowerCase(), e);
  return {
    accepts: (host, port) => byAuthority.has(`${host}:${port}`),
    open(client, head, host, port, requestId) {
      const authority = `${host}:${port}`;
      const endpoint = byAuthority.get(authority);
      if (endpoint === undefined) return writeRawError(client, 'method_not_allowed', requestId);
      const flags: string[] = [];
      const p = acquireTunnelGuards(deps.guards, flags);
      if (p.type === 'failure') {
        deps.metrics.rejected(p.code);
        logTunnel(deps, requestId, endpoint, authority, p.code, 0, null, 0, 0, 0, flags);
        deps.metrics.tunnelClosed(p.code, 0, 0, false);
        return writeRawError(client, p.code, requestId, { route: deps.route.name, upstream: deps.upstream.name, retryAfterMs: p.retryAfterMs });
      }
      new ConnectTunnel(deps, client, head, endpoint, authority, requestId, p, flags).start();
    },
  };
}

/** One tunnel, from its first connect attempt until both of its sockets are closed. */
class ConnectTunnel {
  readonly #deps: ConnectDeps;
  readonly #client: Socket;
  readonly #head: Buffer;
  readonly #endpoint: Endpoint;
  readonly #authority: string;
  readonly #requestId: string;
  readonly #permits: TunnelPermits;
  readonly #flags: string[];
  readonly #started = performance.now();
  readonly #deadline: number;
  #upstream: Socket | null = null;
  #timer: NodeJS.Timeout | null = null;
  #attemptStart = 0;
  #attempts = 0;
  #connectMs: number | null = null;
  /** Set by whatever ends the tunnel first; null at close means it ended cleanly. */
  #outcome: TunnelResult | null = null;
  #clientClosed = false;
  #done = false;

  constructor(deps: ConnectDeps, client: Socket, head: Buffer, endpoint: Endpoint, authority: string, requestId: string, permits: TunnelPermits, flags: string[]) {
    this.#deps = deps;
    this.#client = client;
    this.#head = head;
    this.#endpoint = endpoint;
    this.#authority = authority;
    this.#requestId = requestId;
    this.#permits = permits;
    this.#flags = flags;
    this.#deadline = this.#started + deps.route.policy.timeout.total;
  }

  start(): void {
    const c = this.#client;
    this.#deps.metrics.tunnelOpened();
    c.setTimeout(0);
    // Errors end in 'close', which settles the tunnel; without a listener they would be thrown.
    c.on('error', this.#onClientError);
    c.once('close', this.#onClientClose);
    this.#dial();
  }

  // === the connect phase ===

  #dial(): void {
    this.#timer = null;
    this.#attempts++;
    this.#attemptStart = performance.now();
    const e = this.#endpoint;
    const s = net.connect({ host: e.hostname, port: e.port, noDelay: true });
    this.#upstream = s;
    s.on('error', this.#onUpstreamError);
    s.once('connect', this.#onConnect);
    s.once('close', this.#onUpstreamClose);
    const left = this.#deadline - performance.now();
    this.#timer = setTimeout(this.#onConnectTimeout, Math.max(1, Math.min(this.#deps.route.policy.timeout.connect, left)));
  }

  #onConnectTimeout = (): void => {
    this.#timer = null;
    // The route's `total` ran out (not just this attempt's connect budget): the tunnel times out.
    this.#connectFailed(this.#deadline - performance.now() <= 1 ? 'timeout' : 'connect_failure');
  };

  #onConnect = (): void => {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const ms = performance.now() - this.#attemptStart;
    this.#record('success', ms);
    this.#connectMs = Math.round((performance.now() - this.#started) * 1000) / 1000;
    const c = this.#client;
    const u = this.#upstream!;
    if (this.#clientClosed) {
      u.destroy();
      return;
    }
    c.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (this.#head.length > 0) u.write(this.#head);
    // Backpressure both ways: each side pauses while the other's buffer is full.
    c.pipe(u);
    u.pipe(c);
    // A socket's timeout counts reads and writes: the client's sees both directions.
    c.setTimeout(this.#deps.route.policy.timeout.idle, this.#onIdle);
  };

  /** An attempt failed before the upstream's connection was up. */
  #connectFailed(kind: OutcomeKind): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#record(kind, performance.now() - this.#attemptStart);
    const u = this.#upstream;
    this.#upstream = null;
    u?.destroy();
    if (this.#clientClosed) return;
    const r = this.#deps.route.policy.retry;
    const retries = this.#attempts - 1;
    if (kind === 'connect_failure' && isRetriableKind(r, kind, 0)) {
      if (retries >= r.maxRetries) {
        if (r.maxRetries > 0) this.#flags.push('retries_exhausted');
      } else if (this.#deps.guards.breaker?.breaker.isOpen() === true) {
        this.#flags.push('retry_circuit_open');
      } else {
        const delay = backoffDelay(r.backoff, retries + 1);
        if (performance.now() + delay < this.#deadline) {
          if (!this.#flags.includes('retried')) this.#flags.push('retried');
          this.#deps.metrics.retry(kind);
          this.#timer = setTimeout(() => this.#dial(), delay);
          return;
        }
        this.#flags.push('retry_deadline');
      }
    }
    this.#outcome = kind === 'timeout' ? 'timeout' : 'connect_failure';
    const code = errorCodeFor(kind);
    this.#flags.push(code);
    writeRawError(this.#client, code, this.#requestId, { route: this.#deps.route.name, upstream: this.#deps.upstream.name });
  }

  /** One connect attempt's outcome: the breaker (through the permit) and the upstream's attempt metrics. */
  #record(kind: OutcomeKind, ms: number): void {
    const p = this.#permits;
    if (p.breaker !== null) p.breaker = p.breaker.record(kind, 0);
    this.#deps.onAttempt(kind, ms / 1000);
  }

  // === the open tunnel ===

  #onIdle = (): void => {
    this.#outcome ??= 'idle_timeout';
    this.#client.destroy();
    this.#upstream?.destroy();
  };

  #onUpstreamError = (): void => {
    if (this.#connectMs === null) {
      // Still connecting (a timed-out attempt's destroy() raises nothing):
      // refused, unreachable, reset during the handshake — the tunnel never got up.
      if (this.#upstream !== null) this.#connectFailed('connect_failure');
      return;
    }
    this.#outcome ??= 'reset';
    this.#client.destroy();
  };

  #onClientError = (): void => {
    this.#outcome ??= 'client_abort';
    this.#upstream?.destroy();
  };

  #onClientClose = (): void => {
    this.#clientClosed = true;
    if (this.#connectMs === null) {
      // Gone while we were connecting (or after we answered a failure).
      this.#outcome ??= 'client_abort';
      if (this.#timer !== null) clearTimeout(this.#timer);
      this.#timer = null;
      this.#upstream?.destroy();
    } else {
      // Whatever the client sent is flushed upstream first; nothing more can come back.
      this.#upstream?.destroySoon();
    }
    this.#maybeDone();
  };

  #onUpstreamClose = (): void => {
    // A failed attempt's socket closing is not the tunnel's upstream any more.
    if (this.#connectMs !== null) this.#client.destroySoon();
    this.#maybeDone();
  };

  #maybeDone(): void {
    if (this.#done || !this.#clientClosed || !(this.#upstream === null || this.#upstream.destroyed) || this.#timer !== null) return;
    this.#done = true;
    releaseTunnelGuards(this.#permits);
    const u = this.#upstream;
    const bytesIn = u?.bytesWritten ?? 0;
    const bytesOut = u?.bytesRead ?? 0;
    const outcome = this.#outcome ?? 'success';
    const d = this.#deps;
    d.metrics.tunnelClosed(outcome, bytesIn, bytesOut, true);
    logTunnel(d, this.#requestId, this.#endpoint, this.#authority, outcome, performance.now() - this.#started, this.#connectMs, this.#attempts, bytesIn, bytesOut, this.#flags);
  }
}

function logTunnel(
  d: ConnectDeps,
  requestId: string,
  endpoint: Endpoint,
  authority: string,
  outcome: TunnelResult,
  ms: number,
  connectMs: number | null,
  attempts: number,
  bytesIn: number,
  bytesOut: number,
  flags: string[],
): void {
  // Built only for a log that is on or a tap someone listens to.
  emitTunnel(d.logger, d.tap, () => ({
    protocol: 'connect',
    requestId,
    listener: d.listener,
    route: d.route.name,
    upstream: d.upstream.name,
    endpoint: endpoint.authority,
    authority,
    outcome,
    durationMs: Math.round(ms * 1000) / 1000,
    connectMs,
    attempts,
    bytesIn,
    bytesOut,
    flags,
  }));
}
