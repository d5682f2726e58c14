/**
 * Shared pieces of the chaos suite: a concurrent keep-alive load driver that
 * records, for every request, whether headers arrived and whether the body
 * completed; the SPEC §4.7 shape check for generated answers; fault-injecting
 * upstreams the scriptable test upstream cannot play (slow accept); and the
 * "back to rest" checks run after each load (readiness, bulkheads empty,
 * inflight gauge 0, upstream requests released).
 *
 * Everything is bounded: every request has a deadline, every poll a timeout.
 * CHAOS_SCALE (default 1) multiplies request counts, never timeouts.
 */
import http from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { ERRORS, type ErrorCode } from '../../src/errors.ts';
import type { TestProxy } from '../helpers/proxy.ts';

export const SCALE = (() => {
  const n = Number(process.env['CHAOS_SCALE'] ?? '1');
  return Number.isFinite(n) && n > 0 ? n : 1;
})();

/** `n` scaled by CHAOS_SCALE, at least `min`. */
export function scaled(n: number, min = 1): number {
  return Math.max(min, Math.round(n * SCALE));
}

export interface Outcome {
  readonly index: number;
  /** 0 when no response head arrived. */
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  /** The response head arrived. */
  readonly gotHeaders: boolean;
  /** The response body arrived completely. */
  readonly complete: boolean;
  /** What went wrong on the client side, if anything (socket error, cut, client timeout). */
  readonly error: string | null;
  readonly ms: number;
}

export interface RequestSpec {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface DriveOptions {
  /** Base URL: http://127.0.0.1:PORT */
  readonly url: string;
  readonly requests: number;
  readonly concurrency: number;
  readonly make: (i: number) => RequestSpec;
  /** Per-request client deadline (default 5000 ms): far above any proxy timeout used by the suite. */
  readonly timeoutMs?: number;
  /** Target rate in requests/s across all workers (default: as fast as possible). */
  readonly ratePerSecond?: number;
  /** Keep-alive agent; one is made (and destroyed) when absent. */
  readonly agent?: http.Agent;
}

/**
 * Runs `requests` requests from `concurrency` workers over kept-alive
 * connections; resolves with one Outcome per request, in request order.
 */
export async function drive(opts: DriveOptions): Promise<Outcome[]> {
  const agent = opts.agent ?? new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const out: Outcome[] = new Array(opts.requests);
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= opts.requests) return;
      if (opts.ratePerSecond !== undefined) {
        const due = started + (i * 1000) / opts.ratePerSecond;
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
      }
      out[i] = await one(opts.url, opts.make(i), i, agent, opts.timeoutMs ?? 5000);
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, worker));
  } finally {
    if (opts.agent === undefined) agent.destroy();
  }
  return out;
}

/** One request; never rejects: what happened is in the Outcome. */
export function one(base: string, spec: RequestSpec, index: number, agent: http.Agent | false, timeoutMs: number): Promise<Outcome> {
  const t0 = performance.now();
  const headers: Record<string, string> = { ...spec.headers };
  if (spec.body !== undefined) headers['content-length'] = String(Buffer.byteLength(spec.body));
  return new Promise((resolve) => {
    let status = 0;
    let resHeaders: http.IncomingHttpHeaders = {};
    let gotHeaders = false;
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (complete: boolean, error: string | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!complete) req.destroy();
      resolve({
        index,
        status,
        headers: resHeaders,
        body: Buffer.concat(chunks).toString('utf8'),
        gotHeaders,
        complete,
        error,
        ms: performance.now() - t0,
      });
    };
    const req = http.request(`${base}${spec.path}`, { method: spec.method ?? 'GET', headers, agent }, (res) => {
      gotHeaders = true;
      status = res.statusCode ?? 0;
      resHeaders = res.headers;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (e) => finish(false, `response error: ${e.message}`));
      res.on('aborted', () => finish(false, 'response aborted mid-body'));
      res.on('end', () => (res.complete ? finish(true, null) : finish(false, 'response ended incomplete')));
      res.on('close', () => finish(res.complete, res.complete ? null : 'response closed incomplete'));
    });
    const timer = setTimeout(() => finish(false, `client deadline ${timeoutMs}ms passed`), timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => finish(false, `request error: ${e.code ?? e.message}`));
    req.end(spec.body);
  });
}

/**
 * Checks a generated answer against SPEC §4.7: the status of its code,
 * `x-breakwater-error`, JSON content type, the body's fields, the request id
 * echoed, Retry-After where the SPEC demands it. Returns a problem, or null.
 */
export function checkGenerated(o: Pick<Outcome, 'status' | 'headers' | 'body'>, allowed: ReadonlySet<string>): string | null {
  const code = o.headers['x-breakwater-error'];
  if (typeof code !== 'string') return 'no x-breakwater-error header';
  if (!allowed.has(code)) return `generated code ${code} (${o.status}) is not expected here`;
  const spec = ERRORS[code as ErrorCode];
  if (spec === undefined) return `unknown code ${code}`;
  if (o.status !== spec.status) return `code ${code} came with status ${o.status}, SPEC says ${spec.status}`;
  if (!String(o.headers['content-type'] ?? '').startsWith('application/json')) return `code ${code}: content-type ${String(o.headers['content-type'])}`;
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(o.body) as Record<string, unknown>;
  } catch {
    return `code ${code}: body is not JSON: ${o.body.slice(0, 80)}`;
  }
  if (body['error'] !== code) return `code ${code}: body.error is ${String(body['error'])}`;
  if (typeof body['message'] !== 'string' || body['message'] === '') return `code ${code}: no message`;
  for (const k of ['upstream', 'route'] as const) {
    if (!(k in body) || (body[k] !== null && typeof body[k] !== 'string')) return `code ${code}: body.${k} is ${String(body[k])}`;
  }
  if (typeof body['requestId'] !== 'string' || body['requestId'] === '') return `code ${code}: no requestId`;
  if (o.headers['x-request-id'] !== undefined && o.headers['x-request-id'] !== body['requestId']) return `code ${code}: requestId differs from x-request-id`;
  if ((code === 'rate_limited' || code === 'circuit_open') && !/^\d+$/.test(String(o.headers['retry-after'] ?? ''))) {
    return `code ${code}: Retry-After is ${String(o.headers['retry-after'])}`;
  }
  return null;
}

/** A short label for tallies: "200", "gen:timeout", "fb:response", "cut:200", "none". */
export function label(o: Outcome): string {
  if (!o.gotHeaders) return 'none';
  if (!o.complete) return `cut:${o.status}`;
  const code = o.headers['x-breakwater-error'];
  if (typeof code === 'string') return `gen:${code}`;
  const fb = o.headers['x-breakwater-fallback'];
  if (typeof fb === 'string') return `fb:${fb}`;
  return String(o.status);
}

export function tally(outcomes: readonly Outcome[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const o of outcomes) t[label(o)] = (t[label(o)] ?? 0) + 1;
  return Object.fromEntries(Object.entries(t).sort(([a], [b]) => a.localeCompare(b)));
}

// --- the proxy at rest ------------------------------------------------------------

/** GET on the admin endpoint, with its own short deadline (no agent: nothing kept alive). */
export async function admin(px: TestProxy, path: string): Promise<{ status: number; body: string }> {
  const o = await one(px.adminUrl, { path }, 0, false, 5000);
  if (!o.complete) throw new Error(`admin ${path}: ${o.error ?? 'incomplete'}`);
  return { status: o.status, body: o.body };
}

/** Sum of every `breakwater_inflight_requests` series. */
export function inflightFromMetrics(text: string): number {
  let n = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('breakwater_inflight_requests')) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) n += v;
  }
  return n;
}

export interface RestState {
  readonly ready: number;
  readonly inflight: number;
  readonly bulkheads: Record<string, { active: number; queued: number }>;
  readonly upstreamInFlight: number;
}

/**
 * Polls until the proxy is at rest after a load (every bulkhead 0/0, the
 * inflight gauge 0, no upstream request left open, /readyz 200) or
 * `settleMs` passed; returns the last state seen so the caller asserts on it.
 */
export async function waitForRest(
  px: TestProxy,
  upstreamInFlight: () => number,
  settleMs = 3000,
): Promise<RestState> {
  const end = Date.now() + settleMs;
  for (;;) {
    const ready = (await admin(px, '/readyz')).status;
    const inflight = inflightFromMetrics((await admin(px, '/metrics')).body);
    const ups = JSON.parse((await admin(px, '/upstreams')).body) as Record<string, { bulkhead: { active: number; queued: number } | null }>;
    const bulkheads: Record<string, { active: number; queued: number }> = {};
    let busy = false;
    for (const [name, u] of Object.entries(ups)) {
      if (u.bulkhead === null) continue;
      bulkheads[name] = { active: u.bulkhead.active, queued: u.bulkhead.queued };
      if (u.bulkhead.active !== 0 || u.bulkhead.queued !== 0) busy = true;
    }
    const up = upstreamInFlight();
    const state = { ready, inflight, bulkheads, upstreamInFlight: up };
    if ((ready === 200 && inflight === 0 && up === 0 && !busy) || Date.now() > end) return state;
    await sleep(50);
  }
}

// --- fault upstreams the scriptable upstream cannot play ------------------------

export interface SlowAccept {
  readonly origin: string;
  /** Connections accepted and not yet closed. */
  readonly open: number;
  /** Requests being answered right now. */
  readonly inFlight: number;
  readonly requests: number;
  close(): Promise<void>;
}

/**
 * A server that takes connections (the kernel completes the handshake, so a
 * connect timeout never fires) but does not read them for `minMs..maxMs`:
 * what an overloaded upstream with a full accept queue looks like from the
 * outside. Then it answers 200 `ok`; every third answer closes the
 * connection, so new connections — and new slow accepts — keep coming.
 */
export async function startSlowAccept(minMs: number, maxMs: number): Promise<SlowAccept> {
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let inFlight = 0;
  let requests = 0;
  const inner = http.createServer((req, res) => {
    inFlight++;
    res.once('close', () => inFlight--);
    req.resume();
    req.on('end', () => {
      requests++;
      const close = requests % 3 === 0;
      res.writeHead(200, { 'content-length': 2, ...(close ? { connection: 'close' } : {}) });
      res.end('ok');
    });
  });
  const outer = net.createServer({ pauseOnConnect: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const t = setTimeout(() => {
      timers.delete(t);
      if (socket.destroyed) return;
      inner.emit('connection', socket);
      socket.resume();
    }, minMs + Math.random() * (maxMs - minMs));
    timers.add(t);
  });
  await new Promise<void>((resolve) => outer.listen(0, '127.0.0.1', () => resolve()));
  const port = (outer.address() as net.AddressInfo).port;
  return {
    origin: `http://127.0.0.1:${port}`,
    get open() {
      return sockets.size;
    },
    get inFlight() {
      return inFlight;
    },
    get requests() {
      return requests;
    },
    close() {
      return new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        outer.close(() => resolve());
        for (const s of sockets) s.destroy();
        inner.close();
      });
    },
  };
}

// --- raw HTTP/1.1 response parsing (pipelining, hostile input) -------------------

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Splits a byte stream of HTTP/1.1 responses (content-length framed, as every
 * response breakwater and the test upstream send in the suite is) into
 * responses. Stops at the first response it cannot frame.
 */
export function parseResponses(raw: string): RawResponse[] {
  const out: RawResponse[] = [];
  let pos = 0;
  while (pos < raw.length) {
    const headEnd = raw.indexOf('\r\n\r\n', pos);
    if (headEnd < 0) break;
    const lines = raw.slice(pos, headEnd).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (m === null) break;
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':');
      if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
    }
    const len = Number(headers['content-length'] ?? '0');
    if (!Number.isFinite(len)) break;
    // Bodies here are ASCII/JSON: string offsets equal byte offsets.
    const body = raw.slice(headEnd + 4, headEnd + 4 + len);
    out.push({ status: Number(m[1]), headers, body });
    pos = headEnd + 4 + len;
  }
  return out;
}
