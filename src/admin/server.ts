/**
 * The admin endpoint (SPEC §6), on its own listener (loopback by default).
 * Small and boring on purpose: it must keep answering when everything else is
 * on fire, so it does no work beyond reading state.
 *
 * The dispatcher (#serve) does two things for every endpoint, present and
 * future, so handlers do neither (SPEC §11.3): it checks the bearer token
 * (auth.ts) when `admin.token` is set, answering 401 and auditing the
 * refusal; and it writes one `admin_action` audit line for every call that
 * can change something (any method but GET and HEAD) once it is answered
 * (audit.ts). Handlers read bodies with `readSmall` and answer with `send` so
 * the line carries the body's fields and the error code.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { http } from '../http/node-http.ts';
import type { BreakwaterConfig, ListenerAddress, RateLimitConfig } from '../config/types.ts';
import { BindError } from '../http/server.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics/index.ts';
import type { AuditLog } from '../observability/audit.ts';
import type { StateRegistry } from '../runtime/state.ts';
import type { DeadLetters } from '../dead-letter/hub.ts';
import { deadLetterAdmin, decodeSegment } from './dead-letters.ts';
import { send } from './reply.ts';
import { argumentsOf, auditDetails, auditedElsewhere, detailsOf, isAuditedElsewhere, outcomeOf, recordBody } from './audit.ts';
import { TokenCheck } from './auth.ts';
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
  readonly audit: AuditLog;
  readonly ready: boolean;
  readonly draining: boolean;
  /** The dead-letter spools (SPEC §11.1, admin/dead-letters.ts). */
  readonly deadLetters: DeadLetters;
  /** Live access lines for `GET /tap` (SPEC §13, admin/tap.ts). */
  readonly tap: TapHub;
  /** `client`: the admin API's caller, for the audit line. */
  reload(trigger: string, client?: string): Promise<{ readonly result: 'success' | 'failure' | 'unchanged'; readonly hash: string; readonly errors: readonly string[] }>;
}

const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

/** Accept names application/openmetrics-text with a non-zero q (Prometheus sends it first by default). */
export function acceptsOpenMetrics(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  for (const part of accept.split(',')) {
    const [type, ...params] = part.split(';');
    if (type!.trim().toLowerCase() !== 'application/openmetrics-text') continue;
    const q = params.map((x) => x.trim()).find((x) => x.startsWith('q='));
    if (q === undefined || Number(q.slice(2)) > 0) return true;
  }
  return false;
}

const CIRCUIT = /^\/upstreams\/([^/]+)\/circuit$/;

export class AdminServer {
  readonly #proxy: AdminTarget;
  readonly #address: ListenerAddress;
  readonly server: Server;
  readonly #auth = new TokenCheck();
  #port = 0;

  constructor(proxy: AdminTarget, address: ListenerAddress) {
    this.#proxy = proxy;
    this.#address = address;
    this.server = http.createServer({ keepAliveTimeout: 5_000, requestTimeout: 10_000 }, (req, res) => {
      this.#serve(req, res).catch((err: unknown) => {
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

  /** Token check and audit around every call (see the top of the file). */
  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const p = this.#proxy;
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    const path = q < 0 ? target : target.slice(0, q);
    const method = req.method ?? 'GET';
    const client = req.socket.remoteAddress;
    const token = p.config.admin.token;
    if (token !== null && TokenCheck.needed(token, method, path)) {
      const auth = this.#auth.check(token, req.headers.authorization);
      if (!auth.ok) {
        p.audit.adminUnauthorized({ method, path: bounded(path), client, reason: auth.reason });
        // The body is not read: close after the answer rather than read (and drain) what an unknown caller sends.
        if (method !== 'GET' && method !== 'HEAD') res.shouldKeepAlive = false;
        return send(
          res,
          401,
          { error: 'unauthorized', message: 'this admin endpoint needs Authorization: Bearer <admin.token>' },
          { 'www-authenticate': auth.reason === 'invalid' ? 'Bearer realm="breakwater-admin", error="invalid_token"' : 'Bearer realm="breakwater-admin"' },
        );
      }
    }
    if (method !== 'GET' && method !== 'HEAD') {
      // The line is written once the call is over on both sides: its answer
      // closed AND its handler done. A caller that leaves while a replay runs
      // does not stop the replay; the line then says what it did.
      const closed = new Promise<void>((resolve) => res.once('close', resolve));
      const handled = this.#handle(req, res);
      void Promise.allSettled([closed, handled]).then(() => {
        if (isAuditedElsewhere(res)) return;
        const outcome = outcomeOf(req, res);
        p.audit.adminAction({
          method,
          path: bounded(path),
          args: argumentsOf(req, q < 0 ? '' : target.slice(q + 1), token === null ? [] : [token]),
          status: res.headersSent && outcome !== 'aborted' ? res.statusCode : null,
          outcome,
          client,
          details: detailsOf(res),
        });
      });
      return handled;
    }
    return this.#handle(req, res);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const p = this.#proxy;
    const [url = '/', query = ''] = (req.url ?? '/').split('?', 2);
    const method = req.method ?? 'GET';
    if (await deadLetterAdmin(p.deadLetters, req, res, url, new URLSearchParams(query))) return;
    if (method === 'GET' || method === 'HEAD') {
      switch (url) {
        case '/healthz':
          return text(res, 200, 'ok');
        case '/readyz':
          return p.ready && !p.draining ? text(res, 200, 'ready') : text(res, 503, p.draining ? 'draining' : 'not ready');
        case '/metrics': {
          // OpenMetrics (with exemplars) when tracing is on and the scraper asks for it (SPEC §13).
          if (p.config.tracing !== null && acceptsOpenMetrics(req.headers.accept)) {
            const om = await p.metrics.openMetricsText();
            res.writeHead(200, { 'content-type': OPENMETRICS_CONTENT_TYPE });
            res.end(om);
            return;
          }
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
        // Its config_change line names the client: one audit line for the call,
        // even if the client goes away before the reload is done.
        auditedElsewhere(res);
        const r = await p.reload('api', req.socket.remoteAddress);
        return r.result === 'failure' ? send(res, 400, { result: r.result, errors: r.errors }) : send(res, 200, { result: r.result, hash: r.hash });
      }
      const m = CIRCUIT.exec(url);
      if (m !== null) {
        const name = decodeSegment(m[1]!);
        if (name === null) return send(res, 400, { error: 'bad_request', message: 'the upstream name is not valid percent-encoding' });
        return this.#circuit(req, res, name);
      }
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
    auditDetails(res, { action: 'force_circuit', upstream: name, requested: state, from: before, to: breaker.state });
    return send(res, 200, { upstream: name, state: breaker.state, forced: state === 'auto' ? null : state });
  }
}

/** A local limit's bucket, or a global one's state in this process (its lease, and whether Redis or the local share admits). */
function rateLimitState(p: AdminTarget, upstream: string, rl: RateLimitConfig | null): Record<string, unknown> | null {
  if (rl === null) return null;
  const common = { scope: rl.scope, rate: rl.rate.source, burst: rl.burst };
  if (rl.scope === 'global') {
    const g = p.registry.globals.get(rl.key ?? `upstream:${upstream}`);
    return g === undefined ? null : { ...common, ...g.snapshot() };
  }
  const bucket = p.registry.buckets.get(`upstream:${upstream}`);
  return bucket === undefined ? null : { tokens: Math.floor(bucket.tokens() * 100) / 100, ...common };
}

function upstreamsState(p: AdminTarget): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, u] of p.config.upstreams) {
    const breaker = p.registry.breakers.get(name);
    const bulkhead = p.registry.bulkheads.get(name);
    const budget = p.registry.budgets.get(`upstream:${name}`);
    out[name] = {
      endpoints: u.endpoints.map((e) => e.authority),
      circuitBreaker: breaker === undefined ? null : breaker.snapshot(),
      bulkhead: bulkhead === undefined ? null : { active: bulkhead.active, queued: bulkhead.queued, maxConcurrent: u.bulkhead?.maxConcurrent ?? null, maxQueue: u.bulkhead?.maxQueue ?? null },
      rateLimit: rateLimitState(p, name, u.rateLimit),
      retryBudget: budget === undefined ? null : { remaining: budget.remaining() },
    };
  }
  return out;
}


function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** A request body, up to `limit` bytes (the rest is read and dropped); recorded for the audit line. */
function readSmall(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
      // Measured as it comes: a caller that leaves mid-body is audited with what it sent.
      recordBody(req, '', size);
    });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      recordBody(req, text, size);
      resolve(text);
    });
    req.on('error', () => resolve(''));
    // A client gone before the end of its body: nothing is acted on (a no-op after 'end').
    req.on('close', () => resolve(''));
  });
}

/** Paths as audited: a long one is cut, not dropped. */
function bounded(path: string): string {
  return path.length > 512 ? `${path.slice(0, 512)}…` : path;
}
