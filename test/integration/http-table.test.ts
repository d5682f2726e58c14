// HTTP semantics as a table (SPEC §3): every method × every response shape ×
// both listener kinds, each row sent twice — straight to the upstream (the
// reference) and through breakwater — and the two answers diffed in one place
// (compareExchanges). Each row is its own test, named `METHOD × shape ×
// listener`, so a failing row names itself.
//
// What "the same" means here:
// - status: equal. Interim 1xx responses are not part of the comparison
//   (breakwater answers them itself or drops them), except that a request
//   carrying `Expect: 100-continue` must get its `100 Continue` both ways.
// - headers: equal as a multiset per name (repeated fields keep their order),
//   leaving out the hop-by-hop ones — connection, keep-alive,
//   transfer-encoding, te, trailer, upgrade, proxy-*, and every name listed
//   in Connection — plus `date` and `x-request-id`, which breakwater adds.
// - framing: Content-Length and Transfer-Encoding are not compared as headers.
//   The body bytes must be identical (breakwater may re-frame, e.g. a
//   close-delimited body as chunked); a Content-Length breakwater sends must
//   be true (the body's length, or for HEAD the length the upstream
//   announced); HEAD, 204 and 304 carry no body; a 204 carries neither
//   Content-Length nor Transfer-Encoding (RFC 9110 §8.6, RFC 9112 §6.1), even
//   when a sloppy upstream sent `Content-Length: 0`.
// - connection reuse: when the upstream kept its connection open for the next
//   request, the client's kept-alive connection to breakwater is reused for
//   the next request too (a close-delimited upstream answer does not oblige
//   breakwater to close the client's connection, so that case is free).
// - trailers of a chunked answer arrive as the upstream sent them (the
//   `Trailer` header itself is hop-by-hop and removed).
// The upstream (test/helpers/shapes.ts) echoes the method and a sha256 of the
// request body it received in headers, so request bodies (small, and 200 KiB,
// past the 64 KiB replay buffer) are checked upstream too.
import assert from 'node:assert/strict';
import http from 'node:http';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { ETAG, patternBytes, sha256, startShapesUpstream, type ShapeId, type ShapesUpstream } from '../helpers/shapes.ts';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
type Method = (typeof METHODS)[number];
const BODY_METHODS = new Set<Method>(['POST', 'PUT', 'PATCH']);

interface Shape {
  id: ShapeId;
  label: string;
  requestHeaders?: Record<string, string>;
  /** Send `Expect: 100-continue` and hold the body back until `100 Continue` arrives. */
  expectContinue?: boolean;
}

const SHAPES: Shape[] = [
  { id: 'content-length', label: '200 content-length' },
  { id: 'chunked', label: '200 chunked' },
  { id: 'close-delimited', label: '200 close-delimited (no length)' },
  { id: 'no-content', label: '204' },
  { id: 'no-content-length-0', label: '204 with Content-Length: 0' },
  { id: 'not-modified', label: '304 with ETag', requestHeaders: { 'if-none-match': ETAG } },
  { id: 'unprompted-continue', label: 'unprompted 100 Continue then 200' },
  { id: 'early-hints', label: '103 Early Hints then 200' },
  { id: 'expect-continue', label: 'Expect: 100-continue', expectContinue: true },
  { id: 'trailers', label: '200 chunked with trailer' },
  { id: 'empty', label: '200 Content-Length: 0' },
  { id: 'large', label: '200 3 MiB content-length' },
];

type ListenerKind = 'direct' | 'egress';
const LISTENERS: { kind: ListenerKind; label: string }[] = [
  { kind: 'direct', label: 'direct (one port per upstream)' },
  { kind: 'egress', label: 'egress (absolute-form)' },
];

const EGRESS_HOST = 'shapes.test';
const LARGE_REQUEST_BODY = patternBytes(200 * 1024, 0xb0d1);
/** Whole-exchange limit per request; generous, a loaded machine is slow but not this slow. */
const REQUEST_TIMEOUT_MS = 5000;
/** How long a client holding back an Expect: 100-continue body waits before sending it anyway (RFC 9110 §10.1.1). */
const CONTINUE_WAIT_MS = 2000;

/** Where a request goes: straight to the upstream, or to one of breakwater's listeners. */
interface Target {
  port: number;
  /** The request-target for a shape path: origin-form, or absolute-form for the egress listener. */
  path(shapePath: string): string;
  host?: string;
}

/** What one client saw: the row's request, then whether the next request reused its connection. */
interface Observed {
  /** Set when the request failed at the socket level (reset, closed early, timed out). */
  error: string | null;
  status: number;
  /** Lower-case name → values in arrival order. */
  headers: Map<string, string[]>;
  body: Buffer;
  trailers: Record<string, string | undefined>;
  /** Status codes of the 1xx interim responses received. */
  interim: number[];
  /** Whether the follow-up request went out on the same (kept-alive) socket; null if it failed. */
  reusedNext: boolean | null;
  nextError: string | null;
}

interface Row {
  name: string;
  method: Method;
  shape: Shape;
  body: Buffer | null;
}

function headerMap(raw: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const list = out.get(name);
    if (list === undefined) out.set(name, [raw[i + 1]!]);
    else list.push(raw[i + 1]!);
  }
  return out;
}

interface Sent {
  error: string | null;
  status: number;
  headers: Map<string, string[]>;
  body: Buffer;
  trailers: Record<string, string | undefined>;
  interim: number[];
  reused: boolean;
}

/** One request through `agent`; never rejects: a socket-level failure is reported in `error`. */
function send(agent: http.Agent, target: Target, method: string, shapePath: string, opts: { headers?: Record<string, string>; body?: Buffer | null; expectContinue?: boolean } = {}): Promise<Sent> {
  const headers: Record<string, string> = { ...opts.headers };
  if (target.host !== undefined) headers.host = target.host;
  const body = opts.body ?? null;
  if (body !== null) headers['content-length'] = String(body.length);
  if (opts.expectContinue === true) headers.expect = '100-continue';
  const interim: number[] = [];
  return new Promise<Sent>((resolve) => {
    let settled = false;
    let continueTimer: NodeJS.Timeout | undefined;
    const finish = (s: Omit<Sent, 'interim' | 'reused'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(continueTimer);
      resolve({ ...s, interim, reused: req.reusedSocket });
    };
    const fail = (why: string) => {
      finish({ error: why, status: 0, headers: new Map(), body: Buffer.alloc(0), trailers: {} });
      req.destroy();
    };
    const req = http.request({ host: '127.0.0.1', port: target.port, method, path: target.path(shapePath), headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => fail(`response error: ${err.message}`));
      res.on('aborted', () => fail('response aborted mid-body'));
      res.on('end', () => {
        if (!res.complete) return fail('response ended incomplete');
        finish({ error: null, status: res.statusCode ?? 0, headers: headerMap(res.rawHeaders), body: Buffer.concat(chunks), trailers: { ...res.trailers } });
      });
    });
    const timer = setTimeout(() => fail(`no complete response within ${REQUEST_TIMEOUT_MS}ms`), REQUEST_TIMEOUT_MS);
    req.on('error', (err: NodeJS.ErrnoException) => fail(`request error: ${err.code ?? ''} ${err.message}`.trim()));
    // node reports a 100 both as 'continue' and as 'information'.
    req.on('information', (info) => interim.push(info.statusCode));
    if (opts.expectContinue === true && body !== null) {
      // Hold the body back until the server says to go on, as a client using Expect should.
      req.flushHeaders();
      const go = () => {
        clearTimeout(continueTimer);
        if (!req.writableEnded) req.end(body);
      };
      req.once('continue', go);
      continueTimer = setTimeout(go, CONTINUE_WAIT_MS);
    } else {
      req.end(body ?? undefined);
    }
  });
}

/** The row's request, then a plain GET on the same keep-alive agent to see whether the connection was kept. */
async function exchange(target: Target, row: Row): Promise<Observed> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const first = await send(agent, target, row.method, `/shape/${row.shape.id}`, {
      headers: row.shape.requestHeaders,
      body: row.body,
      expectContinue: row.shape.expectContinue,
    });
    // The agent takes the socket back on the turn after 'end'.
    await nextTurn();
    const next = first.error === null ? await send(agent, target, 'GET', '/shape/content-length') : null;
    return {
      error: first.error,
      status: first.status,
      headers: first.headers,
      body: first.body,
      trailers: first.trailers,
      interim: first.interim,
      reusedNext: next === null || next.error !== null ? null : next.reused,
      nextError: next?.error ?? null,
    };
  } finally {
    agent.destroy();
  }
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade']);
/** Compared as framing, or added by breakwater (date, x-request-id). */
const NOT_COMPARED = new Set(['content-length', 'date', 'x-request-id']);

function comparedNames(o: Observed): string[] {
  const listed = new Set<string>();
  for (const v of o.headers.get('connection') ?? []) for (const part of v.split(',')) listed.add(part.trim().toLowerCase());
  return [...o.headers.keys()].filter((n) => !HOP_BY_HOP.has(n) && !n.startsWith('proxy-') && !NOT_COMPARED.has(n) && !listed.has(n));
}

function describeBody(b: Buffer): string {
  if (b.length <= 200) return `${b.length} bytes ${JSON.stringify(b.toString('latin1'))}`;
  return `${b.length} bytes, sha256 ${sha256(b).slice(0, 16)}…`;
}

function describeHeaders(o: Observed): string {
  return [...o.headers].map(([k, vs]) => vs.map((v) => `${k}: ${v}`).join(', ')).join(' | ');
}

/**
 * The one place a row is judged: diffs breakwater's answer against the
 * upstream's own and fails with a message naming the row and every
 * difference.
 */
function compareExchanges(row: Row, direct: Observed, via: Observed): void {
  // A failing reference means the test or the shapes upstream is wrong, not breakwater.
  if (direct.error !== null) assert.fail(`${row.name}: the reference request straight to the upstream failed (${direct.error}); the test is wrong`);
  if (direct.nextError !== null) assert.fail(`${row.name}: the reference follow-up request failed (${direct.nextError}); the test is wrong`);

  const diffs: string[] = [];
  if (via.error !== null) {
    diffs.push(`the request through breakwater failed: ${via.error}`);
  } else {
    if (via.status !== direct.status) diffs.push(`status: upstream ${direct.status}, breakwater ${via.status}`);

    const names = new Set([...comparedNames(direct), ...comparedNames(via)]);
    for (const name of [...names].sort()) {
      const d = direct.headers.get(name);
      const v = via.headers.get(name);
      if (JSON.stringify(d) !== JSON.stringify(v)) diffs.push(`header ${name}: upstream ${JSON.stringify(d ?? null)}, breakwater ${JSON.stringify(v ?? null)}`);
    }

    if (!direct.body.equals(via.body)) diffs.push(`body: upstream ${describeBody(direct.body)}, breakwater ${describeBody(via.body)}`);
    const bodiless = row.method === 'HEAD' || via.status === 204 || via.status === 304;
    if (bodiless && via.body.length > 0) diffs.push(`a ${row.method} ${via.status} must carry no body, breakwater sent ${via.body.length} bytes`);

    const viaLength = via.headers.get('content-length');
    const directLength = direct.headers.get('content-length');
    if (via.status === 204) {
      if (viaLength !== undefined) diffs.push(`a 204 must not carry Content-Length (RFC 9110 §8.6), breakwater sent content-length: ${viaLength.join(', ')}`);
      if (via.headers.has('transfer-encoding')) diffs.push('a 204 must not carry Transfer-Encoding (RFC 9112 §6.1)');
    } else if (viaLength !== undefined) {
      if (viaLength.length !== 1) diffs.push(`breakwater sent ${viaLength.length} Content-Length fields`);
      else if (bodiless) {
        // For HEAD (and 304) the length describes the representation: it must be the upstream's.
        if (directLength === undefined || directLength[0] !== viaLength[0]) diffs.push(`content-length on a ${row.method} ${via.status}: upstream ${JSON.stringify(directLength ?? null)}, breakwater ${viaLength[0]}`);
      } else if (Number(viaLength[0]) !== via.body.length) {
        diffs.push(`content-length ${viaLength[0]} but the body had ${via.body.length} bytes`);
      }
    }

    if (row.shape.expectContinue === true) {
      const d = direct.interim.includes(100);
      const v = via.interim.includes(100);
      if (d !== v) diffs.push(`100 Continue for Expect: upstream ${d ? 'sent' : 'did not send'} it, breakwater ${v ? 'sent' : 'did not send'} it`);
    }

    if (via.nextError !== null) diffs.push(`the next request on the client's connection failed: ${via.nextError}`);
    else if (direct.reusedNext === true && via.reusedNext !== true) diffs.push('the upstream kept its connection alive, but the client\'s connection to breakwater was not reused for the next request');
  }

  if (diffs.length > 0) {
    assert.fail(
      `${row.name}: breakwater's answer differs from the upstream's own:\n  - ${diffs.join('\n  - ')}\n` +
        `  upstream:   ${direct.status} ${describeHeaders(direct)} body ${describeBody(direct.body)}\n` +
        `  breakwater: ${via.error ?? `${via.status} ${describeHeaders(via)} body ${describeBody(via.body)}`}`,
    );
  }
}

function rows(): Row[] {
  const out: Row[] = [];
  for (const method of METHODS) {
    for (const shape of SHAPES) {
      const body = BODY_METHODS.has(method) ? Buffer.from(`${method} request body for the ${shape.id} shape\n`) : null;
      out.push({ name: `${method} × ${shape.label}`, method, shape, body });
    }
  }
  const cl = SHAPES[0]!;
  out.push({ name: `POST 200 KiB body (past the replay buffer) × ${cl.label}`, method: 'POST', shape: cl, body: LARGE_REQUEST_BODY });
  return out;
}

describe('HTTP semantics through breakwater match the upstream answered directly (SPEC §3)', () => {
  let shapes: ShapesUpstream;
  let px: TestProxy;
  const baseline = snapshotHandles();

  before(async () => {
    shapes = await startShapesUpstream();
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: direct
    address: 127.0.0.1:0
    upstream: shapes
  - name: egress
    address: 127.0.0.1:0
    routes:
      - match: { host: ${EGRESS_HOST} }
        upstream: shapes
upstreams:
  shapes:
    url: ${shapes.origin}
`);
  });

  after(async () => {
    await px.close();
    await shapes.close();
    await assertNoLeaks(baseline);
  });

  const reference: Target = { get port() { return shapes.port; }, path: (p) => p };
  const targets: Record<ListenerKind, Target> = {
    direct: { get port() { return px.port('direct'); }, path: (p) => p },
    egress: { get port() { return px.port('egress'); }, path: (p) => `http://${EGRESS_HOST}${p}`, host: EGRESS_HOST },
  };

  for (const listener of LISTENERS) {
    for (const base of rows()) {
      const row = { ...base, name: `${base.name} × ${listener.label}` };
      it(row.name, { timeout: 30_000 }, async (t: TestContext) => {
        const direct = await exchange(reference, row);
        const via = await exchange(targets[listener.kind], row);
        if (row.body !== null && direct.error === null) {
          // The shapes upstream echoes what it received: the reference must show the body arrived whole.
          assert.equal(direct.headers.get('x-request-body-sha256')?.[0], sha256(row.body), `${row.name}: the upstream did not receive the request body (test is wrong)`);
        }
        // What the table records but does not judge.
        if (row.shape.id === 'trailers') assert.deepEqual(via.trailers, direct.trailers, `${row.name}: trailers differ`);
        if (direct.interim.length > 0 || via.interim.length > 0) t.diagnostic(`1xx: upstream [${direct.interim.join(',')}], breakwater [${via.interim.join(',')}]`);
        if (direct.reusedNext === false) t.diagnostic(`the upstream closed its connection; the client's connection to breakwater was reused: ${String(via.reusedNext)}`);
        compareExchanges(row, direct, via);
      });
    }
  }
});
