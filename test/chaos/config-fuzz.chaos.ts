/**
 * Config fuzzing (fast-check): random YAML documents, random structural
 * mutations of a valid config, and random text-level damage, all through
 * `loadConfigText`. The loader must never throw; a refusal must explain
 * itself (every error names a config path, or is a syntax/read error with a
 * line and column from 1); an accepted config must be sane (no NaN, no
 * negative duration, perTry within total) and must build into a runtime.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import YAML from 'yaml';
import { loadConfigText } from '../../src/config/load.ts';
import type { BreakwaterConfig } from '../../src/config/types.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics/index.ts';
import { buildRuntime } from '../../src/runtime/build.ts';
import { StateRegistry } from '../../src/runtime/state.ts';
import { Writable } from 'node:stream';
import { scaled } from './lib.ts';

/** The SPEC §2 example, with every feature on. */
const VALID = `
version: 1
admin:
  address: 127.0.0.1:9901
log:
  level: info
  access: true
  includeQuery: false
  headers: [user-agent]
drain:
  delay: 0s
  timeout: 30s
defaults:
  timeout: { connect: 1s, perTry: 5s, total: 15s, idle: 60s }
  retry: { maxRetries: 2 }
listeners:
  - name: egress
    address: 127.0.0.1:15001
    routes:
      - match: { host: payments.internal }
        upstream: payments
      - name: inventory-read
        match: { pathPrefix: /inventory/, methods: [GET, HEAD], headers: { x-tenant: blue } }
        upstream: inventory
        stripPrefix: true
        timeout: { total: 2s }
        rateLimit: { rate: 50/100ms, burst: 10 }
  - name: payments
    address: 127.0.0.1:15002
    upstream: payments
    limits: { headerSize: 16KiB, bodySize: 10MiB }
upstreams:
  payments:
    endpoints: [http://payments.default.svc.cluster.local:8080, http://10.0.0.2:8080]
    balance: round-robin
    pool: { connections: 64, keepAlive: 4s }
    preserveHost: false
    requestHeaders:
      set: { authorization: "Bearer \${PAYMENTS_TOKEN}" }
      remove: [x-internal-debug]
    timeout: { connect: 500ms, perTry: 2s, total: 6s, idle: 30s }
    retry:
      maxRetries: 3
      on: [connect-failure, reset, timeout, 503, 502, 504]
      methods: [GET, HEAD, OPTIONS, PUT, DELETE]
      idempotencyKeyHeader: idempotency-key
      backoff: { strategy: exponential, base: 25ms, max: 1s, jitter: full }
      budget: { ratio: 0.2, minPerSecond: 10, window: 10s }
      respectRetryAfter: true
      bufferLimit: 64KiB
    circuitBreaker:
      consecutiveFailures: 5
      failureRate: 50
      minimumRequests: 20
      window: 10s
      openDuration: 30s
      halfOpenRequests: 1
      successThreshold: 2
      failOn: [5xx, timeout, connect-failure, reset]
      mode: enforce
    bulkhead: { maxConcurrent: 100, maxQueue: 50, queueTimeout: 1s }
    rateLimit: { rate: 200/s, burst: 50, maxWait: 0s }
    fallback:
      upstream: payments-dr
      on: [circuit-open, connect-failure, timeout, retries-exhausted]
  payments-dr:
    url: http://payments.dr.example:8080
    fallback:
      response:
        status: 503
        headers: { content-type: application/json }
        body: '{"degraded":true}'
  inventory:
    url: http://inventory:8080
`;

const ENV = { PAYMENTS_TOKEN: 'fuzz-token', EMPTY: '' };
const FILE = '/tmp/breakwater-fuzz/breakwater.yaml';

// Values that tend to break parsers of durations, sizes, rates, names, addresses and lists.
const NASTY: readonly unknown[] = [
  null, true, false, 0, -1, 1, 1.5, -0.5, 1e309, -1e309, 2 ** 53 + 1, 11, 101, 65536, 99999999999,
  '', ' ', '0', '-1', '1.5', 'NaN', 'Infinity', '-Infinity', '1e3', '0x10', '1_000',
  '0ms', '-5s', '1.5s', '10x', '5 s', 'ms', '999999999999h', '1d', '1m1s',
  '0B', '-1KiB', '1.5MiB', '10KB', '1GiB', '16kib', '9999999999999999TiB',
  '0/s', '-1/s', '1/0s', '/s', '100', '100/', '5/ms', '1e9/s', '50/100ms', '1/-1s',
  '${MISSING}', '${EMPTY}', '${EMPTY:-}', '${MISSING:-1s}', '${', '$${X}', '${PAYMENTS_TOKEN}',
  'http://', 'http://[::1', 'ftp://x', 'http://x:99999', 'http://user:pass@x', '127.0.0.1:99999', ':0', '[::1]:0', 'localhost',
  '*', '*.', '*.*', '.internal', '/', '//', '\u0000', '\n', 'a\r\nb', '\u202e', 'GET', 'get', 'CONNECT', 'BREW',
  [], [null], [''], [[]], [1, 'x'], {}, { '': 1 }, { __proto__: 1 }, { constructor: 1 }, { toString: 1 },
];

const nasty = fc.constantFrom(...NASTY);
const anyValue = fc.oneof({ weight: 3, arbitrary: nasty }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) });

type Path = (string | number)[];

/** Every path into a plain YAML document. */
function paths(doc: unknown, at: Path = [], out: Path[] = []): Path[] {
  out.push(at);
  if (Array.isArray(doc)) doc.forEach((v, i) => paths(v, [...at, i], out));
  else if (doc !== null && typeof doc === 'object') for (const [k, v] of Object.entries(doc)) paths(v, [...at, k], out);
  return out;
}

type Mutation =
  | { op: 'set'; value: unknown }
  | { op: 'delete' }
  | { op: 'rename'; key: string }
  | { op: 'wrap' }
  | { op: 'dup' };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 5, arbitrary: anyValue.map((value) => ({ op: 'set' as const, value })) },
  { weight: 2, arbitrary: fc.constant({ op: 'delete' as const }) },
  { weight: 2, arbitrary: fc.constantFrom('retyr', 'Retry', 'timeout ', 'upstream', 'routes', 'fallback', '__proto__', 'x').map((key) => ({ op: 'rename' as const, key })) },
  { weight: 1, arbitrary: fc.constant({ op: 'wrap' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'dup' as const }) },
);

function applyMutation(doc: unknown, path: Path, m: Mutation): unknown {
  if (path.length === 0) return m.op === 'set' ? m.value : m.op === 'wrap' ? [doc] : doc;
  const parentPath = path.slice(0, -1);
  const key = path[path.length - 1]!;
  // A plain YAML tree, walked by path: any is the honest type here.
  let parent: any = doc;
  for (const k of parentPath) parent = parent[k];
  switch (m.op) {
    case 'set':
      parent[key] = m.value;
      break;
    case 'delete':
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
      break;
    case 'rename':
      if (!Array.isArray(parent)) {
        parent[m.key] = parent[key];
        delete parent[key];
      }
      break;
    case 'wrap':
      parent[key] = [parent[key]];
      break;
    case 'dup':
      if (Array.isArray(parent)) parent.push(structuredClone(parent[key as number]));
      break;
  }
  return doc;
}

/** Text damage: the kind of thing an editor, a bad merge or a truncated ConfigMap does. */
const textDamage: fc.Arbitrary<Damage> = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('drop-line' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('dup-line' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('indent' as const), at: fc.nat(), by: fc.integer({ min: -4, max: 4 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom(':', '- ', '{', '}', '[', ']', '&a', '*a', '!!binary ', '"', "'", '#', '\t', '\u0000', '<<: *a', '? ', '|', '>', '%YAML 1.2\n---\n', '\n---\n')) }),
);

type Damage =
  | { kind: 'truncate' | 'drop-line' | 'dup-line'; at: number }
  | { kind: 'indent'; at: number; by: number }
  | { kind: 'insert'; at: number; text: string };

function damage(text: string, d: Damage): string {
  const lines = text.split('\n');
  const li = d.at % lines.length;
  switch (d.kind) {
    case 'truncate':
      return text.slice(0, d.at % text.length);
    case 'drop-line':
      lines.splice(li, 1);
      return lines.join('\n');
    case 'dup-line':
      lines.splice(li, 0, lines[li]!);
      return lines.join('\n');
    case 'indent': {
      const l = lines[li]!;
      lines[li] = d.by >= 0 ? ' '.repeat(d.by) + l : l.slice(Math.min(-d.by, l.length - l.trimStart().length));
      return lines.join('\n');
    }
    default: {
      const at = d.at % (text.length + 1);
      return text.slice(0, at) + d.text + text.slice(at);
    }
  }
}

/** Is the document a mapping? (When it is a scalar, an error about it rightly has the empty path.) */
function rootIsMapping(text: string): boolean {
  try {
    const v = YAML.parse(text) as unknown;
    return v !== null && typeof v === 'object' && !Array.isArray(v);
  } catch {
    return false;
  }
}

interface LooseError {
  kind?: unknown;
  path?: unknown;
  line?: unknown;
  column?: unknown;
  message?: unknown;
  toString(): string;
}

const quiet = createLogger('error', new Writable({ write: (_c, _e, cb) => cb() })).logger;

/** The loader's contract on one input; returns a problem or null. `stats` counts outcomes. */
function check(text: string, stats: { ok: number; refused: number }): string | null {
  let r: ReturnType<typeof loadConfigText>;
  try {
    r = loadConfigText(text, FILE, ENV);
  } catch (err) {
    return `loadConfigText threw: ${(err as Error)?.stack ?? String(err)}`;
  }
  if (!r.ok) {
    stats.refused++;
    const errors = (r as { errors: readonly LooseError[] }).errors;
    if (!Array.isArray(errors) || errors.length === 0) return 'refused with no errors';
    for (const e of errors) {
      const line = Number(e.line);
      const column = Number(e.column);
      // SPEC §2: every error names file:line:col (from 1) — text has no "whole file" errors.
      if (!(Number.isInteger(line) && line >= 1 && Number.isInteger(column) && column >= 1)) return `an error without a position (line ${String(e.line)}, column ${String(e.column)}): ${String(e)}`;
      // …and the config path; '' is the document itself, which only a syntax error or a root-level shape error may name.
      if (typeof e.path !== 'string') return `an error whose path is ${String(e.path)}: ${String(e)}`;
      if (e.path === '' && e.kind !== 'syntax' && e.kind !== 'schema' && rootIsMapping(text)) return `a ${String(e.kind)} error with no config path: ${String(e)}`;
      let s: string;
      try {
        s = e.toString();
      } catch (err) {
        return `error.toString() threw: ${String(err)}`;
      }
      if (typeof s !== 'string' || s.trim() === '' || s === '[object Object]') return `an error renders as ${JSON.stringify(s)}`;
    }
    return null;
  }
  stats.ok++;
  return sane(r.config) ?? builds(r.config);
}

/** Invariants of types.ts that a parser slip would break. */
function sane(c: BreakwaterConfig): string | null {
  const bad: string[] = [];
  const walk = (v: unknown, at: string, seen: Set<unknown>): void => {
    if (typeof v === 'number' && Number.isNaN(v)) bad.push(`${at} is NaN`);
    if (v === null || typeof v !== 'object' || seen.has(v)) return;
    seen.add(v);
    if (v instanceof Map) for (const [k, x] of v) walk(x, `${at}.${String(k)}`, seen);
    else if (v instanceof Set) for (const x of v) walk(x, `${at}[]`, seen);
    else for (const [k, x] of Object.entries(v)) walk(x, `${at}.${k}`, seen);
  };
  walk(c, 'config', new Set());
  const timeouts = (t: { connect: number; perTry: number; total: number; idle: number }, at: string): void => {
    for (const k of ['connect', 'perTry', 'total', 'idle'] as const) if (!(t[k] >= 0)) bad.push(`${at}.${k} = ${t[k]}`);
    if (t.perTry > t.total) bad.push(`${at}.perTry ${t.perTry} > total ${t.total}`);
  };
  for (const l of c.listeners) for (const r of l.routes) {
    timeouts(r.policy.timeout, `route ${r.name}`);
    if (!(r.policy.retry.maxRetries >= 0 && r.policy.retry.maxRetries <= 10)) bad.push(`route ${r.name} maxRetries ${r.policy.retry.maxRetries}`);
    if (!c.upstreams.has(r.upstream)) bad.push(`route ${r.name} names unknown upstream ${r.upstream}`);
  }
  for (const [name, u] of c.upstreams) {
    timeouts(u.timeout, `upstream ${name}`);
    if (u.endpoints.length === 0) bad.push(`upstream ${name} has no endpoint`);
    if (u.rateLimit !== null && !(u.rateLimit.rate.perMs > 0 && Number.isFinite(u.rateLimit.rate.perMs))) bad.push(`upstream ${name} rate ${u.rateLimit.rate.perMs}/ms`);
    if (u.bulkhead !== null && !(u.bulkhead.maxConcurrent >= 1)) bad.push(`upstream ${name} maxConcurrent ${u.bulkhead.maxConcurrent}`);
  }
  if (!Object.isFrozen(c)) bad.push('the config is not frozen');
  return bad.length === 0 ? null : `accepted an insane config: ${bad.slice(0, 4).join('; ')}`;
}

/** An accepted config builds into a runtime (nothing binds, no connection is made). */
function builds(c: BreakwaterConfig): string | null {
  const registry = new StateRegistry();
  const metrics = new Metrics({ defaultMetrics: false });
  try {
    void buildRuntime(c, { registry, metrics, logger: quiet, accessLog: null }).discard();
    return null;
  } catch (err) {
    return `an accepted config failed to build: ${(err as Error)?.stack ?? String(err)}`;
  } finally {
    void registry.destroy();
    metrics.registry.clear();
  }
}

function property<T>(arb: fc.Arbitrary<T>, toText: (x: T) => string, stats: { ok: number; refused: number }) {
  return fc.property(arb, (x) => {
    const text = toText(x);
    const p = check(text, stats);
    if (p !== null) throw new Error(`${p}\n--- input ---\n${text.slice(0, 2000)}`);
  });
}

describe('config fuzzing through loadConfigText', () => {
  const base = YAML.parse(VALID) as unknown;

  it('accepts the SPEC example (the fuzz seed is valid)', () => {
    const r = loadConfigText(VALID, FILE, ENV);
    assert.ok(r.ok, r.ok ? '' : (r as { errors: LooseError[] }).errors.map(String).join('\n'));
    assert.equal(builds(r.config), null);
  });

  it('never throws on random YAML documents, and every refusal says where', (t) => {
    const stats = { ok: 0, refused: 0 };
    const runs = scaled(400, 50);
    const doc = fc.oneof(
      fc.jsonValue({ maxDepth: 4 }).map((v) => YAML.stringify(v)),
      fc.string({ maxLength: 200 }),
      fc.record({ version: fc.oneof(fc.constant(1), anyValue), listeners: anyValue, upstreams: anyValue, admin: anyValue, log: anyValue }, { requiredKeys: [] }).map((v) => YAML.stringify(v)),
    );
    fc.assert(property(doc, (s) => s, stats), { numRuns: runs, seed: Number(process.env['CHAOS_SEED'] ?? Date.now() % 2 ** 31) });
    t.diagnostic(`${runs} random documents: ${stats.ok} accepted, ${stats.refused} refused`);
  });

  it('never throws on random mutations of a valid config, and every refusal says where', (t) => {
    const stats = { ok: 0, refused: 0 };
    const all = paths(base);
    const runs = scaled(1200, 100);
    const arb = fc.array(fc.tuple(fc.nat({ max: all.length - 1 }), mutation), { minLength: 1, maxLength: 3 });
    fc.assert(
      property(
        arb,
        (ms) => {
          let doc: unknown = structuredClone(base);
          for (const [pi, m] of ms) {
            const live = paths(doc);
            doc = applyMutation(doc, live[pi % live.length]!, m);
          }
          return YAML.stringify(doc);
        },
        stats,
      ),
      { numRuns: runs, seed: Number(process.env['CHAOS_SEED'] ?? Date.now() % 2 ** 31) },
    );
    t.diagnostic(`${runs} structural mutations: ${stats.ok} accepted, ${stats.refused} refused`);
    assert.ok(stats.ok > 0 && stats.refused > 0, 'the mutations exercise both outcomes');
  });

  it('never throws on text-level damage to a valid config, and every refusal says where', (t) => {
    const stats = { ok: 0, refused: 0 };
    const runs = scaled(600, 50);
    fc.assert(
      property(fc.array(textDamage, { minLength: 1, maxLength: 3 }), (ds) => ds.reduce((s, d) => damage(s, d), VALID), stats),
      { numRuns: runs, seed: Number(process.env['CHAOS_SEED'] ?? Date.now() % 2 ** 31) },
    );
    t.diagnostic(`${runs} text mutations: ${stats.ok} accepted, ${stats.refused} refused`);
  });
});
