/**
 * WebSocket (Upgrade) tunnels, through http-proxy, isolated in this module
 * (SPEC §3). A tunnel is subject to the breaker's admission, holds one
 * bulkhead slot for as long as it is open, must complete its handshake within
 * the route's connect + perTry budget, and is never retried (a half-open
 * bidirectional stream cannot be replayed).
 *
 * http-proxy only tunnels `Upgrade: websocket`; other upgrade protocols are
 * refused by it (the socket is closed).
 *
 * http-proxy is loaded on the first upgrade, not at start: most sidecars
 * never tunnel, and it is resident memory (it loads node's https/tls stack)
 * that every pod of the fleet would otherwise pay for.
 */
import type { ClientRequest, IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type httpProxy from 'http-proxy';
import type { RouteConfig, UpstreamConfig } from '../config/types.ts';
import { connectionListed, isHopByHop } from './hop-by-hop.ts';
import { classifyError, classifyStatus, errorCodeFor } from '../pipeline/classify.ts';
import { ADMIT, type CircuitBreaker } from '../policies/breaker/breaker.ts';
import { BULKHEAD, type Bulkhead } from '../policies/bulkhead/bulkhead.ts';
import type { Balancer } from '../upstream/pool.ts';
import { writeRawError } from './respond.ts';
import { stripPrefix } from './router.ts';

export interface UpgradeDeps {
  readonly route: RouteConfig;
  readonly upstream: UpstreamConfig;
  /** The listener's rule for header names with `_` (drop or allow; reject was answered at the edge). */
  readonly underscoreHeaders: 'drop' | 'allow' | 'reject';
  readonly balancer: Balancer;
  readonly breaker: CircuitBreaker | null;
  readonly bulkhead: Bulkhead | null;
  readonly onReject: (reason: 'circuit_open' | 'bulkhead_full') => void;
  readonly onAttempt: (kind: ReturnType<typeof classifyError>, seconds: number) => void;
}

const kTunnel = Symbol('breakwater.tunnel');
type TunnelRequest = IncomingMessage & { [kTunnel]?: Tunnel };

let shared: httpProxy | null = null;
/** One http-proxy instance for the process: it holds no per-route state. */
function proxyServer(): httpProxy {
  if (shared !== null) return shared;
  const load = createRequire(import.meta.url)('http-proxy') as typeof httpProxy;
  const p = load.createProxyServer({ ws: true, xfwd: true, changeOrigin: true });
  p.on('proxyReqWs', (proxyReq: ClientRequest, req: IncomingMessage) => (req as TunnelRequest)[kTunnel]?.attach(proxyReq));
  // Errors are handled per call (the callback of ws()); this keeps an
  // unexpected one from becoming an uncaught 'error' event.
  p.on('error', () => {});
  shared = p;
  return p;
}

class Tunnel {
  readonly #deps: UpgradeDeps;
  readonly #socket: Socket;
  readonly #requestId: string;
  readonly #started = performance.now();
  #probe = false;
  #slot = false;
  #timer: NodeJS.Timeout | null = null;
  #settled = false;

  constructor(deps: UpgradeDeps, socket: Socket, requestId: string, probe: boolean, slot: boolean) {
    this.#deps = deps;
    this.#socket = socket;
    this.#requestId = requestId;
    this.#probe = probe;
    this.#slot = slot;
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
      this.#socket.destroy();
      return;
    }
    const kind = classifyError(err);
    this.#settle(kind, 0);
    if (!this.#socket.destroyed) {
      writeRawError(this.#socket, errorCodeFor(kind), this.#requestId);
    }
  }

  #timeout(): void {
    this.#timer = null;
    if (this.#settled) return;
    this.#settle('timeout', 0);
    writeRawError(this.#socket, 'timeout', this.#requestId);
  }

  #settle(kind: ReturnType<typeof classifyError>, status: number): void {
    if (this.#settled) return;
    this.#settled = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#deps.onAttempt(kind, (performance.now() - this.#started) / 1000);
    this.#deps.breaker?.record(kind, status, this.#probe);
    this.#probe = false;
  }

  #closed(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#probe) this.#deps.breaker?.cancelProbe();
    this.#probe = false;
    if (this.#slot) this.#deps.bulkhead?.release();
    this.#slot = false;
  }
}

/** Builds a route's upgrade handler once per config load. */
export function upgradeHandler(deps: UpgradeDeps): (req: IncomingMessage, socket: Socket, head: Buffer, requestId: string) => void {
  return (req, socket, head, requestId) => {
    let probe = false;
    if (deps.breaker !== null) {
      const a = deps.breaker.admit();
      if (a === ADMIT.REJECT) {
        deps.onReject('circuit_open');
        return writeRawError(socket, 'circuit_open', requestId);
      }
      probe = a === ADMIT.PROBE;
    }
    let slot = false;
    if (deps.bulkhead !== null) {
      const b = deps.bulkhead.tryAcquire();
      // A tunnel does not queue: it would hold the client's socket waiting.
      if (b === BULKHEAD.QUEUE || b === BULKHEAD.FULL) {
        if (probe) deps.breaker?.cancelProbe();
        deps.onReject('bulkhead_full');
        return writeRawError(socket, 'bulkhead_full', requestId);
      }
      slot = true;
    }
    const tunnel = new Tunnel(deps, socket, requestId, probe, slot);
    (req as TunnelRequest)[kTunnel] = tunnel;
    const ep = deps.balancer.pick().endpoint;
    if (deps.route.stripPrefix && deps.route.match.pathPrefix !== null) req.url = stripPrefix(req.url ?? '/', deps.route.match.pathPrefix);
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
