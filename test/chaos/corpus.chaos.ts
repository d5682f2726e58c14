/**
 * Hostile input from public request-smuggling and desync corpora (smuggler,
 * http-request-smuggler, http-garden, Http11Probe, h2csmuggler,
 * websocket-smuggle; see corpus/cases.ts), judged by what reaches a raw
 * upstream.
 *
 * breakwater runs in-process with one catch-all-free listener whose only
 * route sends Host `api.test` to upstream `raw`: a `net` server that frames
 * what arrives with a strict RFC 9112 reading (corpus/rfc9112.ts), records
 * every request (method, target, fields, body) and answers 200 with
 * "METHOD target" as the body (`…/slow` after 300 ms; a WebSocket upgrade
 * gets 101, or 426 for a bad Sec-WebSocket-Version, as websocket-smuggle's
 * backend does). A second "canary" server listens on a port no config names.
 *
 * Each case's bytes go out on a fresh socket, followed (unless the case says
 * not) by NEXT, a well-formed `GET /next` with `Connection: close`; the
 * client reads until the server closes or 2 s pass quietly. Then:
 *   - what reached the upstream is exactly what a correct proxy forwards
 *     (never a smuggled request, never a request the client's bytes do not
 *     carry), with sane fields: no underscore names, no hop-by-hop fields,
 *     the endpoint's Host, framing of breakwater's own; the canary was never
 *     contacted; nothing arrived that a strict server would refuse;
 *   - what the client read, parsed strictly, is in request order, each answer
 *     a SPEC §4.7 one (with its x-breakwater-error and JSON body) or the
 *     upstream's, nothing after an answer sent with `connection: close`, and
 *     the socket closed then.
 * A case's allowed outcomes are listed with it, or derived (`expect:
 * 'model'`) from a strict reading of its bytes: invalid → 400 and closed;
 * Transfer-Encoding with Content-Length, or in HTTP/1.0 → 400, or forwarded
 * by its chunked framing and then closed; otherwise forwarded as framed, and
 * the next request after it.
 *
 * Run: node --test test/chaos/corpus.chaos.ts (or npm run test:chaos).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { CASES, FAMILY_TITLES, NEXT, type Case, type Family, type Item, type Outcome } from './corpus/cases.ts';
import { fieldValues, listElements, readChunked, readRequest, type Field, type StrictRequest } from './corpus/rfc9112.ts';
import { checkGenerated } from './lib.ts';

/** Quiet period that ends an exchange when the server neither answers nor closes. */
const QUIET_MS = 2000;
/** Hard limit on one exchange. */
const EXCHANGE_MS = 6000;
/** After the client is done: time for a request forwarded late (on another pooled connection) to arrive. */
const SETTLE_MS = 80;
const BODY_LIMIT = 1024;

// --- the raw recording upstream and the canary ----------------------------------------------

interface UpRecord {
  readonly method: string;
  readonly target: string;
  readonly fields: readonly Field[];
  readonly body: string;
  readonly trailers: readonly Field[];
}

class RawUpstream {
  readonly records: UpRecord[] = [];
  /** What a strict server refused (breakwater sent bytes it should not have). */
  readonly violations: string[] = [];
  /** Bytes that arrived inside a WebSocket tunnel after a 101. */
  tunnelBytes = '';
  #server = net.createServer((s) => this.#connection(s));
  readonly #sockets = new Set<net.Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  port = 0;

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.port = (this.#server.address() as net.AddressInfo).port;
  }

  reset(): void {
    this.records.length = 0;
    this.violations.length = 0;
    this.tunnelBytes = '';
  }

  close(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    for (const s of this.#sockets) s.destroy();
    return new Promise((r) => this.#server.close(() => r()));
  }

  #later(ms: number, fn: () => void): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#timers.delete(t);
        fn();
        resolve();
      }, ms);
      this.#timers.add(t);
    });
  }

  #connection(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    socket.on('error', () => {});
    let buf = '';
    let mode: 'http' | 'tunnel' | 'done' = 'http';
    // Answers go out in request order, whatever their delays.
    let chain = Promise.resolve();
    const send = (fn: () => void, delayMs = 0): void => {
      chain = chain.then(() => (delayMs > 0 ? this.#later(delayMs, fn) : fn()));
    };
    const write = (s: string): void => {
      if (!socket.destroyed) socket.write(s, 'latin1');
    };
    socket.on('data', (d: Buffer) => {
      if (mode === 'tunnel') {
        this.tunnelBytes += d.toString('latin1');
        return;
      }
      if (mode === 'done') return;
      buf += d.toString('latin1');
      for (;;) {
        const r = readRequest(buf);
        if (r.kind === 'incomplete') return;
        if (r.kind === 'invalid') {
          this.violations.push(`${r.reason}: ${JSON.stringify(buf.slice(0, 300))}`);
          mode = 'done';
          send(() => {
            write('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
            socket.end();
          });
          return;
        }
        buf = buf.slice(r.used);
        const req = r.req;
        this.records.push({ method: req.method, target: req.target, fields: req.fields, body: req.body, trailers: req.trailers });
        const echo = `${req.method} ${req.target}`;
        const close = !req.persistent;
        const answer = (status: string, extra: string): string =>
          `HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\n${extra}content-length: ${echo.length}\r\n${close ? 'connection: close\r\n' : ''}\r\n${req.method === 'HEAD' ? '' : echo}`;
        if (isWebSocketUpgrade(req)) {
          const key = fieldValues(req.fields, 'sec-websocket-key')[0];
          const version = fieldValues(req.fields, 'sec-websocket-version')[0];
          if (version === '13' && key !== undefined) {
            mode = 'tunnel';
            this.tunnelBytes += buf;
            buf = '';
            const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
            send(() => write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n\r\n`));
            // End the tunnel soon: the exchange is judged on what came before it.
            send(() => socket.end(), 100);
            return;
          }
          // websocket-smuggle's backend: refuse, and keep reading HTTP on this connection.
          send(() => write(answer('426 Upgrade Required', 'sec-websocket-version: 13\r\n')));
        } else {
          send(() => write(answer('200 OK', '')), req.target.endsWith('/slow') ? 300 : 0);
        }
        if (close) {
          mode = 'done';
          send(() => socket.end());
          return;
        }
      }
    });
  }
}

function isWebSocketUpgrade(req: StrictRequest): boolean {
  const upgrade = fieldValues(req.fields, 'upgrade').join(',').toLowerCase();
  const conn = listElements(fieldValues(req.fields, 'connection')).map((t) => t.toLowerCase());
  return req.method === 'GET' && upgrade.includes('websocket') && conn.includes('upgrade');
}

/** A server on a port no config names: nobody should ever connect to it. */
class Canary {
  connections = 0;
  readonly #servers: net.Server[] = [];

  /** Listens on host:port (0: any); resolves with the port, or 0 if it could not. */
  async listen(host: string, port = 0): Promise<number> {
    const s = net.createServer((sock) => {
      this.connections++;
      sock.destroy();
    });
    const ok = await new Promise<boolean>((resolve) => {
      s.once('error', () => resolve(false));
      s.listen(port, host, () => resolve(true));
    });
    if (!ok) return 0;
    this.#servers.push(s);
    return (s.address() as net.AddressInfo).port;
  }

  close(): Promise<void> {
    return Promise.all(this.#servers.map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => undefined);
  }
}

// --- the client side ------------------------------------------------------------------------------------

interface Exchange {
  /** Everything read, latin1. */
  readonly raw: string;
  /** The server closed (or reset) the connection. */
  readonly closed: boolean;
}

function exchange(port: number, bytes: Buffer): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let connected = false;
    let settled = false;
    const socket = net.connect({ port, host: '127.0.0.1' });
    const finish = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(quiet);
      clearTimeout(hard);
      socket.destroy();
      resolve({ raw: Buffer.concat(chunks).toString('latin1'), closed });
    };
    let quiet = setTimeout(() => finish(false), QUIET_MS);
    const hard = setTimeout(() => finish(false), EXCHANGE_MS);
    socket.on('connect', () => {
      connected = true;
      socket.write(bytes);
    });
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      clearTimeout(quiet);
      quiet = setTimeout(() => finish(false), QUIET_MS);
    });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', (err) => {
      if (connected) return finish(true);
      if (settled) return;
      settled = true;
      clearTimeout(quiet);
      clearTimeout(hard);
      reject(err);
    });
  });
}

interface Resp {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

interface Parsed {
  /** Final responses, in order. */
  readonly finals: Resp[];
  /** 1xx other than 101. */
  readonly interims: Resp[];
  /** A 101 ended HTTP on the connection. */
  readonly switched: boolean;
  /** Bytes left over that are not a response (empty when all was parsed). */
  readonly rest: string;
  readonly error: string | null;
}

/**
 * Splits what the client read into responses, strictly: status line, CRLF
 * field lines, framing by status (1xx, 204, 304 and answers to HEAD carry no
 * body, a 2xx to CONNECT opens a tunnel in which HTTP goes on), chunked or
 * Content-Length, else the body runs to the close.
 */
function parseResponses(raw: string, c: Case): Parsed {
  const finals: Resp[] = [];
  const interims: Resp[] = [];
  let pos = 0;
  const fail = (error: string): Parsed => ({ finals, interims, switched: false, rest: raw.slice(pos), error });
  while (pos < raw.length) {
    const end = raw.indexOf('\r\n\r\n', pos);
    if (end < 0) return fail('an incomplete response head');
    const lines = raw.slice(pos, end).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})(?: [^\r\n]*)?$/.exec(lines[0] ?? '');
    if (m === null) return fail(`not a status line: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
    const status = Number(m[1]);
    const headers: Record<string, string> = {};
    const cls: string[] = [];
    for (const l of lines.slice(1)) {
      const colon = l.indexOf(':');
      if (colon <= 0 || /[\r\n]/.test(l)) return fail(`a bad response field line ${JSON.stringify(l.slice(0, 80))}`);
      const name = l.slice(0, colon).toLowerCase();
      const value = l.slice(colon + 1).trim();
      if (name === 'content-length') cls.push(value);
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    }
    if (new Set(cls).size > 1) return fail(`differing Content-Length fields in a response: ${cls.join(' / ')}`);
    let p = end + 4;
    const index = finals.length;
    if (status === 101) {
      finals.push({ status, headers, body: '' });
      return { finals, interims, switched: true, rest: raw.slice(p), error: null };
    }
    if (status >= 100 && status < 200) {
      interims.push({ status, headers, body: '' });
      pos = p;
      continue;
    }
    let body = '';
    const noBody = status === 204 || status === 304 || (c.headAt ?? []).includes(index) || ((c.connectAt ?? []).includes(index) && status >= 200 && status < 300);
    if (!noBody) {
      const te = headers['transfer-encoding'];
      if (te !== undefined) {
        if (te.toLowerCase() !== 'chunked') return fail(`response Transfer-Encoding ${te}`);
        const r = readChunked(raw, p);
        if (r === 'incomplete') return fail('an incomplete chunked response body');
        if (typeof r === 'string') return fail(`a bad chunked response body: ${r}`);
        body = r.body;
        p = r.used;
      } else if (headers['content-length'] !== undefined) {
        const n = Number(cls[0]);
        if (!/^\d+$/.test(cls[0] ?? '') || raw.length < p + n) return fail(`a response body shorter than its Content-Length ${cls[0]}`);
        body = raw.slice(p, p + n);
        p += n;
      } else {
        body = raw.slice(p);
        p = raw.length;
      }
    }
    finals.push({ status, headers, body });
    pos = p;
  }
  return { finals, interims, switched: false, rest: '', error: null };
}

// --- the reference model: what a correct proxy may do with a stream --------------------------------

const reject = (status: number): Item => ({ err: status });
/** Methods breakwater forwards; any other token is refused 400 (as node's parser does). */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'PATCH']);

/**
 * The outcomes a correct proxy may produce for `stream`, request by request,
 * from a strict RFC 9112 reading (see the file comment). Every request of a
 * model case is addressed to api.test.
 */
function model(c: Case, stream: string): Outcome[] {
  const out: Outcome[] = [];
  const walk = (pos: number, items: Item[], first: boolean, names: string[]): void => {
    if (out.length > 32) return;
    const done = (closed: boolean | 'any', extra: Item[], name: string): void => {
      out.push({ name: [...names, name].join(' → '), items: [...items, ...extra], closed });
    };
    if (pos >= stream.length) return done('any', [], 'nothing more');
    const r = readRequest(stream, pos);
    if (first && c.mayReject === true) done(true, [reject(400)], 'refused 400');
    if (r.kind === 'incomplete') return done('any', [], 'waiting for more');
    const invalid = r.kind === 'invalid' ? r : KNOWN_METHODS.has(r.req.method) ? null : ({ where: 'head', reason: `unknown method ${r.req.method}` } as const);
    if (invalid !== null) {
      done(true, [reject(400)], `400 (${invalid.reason})`);
      // Answers still owed to earlier requests may be cut by the close, but
      // only together with the requests themselves: an earlier request the
      // upstream executed must have its answer delivered.
      for (let j = items.length; j >= 0; j--) {
        const cut = j < items.length ? `, closed after ${j} of ${items.length} earlier answers (the rest never forwarded)` : ', closed without the 400';
        out.push({ name: [...names, `${invalid.reason}${cut}`].join(' → '), items: items.slice(0, j), closed: true });
      }
      return;
    }
    if (r.kind !== 'request') return;
    const req = r.req;
    const up: Item = { up: `${req.method} ${req.target}`, body: req.body };
    if (req.body.length > BODY_LIMIT) {
      done(true, [reject(413)], '413');
      done(true, [], 'closed (too large)');
      return;
    }
    if (req.teAndCl || req.http10Te) {
      done(true, [reject(400)], `400 (${req.teAndCl ? 'Transfer-Encoding with Content-Length' : 'Transfer-Encoding in HTTP/1.0'})`);
      done(true, [up], `${up.up} forwarded by its chunked framing, then closed`);
      return;
    }
    if (req.clList) done(true, [reject(400)], '400 (a Content-Length list)');
    if (!req.persistent) return done(true, [up], `${up.up} forwarded, then closed`);
    walk(pos + r.used, [...items, up], false, [...names, `${up.up} forwarded`]);
  };
  walk(0, [], true, []);
  return out;
}

// --- judging ----------------------------------------------------------------------------------------

const STATUS_CODE: Readonly<Record<number, string>> = {
  400: 'bad_request',
  404: 'no_route',
  405: 'method_not_allowed',
  413: 'request_too_large',
  431: 'header_too_large',
};

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

const HOP_BY_HOP = new Set(['keep-alive', 'te', 'trailer', 'http2-settings', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate']);

/** What is wrong with the fields of a request breakwater forwarded. */
function hygiene(r: UpRecord, rawPort: number): string[] {
  const problems: string[] = [];
  const upgradeValue = fieldValues(r.fields, 'upgrade').join(',').toLowerCase();
  const conn = listElements(fieldValues(r.fields, 'connection')).map((t) => t.toLowerCase());
  const isUpgrade = conn.includes('upgrade') && upgradeValue !== '';
  for (const f of r.fields) {
    const n = f.name.toLowerCase();
    if (n.includes('_')) problems.push(`a field name with an underscore: ${f.name}`);
    if (HOP_BY_HOP.has(n) || n.startsWith('proxy-') || n.startsWith('x-hop')) problems.push(`a hop-by-hop field: ${f.name}`);
    const squashed = n.replace(/[^a-z0-9]/g, '');
    if ((squashed === 'transferencoding' && n !== 'transfer-encoding') || (squashed === 'contentlength' && n !== 'content-length')) {
      problems.push(`a framing look-alike: ${f.name}`);
    }
    if (!n.startsWith('x-forwarded-') && /evil/i.test(f.value)) problems.push(`a client value that should not be here: ${f.name}: ${f.value}`);
  }
  const hosts = fieldValues(r.fields, 'host');
  if (hosts.length !== 1 || hosts[0] !== `127.0.0.1:${rawPort}`) problems.push(`Host is ${JSON.stringify(hosts)}, not the endpoint's authority`);
  for (const t of conn) if (t !== 'keep-alive' && t !== 'close' && !(t === 'upgrade' && isUpgrade)) problems.push(`Connection names ${t}`);
  if (upgradeValue !== '' && (!isUpgrade || upgradeValue.includes('h2c'))) problems.push(`Upgrade: ${upgradeValue} forwarded outside a WebSocket upgrade`);
  const te = fieldValues(r.fields, 'transfer-encoding');
  const cl = fieldValues(r.fields, 'content-length');
  if (te.length > 1 || (te.length === 1 && te[0]!.toLowerCase() !== 'chunked')) problems.push(`Transfer-Encoding ${JSON.stringify(te)} upstream`);
  if (te.length > 0 && cl.length > 0) problems.push('Transfer-Encoding and Content-Length upstream');
  if (cl.length > 1) problems.push(`${cl.length} Content-Length fields upstream`);
  if (!r.target.startsWith('/')) problems.push(`target ${r.target} is not origin-form`);
  return problems;
}

/** Why `got` is not `o`, or null if it is. */
function mismatch(o: Outcome, parsed: Parsed, closed: boolean, seen: readonly string[], records: readonly UpRecord[]): string | null {
  if (parsed.finals.length !== o.items.length) return `${parsed.finals.length} answers, expected ${o.items.length}`;
  for (let i = 0; i < o.items.length; i++) {
    const item = o.items[i]!;
    const res = parsed.finals[i]!;
    const gen = res.headers['x-breakwater-error'];
    if ('err' in item) {
      const allowed = typeof item.err === 'number' ? [item.err] : item.err;
      if (!allowed.includes(res.status)) return `answer ${i} is ${res.status}${gen === undefined ? '' : ` ${gen}`}, expected ${allowed.join('/')}`;
      const code = STATUS_CODE[res.status];
      const problem = checkGenerated({ status: res.status, headers: res.headers, body: res.body }, new Set(code === undefined ? [] : [code]));
      if (problem !== null) return `answer ${i} (${res.status}) is not a §4.7 answer: ${problem}`;
    } else if ('connect' in item) {
      if (res.status < 200 || res.status > 299 || gen !== undefined) return `answer ${i} to CONNECT is ${res.status}${gen === undefined ? '' : ` ${gen}`}, expected 2xx`;
    } else {
      const status = item.status ?? 200;
      if (res.status !== status || gen !== undefined) return `answer ${i} is ${res.status}${gen === undefined ? '' : ` ${gen}`}, expected the upstream's ${status} to ${item.up}`;
      if (status !== 101 && !item.up.startsWith('HEAD ') && res.body !== item.up) return `answer ${i} has body ${JSON.stringify(res.body.slice(0, 80))}, expected the upstream's answer to ${item.up}`;
    }
  }
  if (o.closed === true && !closed) return 'the connection was left open';
  if (o.closed === false && closed) return 'the connection was closed';
  const want = o.upstream ?? o.items.flatMap((i) => ('up' in i ? [i.up] : []));
  // RFC 9112 §9.3.2: pipelined requests may be processed in parallel only if all are safe.
  const allSafe = want.every((w) => SAFE_METHODS.has(w.slice(0, w.indexOf(' '))));
  const order = (l: readonly string[]): string => JSON.stringify(allSafe ? [...l].sort() : l);
  if (order(seen) !== order(want)) return `the upstream saw ${JSON.stringify(seen)}, expected ${JSON.stringify(want)}${allSafe ? ' (in any order)' : ''}`;
  for (const item of o.items) {
    if (!('up' in item) || item.body === undefined) continue;
    const rec = records.find((r) => `${r.method} ${r.target}` === item.up);
    if (rec !== undefined && rec.body !== item.body) return `the upstream got body ${JSON.stringify(rec.body.slice(0, 80))} for ${item.up}, expected ${JSON.stringify(item.body.slice(0, 80))}`;
  }
  return null;
}

function fill(s: string, ports: { canary: number; canary6: number; raw: number }): string {
  return s.replaceAll('@CANARY6@', String(ports.canary6)).replaceAll('@CANARY@', String(ports.canary)).replaceAll('@RAW@', String(ports.raw));
}

function fillOutcome(o: Outcome, f: (s: string) => string): Outcome {
  return {
    ...o,
    items: o.items.map((i) => ('up' in i ? { ...i, up: f(i.up) } : i)),
    ...(o.upstream === undefined ? {} : { upstream: o.upstream.map(f) }),
  };
}

const preview = (s: string, n = 700): string => JSON.stringify(s.length > n ? `${s.slice(0, n)}…(${s.length} bytes)` : s);

// --- the suite ------------------------------------------------------------------------------------

const FAMILIES = [...new Set(CASES.map((c) => c.family))] as Family[];

describe('hostile input from public smuggling and desync corpora, judged at a raw upstream', () => {
  const raw = new RawUpstream();
  const canary = new Canary();
  let canaryPort = 0;
  let canary6 = 0;
  let px: TestProxy;
  const started = Date.now();

  before(async () => {
    await raw.listen();
    canaryPort = await canary.listen('127.0.0.1');
    // The same canary on ::1 where the host has IPv6 loopback (the same port if free there).
    canary6 = (await canary.listen('::1', canaryPort)) || (await canary.listen('::1')) || canaryPort;
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
log: { level: warn, access: false }
listeners:
  - name: egress
    address: 127.0.0.1:0
    limits: { headerSize: 4KiB, bodySize: ${BODY_LIMIT} }
    routes:
      - { name: api, match: { host: api.test }, upstream: raw, timeout: { total: 2s, idle: 1s } }
upstreams:
  raw: { url: http://127.0.0.1:${raw.port}, retry: { maxRetries: 0 } }
`);
  });

  after(async () => {
    await px?.close();
    await raw.close();
    await canary.close();
    process.stderr.write(`# corpus: ${CASES.length} cases in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  });

  for (const family of FAMILIES) {
    describe(FAMILY_TITLES[family], () => {
      for (const c of CASES.filter((x) => x.family === family)) {
        // source: c.source (each case names the corpus it came from in corpus/cases.ts)
        test(c.name, async () => {
          const ports = { canary: canaryPort, canary6, raw: raw.port };
          const f = (s: string): string => fill(s, ports);
          const stream = f(c.bytes) + (c.sentinel === false ? '' : NEXT);
          const outcomes = (c.expect === 'model' ? model(c, stream) : c.expect).map((o) => fillOutcome(o, f));
          raw.reset();
          canary.connections = 0;
          const got = await exchange(px.port('egress'), Buffer.from(stream, 'latin1'));
          await sleep(SETTLE_MS);
          const parsed = parseResponses(got.raw, c);
          const seen = raw.records.map((r) => `${r.method} ${r.target}`);
          const context =
            `\n  source: ${c.source}` +
            `\n  sent: ${preview(stream, 400)}` +
            `\n  read (closed: ${got.closed}): ${preview(got.raw)}` +
            `\n  upstream saw: ${JSON.stringify(raw.records.map((r) => ({ req: `${r.method} ${r.target}`, body: r.body.slice(0, 60), fields: r.fields.map((x) => `${x.name}: ${x.value.slice(0, 40)}`) })))}`;

          // Invariants that hold whatever the outcome.
          assert.equal(canary.connections, 0, `a port no config names was dialled${context}`);
          assert.deepEqual(raw.violations, [], `the upstream received bytes a strict HTTP/1.1 server refuses${context}`);
          const allowedUp = new Set(outcomes.flatMap((o) => o.upstream ?? o.items.flatMap((i) => ('up' in i ? [i.up] : []))));
          const smuggled = seen.filter((s) => s.includes('smuggled') && !allowedUp.has(s));
          assert.deepEqual(smuggled, [], `a smuggled request reached the upstream${context}`);
          const dirty = raw.records.flatMap((r) => hygiene(r, raw.port).map((p) => `${r.method} ${r.target}: ${p}`));
          assert.deepEqual(dirty, [], `forwarded fields are not clean${context}`);
          assert.equal(parsed.error, null, `the client could not read what came back strictly${context}`);
          assert.deepEqual(parsed.interims.map((r) => r.status).filter((s) => s !== 100), [], `an interim answer other than 100 Continue${context}`);
          const closeAt = parsed.finals.findIndex((r) => /(^|,)\s*close\s*(,|$)/i.test(r.headers['connection'] ?? ''));
          if (closeAt >= 0) {
            assert.equal(closeAt, parsed.finals.length - 1, `answer ${closeAt} said connection: close, yet more answers followed${context}`);
            assert.equal(parsed.rest, '', `bytes followed an answer sent with connection: close${context}`);
            assert.ok(got.closed, `the connection stayed open after an answer sent with connection: close${context}`);
          }
          if (!parsed.switched) assert.equal(parsed.rest, '', `bytes left over after the last answer${context}`);

          // One of the allowed outcomes.
          const reasons = outcomes.map((o) => ({ o, why: mismatch(o, parsed, got.closed, seen, raw.records) }));
          if (reasons.some((r) => r.why === null)) return;
          assert.fail(
            `no allowed outcome matched:\n${reasons.map((r) => `  - ${r.o.name}: ${r.why}`).join('\n')}` +
              `\n  answers: ${JSON.stringify(parsed.finals.map((r) => `${r.status}${r.headers['x-breakwater-error'] === undefined ? '' : ` ${r.headers['x-breakwater-error']}`}`))}${context}`,
          );
        });
      }
    });
  }
});
