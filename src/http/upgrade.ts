/**
 * WebSocket (Upgrade) tunnels, through http-proxy, isolated in this module
 * (SPEC §3). A tunnel takes the same guards' permits as an HTTP request to
 * its upstream (policies/permit.ts), so observe mode, flags and gauges are
 * the same: breaker admission, then one bulkhead slot held for as long as the
 * tunnel is open (a tunnel never queues). The handshake must complete within
 * the route's connect + perTry budget and is the tunnel's one attempt,
 * recorded through the breaker permit; a tunnel is never retried (a
 * bidirectional stream cannot be replayed). When it closes, one `tunnel` log
 * line says what it was, how it ended, the bytes each way and its flags; the
 * same line goes to the tap while someone listens (observability/tap.ts).
 *
 * Only `Upgrade: websocket` reaches this module (http/server.ts serves any
 * other Upgrade as plain HTTP/1.1).
 *
 * http-proxy is loaded on the first upgrade, not at start: most sidecars
 * never tunnel, and it is resident memory (it loads node's https/tls stack)
 * that every pod of the fleet would otherwise pay for.
 */
import type { ClientRequest, IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type httpProxy from 'http-proxy';
import type { OutcomeKind, RouteConfig, UpstreamConfig } from '../config/types.ts';
import { ERRORS } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { emitTunnel, type LiveTap } from '../observability/tap.ts';
import type { BreakerGuard } from '../policies/breaker/permit.ts';
import type { Bulkhead } from '../policies/bulkhead/bulkhead.ts';
import { acquireTunnelGuards, releaseTunnelGuards, type TunnelGuards, type TunnelPermits, type TunnelRefusal } from '../policies/tunnel-guards.ts';
import { connectionListed, isHopByHop } from './hop-by-hop.ts';
import { classifyError, classifyStatus, errorCodeFor } from '../pipeline/classify.ts';
import type { Balancer } from '../upstream/pool.ts';
import { writeRawError } from './respond.ts';
import { stripPrefix } from './router.ts';

export interface UpgradeDeps {
  readonly route: RouteConfig;
  readonly upstream: UpstreamConfig;
  /** The listener's rule for header names with `_` (drop or allow; reject was answered at the edge). */
  readonly underscoreHeaders: 'drop' | 'allow' | 'reject';
  readonly balancer: Balancer;
  /** The upstream's guards: the same objects, and the same permits, as its HTTP requests use. */
  readonly breaker: BreakerGuard | null;
  readonly bulkhead: Bulkhead | null;
  readonly onReject: (reason: TunnelRefusal) => void;
  readonly onAttempt: (kind: OutcomeKind, seconds: number) => void;
  /** Where the `tunnel` line goes when the tunnel closes (null: access log off). */
  readonly logger: Logger | null;
  /** The tap the `tunnel` line is offered to while someone listens (access log on or off); null under `validate`. */
  readonly tap: LiveTap | null;
  readonly listener: string;
}

const kTunnel = Symbol('breakwater.tunnel');
type TunnelRequest = IncomingMessage & { [kTunnel]?: Tunnel };

let shared: httpProxy | null = null;
/** One http-proxy instance for the process: it holds no per-route state. */
function proxyServer(): httpProxy {
  if (shared !== null) return shared;
  const load = createRequire(import.meta.url)('http-proxy') as typeof httpProxy;
  const p = load.createProxyServer({ ws: true, xfwd: true });
  p.on('proxyReqWs', (proxyReq: ClientRequest, req: IncomingMessage) => (req as TunnelRequest)[kTunnel]?.attach(proxyReq));
  // Errors are handled per call (the callback of ws()); this keeps an
  // unexpected one from becoming an uncaught 'error' event.
  p.on('error', () => {});
  shared = p;
  return p;
}

/** One open (or opening) tunnel: it holds the guards' permits until its socket closes. */
class Tunnel {
  readonly #deps: UpgradeDeps;
  readonly #socket: Socket;
  readonly #requestId: string;
  readonly #path: string;
  readonly #endpoint: string;
  readonly #started = performance.now();
  readonly #flags: string[];
  /** The guards' permits, held until the tunnel closes. */
  readonly #permits: TunnelPermits;
  #timer: NodeJS.Timeout | null = null;
  #settled = false;
  #kind: OutcomeKind | 'pending' = 'pending';
  #status = 0;

  constructor(deps: UpgradeDeps, socket: Socket, requestId: string, path: string, endpoint: string, permits: TunnelPermits, flags: string[]) {
    this.#deps = deps;
    this.#socket = socket;
    this.#requestId = requestId;
    this.#path = path;
    this.#endpoint = endpoint;
    this.#permits = permits;
    this.#flags = flags;
    const t = deps.route.policy.timeout;
    this.#timer = setTimeout(() => this.#timeout(), Math.min(t.connect + t.perTry, t.total));
    socket.once('close', () => this.#closed());
  }

  attach(proxyReq: ClientRequest): void {
    proxyReq.once('upgrade', () => this.#settle('success', 101));
    proxyReq.once('response', (res: IncomingMessage) => this.#settle(classifyStatus(res.statusCode ?? 502), res.statusCode ?? 502));
  }

  failed(err: Error): void {
    if (this.#settled) {
      // The tunnel was open (or already answered): an HTTP error response
      // would land inside the WebSocket stream. Just close it.
      if (!this.#flags.includes('upstream_reset')) this.#flags.push('upstream_reset');
      this.#socket.destroy();
      return;
    }
    const kind = classifyError(err);
    this.#settle(kind, 0);
    if (!this.#socket.destroyed) writeRawError(this.#socket, errorCodeFor(kind), this.#requestId);
  }

  #timeout(): void {
    this.#timer = null;
    if (this.#settled) return;
    this.#settle('timeout', 0);
    writeRawError(this.#socket, 'timeout', this.#requestId);
  }

  #settle(kind: OutcomeKind, status: number): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#kind = kind;
    this.#status = status;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#deps.onAttempt(kind, (performance.now() - this.#started) / 1000);
    // The handshake is the tunnel's one attempt: recorded once, through the permit.
    const p = this.#permits;
    if (p.breaker !== null) p.breaker = p.breaker.record(kind, status);
  }

  #closed(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    releaseTunnelGuards(this.#permits);
    const d = this.#deps;
    // Built only for a log that is on or a tap someone listens to.
    emitTunnel(d.logger, d.tap, () => ({
      protocol: 'websocket',
      requestId: this.#requestId,
      listener: d.listener,
      route: d.route.name,
      upstream: d.upstream.name,
      endpoint: this.#endpoint,
      path: this.#path,
      status: this.#status === 0 ? null : this.#status,
      outcome: this.#kind === 'pending' ? 'client_abort' : this.#kind,
      durationMs: Math.round((performance.now() - this.#started) * 1000) / 1000,
      bytesIn: this.#socket.bytesRead,
      bytesOut: this.#socket.bytesWritten,
      flags: this.#flags,
    }));
  }
}

/** Builds a route's upgrade handler once per config load. */
export function upgradeHandler(deps: UpgradeDeps): (req: IncomingMessage, socket: Socket, head: Buffer, requestId: string) => void {
  // No rate limit: a WebSocket tunnel is subject to the breaker and the bulkhead only (SPEC §3).
  const guards: TunnelGuards = { routeRateLimit: null, upstreamRateLimit: null, breaker: deps.breaker, bulkhead: deps.bulkhead };
  return (req, socket, head, requestId) => {
    const flags: string[] = [];
    // The same guards, in the same order, as an HTTP request (SPEC §4): breaker admission, then the bulkhead (never queued).
    const p = acquireTunnelGuards(guards, flags);
    if (p.type === 'failure') {
      deps.onReject(p.code);
      const bytesOut = writeRawError(socket, p.code, requestId, { retryAfterMs: p.retryAfterMs });
      // Refused before any upstream was dialled: still one 'tunnel' line, as a CONNECT refusal has.
      // Built only for a log that is on or a tap someone listens to.
      emitTunnel(deps.logger, deps.tap, () => ({
        protocol: 'websocket',
        requestId,
        listener: deps.listener,
        route: deps.route.name,
        upstream: deps.upstream.name,
        endpoint: null,
        path: (req.url ?? '/').split('?')[0],
        status: bytesOut < 0 ? null : ERRORS[p.code].status,
        outcome: p.code,
        durationMs: 0,
        bytesIn: 0,
        bytesOut: Math.max(bytesOut, 0),
        flags,
      }));
      return;
    }
    const ep = deps.balancer.pick().endpoint;
    const path = req.url ?? '/';
    const tunnel = new Tunnel(deps, socket, requestId, path.split('?')[0]!, ep.authority, p, flags);
    (req as TunnelRequest)[kTunnel] = tunnel;
    if (deps.route.stripPrefix && deps.route.match.pathPrefix !== null) req.url = stripPrefix(path, deps.route.match.pathPrefix);
    upgradeHeaders(req, deps, requestId);
    proxyServer().ws(req, socket, head, { target: ep.origin, changeOrigin: !deps.upstream.preserveHost }, (err: Error) => tunnel.failed(err));
  };
}

/**
 * The handshake's headers as they go upstream: the same rules as every
 * other request (SPEC §3) — hop-by-hop and Connection-listed headers
 * removed (`Proxy-Authorization`, `Keep-Alive`, `TE`...), names with `_`
 * dropped unless allowed, the upstream's `requestHeaders` applied — except
 * that `Connection: upgrade` and `Upgrade` are what the handshake is.
 */
function upgradeHeaders(req: IncomingMessage, deps: UpgradeDeps, requestId: string): void {
  const h = req.headers;
  const listed = connectionListed(h.connection);
  const upgrade = h.upgrade;
  for (const name of Object.keys(h)) {
    if (isHopByHop(name) || listed?.has(name) === true || (deps.underscoreHeaders !== 'allow' && name.includes('_'))) delete h[name];
  }
  if (upgrade !== undefined) h.upgrade = upgrade;
  h.connection = 'upgrade';
  const rw = deps.upstream.requestHeaders;
  for (const name of rw.remove) delete h[name];
  for (const [name, value] of rw.set) h[name] = value;
  h['x-request-id'] = requestId;
}
