/**
 * The admin endpoint (SPEC §6), on its own listener (loopback by default).
 * Small and boring on purpose: it must keep answering when everything else is
 * on fire, so it does no work beyond reading state.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { http } from '../http/node-http.ts';
import type { BreakwaterConfig, ListenerAddress } from '../config/types.ts';
import { BindError } from '../http/server.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics/index.ts';
import type { StateRegistry } from '../runtime/state.ts';
import type { TapHub } from '../observability/tap.ts';
import { serveTap } from './tap.ts';

/**
 * What the admin API reads and drives: the running proxy (runtime/proxy.ts),
 * seen through only what the endpoints need, so the two modules do not
 * import each other.
 */
export interface AdminTarget {
  readonly config: BreakwaterConfig;
  readonly loadedAt: Date;
  readonly lastReload: { readonly at: string; readonly ok: boolean; readonly errors: readonly string[] } | null;
  readonly registry: StateRegistry;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly ready: boolean;
  readonly draining: boolean;
  readonly tap: TapHub;
  reload(trigger: string): Promise<{ readonly result: 'success' | 'failure' | 'unchanged'; readonly hash: string; readonly errors: readonly string[] }>;
}

const CIRCUIT = /^\/upstreams\/([^/]+)\/circuit$/;

export class AdminServer {
  readonly #proxy: AdminTarget;
  readonly #address: ListenerAddress;
  readonly server: Server;
  #port = 0;

  constructor(proxy: AdminTarget, address: ListenerAddress) {
    this.#proxy = proxy;
    this.#address = address;
    this.server = http.createServer({ keepAliveTimeout: 5_000, requestTimeout: 10_000 }, (req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        proxy.logger.error({ err }, 'admin_error');
        if (!res.headersSent) send(res, 500, { error: 'internal' });
        else res.destroy();
      });
    });
  }

  get port(): number {
    return this.#port;
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', (err: NodeJS.ErrnoException) => reject(new BindError('admin', this.#address.text, err)));
      this.server.listen({ host: this.#address.host, port: this.#address.port, exclusive: true }, () => {
        const a = this.server.address();
        this.#port = typeof a === 'object' && a !== null ? a.port : 0;
        resolve();
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const p = this.#proxy;
    const url = (req.url ?? '/').split('?')[0]!;
    const method = req.method ?? 'GET';
    if (method === 'GET' || method === 'HEAD') {
      switch (url) {
        case '/healthz':
          return text(res, 200, 'ok');
        case '/readyz':
          return p.ready && !p.draining ? text(res, 200, 'ready') : text(res, 503, p.draining ? 'draining' : 'not ready');
        case '/metrics': {
          const body = await p.metrics.metricsText();
          res.writeHead(200, { 'content-type': p.metrics.contentType });
          res.end(body);
          return;
        }
        case '/config': {
          const c = p.config;
          return send(res, 200, {
            version: c.version,
            hash: c.source.hash,
            loadedAt: p.loadedAt.toISOString(),
            source: c.source.file,
            config: c.source.redacted,
            lastReload: p.lastReload,
          });
        }
        case '/upstreams':
          return send(res, 200, upstreamsState(p));
        case '/tap':
          return serveTap(p.tap, p.logger, req, res);
      }
      return send(res, 404, { error: 'not_found' });
    }
    if (method === 'POST') {
      if (url === '/reload') {
        const r = await p.reload('admin');
        p.logger.info({ audit: true, action: 'reload', client: req.socket.remoteAddress, result: r.result }, 'admin_action');
        return r.result === 'failure' ? send(res, 400, { result: r.result, errors: r.errors }) : send(res, 200, { result: r.result, hash: r.hash });
      }
      const m = CIRCUIT.exec(url);
      if (m !== null) return this.#circuit(req, res, decodeURIComponent(m[1]!));
    }
    return send(res, url === '/reload' || CIRCUIT.test(url) ? 405 : 404, { error: url === '/reload' || CIRCUIT.test(url) ? 'method_not_allowed' : 'not_found' });
  }

  async #circuit(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const p = this.#proxy;
    const raw = await readSmall(req, 4096);
    let state: unknown;
    try {
      state = (JSON.parse(raw) as { state?: unknown }).state;
    } catch {
      state = undefined;
    }
    if (!p.config.upstreams.has(name)) return send(res, 404, { error: 'unknown_upstream', upstream: name });
    const breaker = p.registry.breakers.get(name);
    if (breaker === undefined) return send(res, 409, { error: 'no_circuit_breaker', upstream: name });
    if (state !== 'open' && state !== 'closed' && state !== 'auto') {
      return send(res, 400, { error: 'bad_state', message: 'body must be {"state":"open"|"closed"|"auto"}' });
    }
    const before = breaker.state;
    breaker.force(state);
    p.logger.warn({ audit: true, action: 'force_circuit', upstream: name, requested: state, from: before, to: breaker.state, client: req.socket.remoteAddress }, 'admin_action');
    return send(res, 200, { upstream: name, state: breaker.state, forced: state === 'auto' ? null : state });
  }
}

function upstreamsState(p: AdminTarget): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, u] of p.config.upstreams) {
    const breaker = p.registry.breakers.get(name);
    const bulkhead = p.registry.bulkheads.get(name);
    const bucket = p.registry.buckets.get(`upstream:${name}`);
    const budget = p.registry.budgets.get(`upstream:${name}`);
    out[name] = {
      endpoints: u.endpoints.map((e) => e.authority),
      circuitBreaker: breaker === undefined ? null : breaker.snapshot(),
      bulkhead: bulkhead === undefined ? null : { active: bulkhead.active, queued: bulkhead.queued, maxConcurrent: u.bulkhead?.maxConcurrent ?? null, maxQueue: u.bulkhead?.maxQueue ?? null },
      rateLimit: bucket === undefined ? null : { tokens: Math.floor(bucket.tokens() * 100) / 100, burst: u.rateLimit?.burst ?? null, rate: u.rateLimit?.rate.source ?? null },
      retryBudget: budget === undefined ? null : { remaining: budget.remaining() },
    };
  }
  return out;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
  res.end(s);
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function readSmall(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve(''));
  });
}
