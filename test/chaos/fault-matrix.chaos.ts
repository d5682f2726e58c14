/**
 * The fault matrix: every upstream fault × every policy configuration, under
 * concurrent kept-alive load. For each cell: every request gets an answer the
 * SPEC allows (a status from the upstream, a fallback, or a §4.7 code with its
 * header and JSON body — or, for faults after headers, a connection cut after
 * the head), the proxy stays ready, and afterwards nothing is left behind:
 * bulkheads empty, the inflight gauge at 0, no upstream request left open,
 * one access-log line per request, and every handle closed.
 *
 * CHAOS_SCALE multiplies the requests per cell (default 300 at 20 clients).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type LogLine, type TestProxy } from '../helpers/proxy.ts';
import { refusedPort, startUpstream, type Step, type Upstream } from '../helpers/upstream.ts';
import { admin, checkGenerated, drive, label, scaled, startSlowAccept, tally, waitForRest, type Outcome } from './lib.ts';

const REQUESTS = scaled(300, 20);
const CONCURRENCY = 20;

// Timeouts shared by every cell: short, so a hanging upstream costs under a second per request.
const TIMEOUTS = '{ connect: 250ms, perTry: 300ms, total: 900ms, idle: 400ms }';
const DRIP = ['a'.repeat(100), 'b'.repeat(100), 'c'.repeat(100), 'd'.repeat(100), 'e'.repeat(100)];
const FALLBACK_BODY = '{"degraded":true}';

// --- faults --------------------------------------------------------------------

interface FaultTarget {
  origin: string;
  /** Upstream requests still open (a request breakwater gave up on must be released). */
  inFlight(): number;
  close(): Promise<void>;
}

interface Fault {
  readonly name: string;
  readonly start: () => Promise<FaultTarget>;
  /** Statuses the faulty upstream itself may send, and the body that goes with them. */
  readonly statuses: ReadonlyMap<number, string | null>;
  /** Codes breakwater may generate because of this fault (before policies add theirs). */
  readonly codes: readonly string[];
  /** The fault strikes after headers: a cut connection is a valid answer. */
  readonly mayCut: boolean;
  /** Clients give up after this long (they abort: no answer is then expected). */
  readonly clientTimeoutMs?: number;
}

const ok = (): Step => ({ status: 200, body: 'ok' });

function scripted(script: (i: number) => Step): () => Promise<FaultTarget> {
  return async () => {
    const up: Upstream = await startUpstream((_req, i) => script(i));
    return { origin: up.origin, inFlight: () => up.inFlight, close: () => up.close() };
  };
}

const FAULTS: readonly Fault[] = [
  {
    name: 'hang',
    // 70% never answer; the rest answer at once.
    start: scripted((i) => (i % 10 < 7 ? { hang: true } : ok())),
    statuses: new Map([[200, 'ok']]),
    codes: ['timeout'],
    mayCut: false,
  },
  {
    name: 'reset before headers',
    start: scripted((i) => (i % 10 < 7 ? { reset: 'before-headers' } : ok())),
    statuses: new Map([[200, 'ok']]),
    codes: ['upstream_reset'],
    mayCut: false,
  },
  {
    name: 'reset mid-body',
    start: scripted((i) => (i % 2 === 0 ? { status: 200, body: 'y'.repeat(2000), reset: 'mid-body' } : ok())),
    statuses: new Map([[200, 'ok']]),
    codes: [],
    mayCut: true,
  },
  {
    name: '5xx storm',
    start: scripted((i) =>
      i % 10 === 9 ? ok() : i % 3 === 0 ? { status: 500, body: 'boom' } : i % 3 === 1 ? { status: 502, body: 'boom' } : { status: 503, body: 'boom', retryAfter: '1' },
    ),
    statuses: new Map<number, string | null>([
      [200, 'ok'],
      [500, 'boom'],
      [502, 'boom'],
      [503, 'boom'],
    ]),
    codes: [],
    mayCut: false,
  },
  {
    name: 'slow-drip body',
    // 5 chunks 40 ms apart (within idle); every 10th stalls past idle and is cut.
    start: scripted((i) => ({ status: 200, chunks: DRIP, chunkIntervalMs: i % 10 === 5 ? 700 : 40 })),
    statuses: new Map([[200, DRIP.join('')]]),
    codes: [],
    mayCut: true,
  },
  {
    name: 'connection refused',
    start: async () => {
      const port = await refusedPort();
      return { origin: `http://127.0.0.1:${port}`, inFlight: () => 0, close: async () => {} };
    },
    statuses: new Map(),
    codes: ['connect_failure'],
    mayCut: false,
  },
  {
    name: 'flapping',
    // 30 ms healthy, 30 ms failing (503 or reset), over and over.
    start: scripted((i) => {
      if (Math.floor(Date.now() / 30) % 2 === 0) return ok();
      return i % 2 === 0 ? { status: 503, body: 'down' } : { reset: 'before-headers' };
    }),
    statuses: new Map([
      [200, 'ok'],
      [503, 'down'],
    ]),
    codes: ['upstream_reset'],
    mayCut: false,
  },
  {
    name: 'impatient clients',
    // The upstream takes 0-400 ms; clients hang up after 150 ms, mid-queue,
    // mid-backoff, mid-attempt or mid-body: every slot must still come back.
    start: scripted((i) => (i % 4 === 0 ? { status: 200, chunks: ['ab', 'cd', 'ef'], chunkIntervalMs: 80 } : { status: 200, body: 'ok', delayMs: (i * 37) % 400 })),
    statuses: new Map([[200, null]]),
    codes: ['timeout'],
    mayCut: true,
    clientTimeoutMs: 150,
  },
  {
    name: 'slow accept',
    start: async () => {
      const s = await startSlowAccept(50, 500);
      return { origin: s.origin, inFlight: () => s.inFlight, close: () => s.close() };
    },
    statuses: new Map([[200, 'ok']]),
    codes: ['timeout'],
    mayCut: false,
  },
];

// --- policy configurations ------------------------------------------------------

interface Policy {
  readonly name: string;
  /** The `flaky` upstream's policy blocks (YAML, indented 4). */
  readonly yaml: string;
  /** Codes the policy itself may generate. */
  readonly codes: readonly string[];
  /** Uses the healthy `backup` upstream as a fallback. */
  readonly backup: boolean;
  /** A static fallback response (200, FALLBACK_BODY) may answer. */
  readonly staticFallback: boolean;
}

const ALL_TRIGGERS = '[circuit-open, connect-failure, timeout, retries-exhausted, bulkhead-full, rate-limited, 5xx]';

const POLICIES: readonly Policy[] = [
  {
    name: 'retry only',
    yaml: `
    retry:
      maxRetries: 2
      on: [connect-failure, reset, timeout, 5xx]
      backoff: { strategy: constant, base: 5ms, max: 5ms }
      budget: { ratio: 0.5, minPerSecond: 100, window: 1s }`,
    codes: [],
    backup: false,
    staticFallback: false,
  },
  {
    name: 'breaker',
    yaml: `
    retry: { maxRetries: 0 }
    circuitBreaker:
      consecutiveFailures: 5
      failureRate: 50
      minimumRequests: 10
      window: 1s
      openDuration: 150ms
      halfOpenRequests: 2`,
    codes: ['circuit_open'],
    backup: false,
    staticFallback: false,
  },
  {
    name: 'small bulkhead',
    yaml: `
    retry: { maxRetries: 0 }
    bulkhead: { maxConcurrent: 4, maxQueue: 4, queueTimeout: 100ms }`,
    codes: ['bulkhead_full'],
    backup: false,
    staticFallback: false,
  },
  {
    name: 'rate limit',
    yaml: `
    retry: { maxRetries: 0 }
    rateLimit: { rate: 60/s, burst: 10, maxWait: 20ms }`,
    codes: ['rate_limited'],
    backup: false,
    staticFallback: false,
  },
  {
    name: 'fallback upstream',
    yaml: `
    retry: { maxRetries: 0 }
    fallback: { upstream: backup, on: ${ALL_TRIGGERS} }`,
    codes: [],
    backup: true,
    staticFallback: false,
  },
  {
    name: 'fallback response',
    yaml: `
    retry: { maxRetries: 0 }
    fallback:
      on: ${ALL_TRIGGERS}
      response: { status: 200, headers: { content-type: application/json }, body: '${FALLBACK_BODY}' }`,
    codes: [],
    backup: false,
    staticFallback: true,
  },
  {
    name: 'all together',
    yaml: `
    retry:
      maxRetries: 2
      on: [connect-failure, reset, timeout, 5xx]
      backoff: { strategy: exponential, base: 5ms, max: 20ms }
    circuitBreaker: { consecutiveFailures: 8, minimumRequests: 20, window: 1s, openDuration: 150ms, halfOpenRequests: 2 }
    bulkhead: { maxConcurrent: 8, maxQueue: 8, queueTimeout: 150ms }
    rateLimit: { rate: 150/s, burst: 20, maxWait: 10ms }
    fallback:
      upstream: backup
      on: ${ALL_TRIGGERS}
      response: { status: 200, headers: { content-type: application/json }, body: '${FALLBACK_BODY}' }`,
    // The backup is healthy, so these appear only when the fallback itself is rejected; allowed, not expected.
    codes: ['circuit_open', 'bulkhead_full', 'rate_limited'],
    backup: true,
    staticFallback: true,
  },
];

function configFor(origin: string, backup: string, p: Policy): string {
  return `
version: 1
admin: { address: 127.0.0.1:0 }
log: { level: info }
defaults:
  timeout: ${TIMEOUTS}
listeners:
  - { name: app, address: 127.0.0.1:0, upstream: flaky }
upstreams:
  flaky:
    url: ${origin}
    pool: { connections: 32, keepAlive: 2s }
${p.yaml}
  backup:
    url: ${backup}
    retry: { maxRetries: 0 }
`;
}

// --- one cell -------------------------------------------------------------------

/** What is wrong with one answer, or null. */
function problem(o: Outcome, fault: Fault, p: Policy, codes: ReadonlySet<string>): string | null {
  if (fault.clientTimeoutMs !== undefined && o.error?.startsWith('client deadline')) return null;
  if (!o.gotHeaders) return `no answer at all (${o.error})`;
  if (!o.complete) {
    if (!fault.mayCut) return `cut after headers (${o.status}): ${o.error}`;
    // Only an upstream response that was being streamed may be cut.
    if (o.headers['x-breakwater-error'] !== undefined || o.headers['x-breakwater-fallback'] === 'response') return `a generated answer was cut: ${o.error}`;
    return null;
  }
  if (o.headers['x-breakwater-error'] !== undefined) return checkGenerated(o, codes);
  const fb = o.headers['x-breakwater-fallback'];
  if (fb === 'response') {
    if (!p.staticFallback) return 'a static fallback answered, none is configured';
    return o.status === 200 && o.body === FALLBACK_BODY ? null : `static fallback ${o.status} ${o.body.slice(0, 40)}`;
  }
  if (fb === 'upstream') {
    if (!p.backup) return 'a fallback upstream answered, none is configured';
    return o.status === 200 && o.body === 'backup' ? null : `fallback upstream ${o.status} ${o.body.slice(0, 40)}`;
  }
  if (fb !== undefined) return `x-breakwater-fallback: ${String(fb)}`;
  if (!fault.statuses.has(o.status)) return `status ${o.status} cannot come from this upstream (body ${o.body.slice(0, 60)})`;
  const want = fault.statuses.get(o.status);
  if (want !== null && want !== undefined && o.body !== want) return `status ${o.status} with body ${o.body.slice(0, 60)} (expected ${want.slice(0, 20)}…)`;
  if (typeof o.headers['x-request-id'] !== 'string') return 'no x-request-id on a proxied answer';
  return null;
}

/** Each answer's access-log line (joined by request id) tells the same story as the client saw (SPEC §5). */
function crossCheckLog(outcomes: readonly Outcome[], lines: readonly LogLine[]): string[] {
  const byId = new Map(lines.map((l) => [l.requestId as string, l]));
  const out: string[] = [];
  for (const o of outcomes) {
    const id = o.headers['x-request-id'];
    if (typeof id !== 'string') continue;
    const l = byId.get(id);
    if (l === undefined) {
      out.push(`#${o.index}: no access-log line for request ${id}`);
      continue;
    }
    const flags = l.flags as string[];
    if (l.status !== o.status) out.push(`#${o.index}: logged status ${String(l.status)}, client saw ${o.status}`);
    const code = o.headers['x-breakwater-error'];
    if ((l.error ?? null) !== (typeof code === 'string' ? code : null)) out.push(`#${o.index}: logged error ${String(l.error)}, client saw ${String(code)}`);
    if (o.headers['x-breakwater-fallback'] !== undefined && !flags.includes('fallback')) out.push(`#${o.index}: a fallback answer without the fallback flag`);
    // (A client that hung up as the last byte left may be logged either way: no check for those.)
    if (!o.complete && !o.error?.startsWith('client deadline') && !flags.some((f) => f === 'upstream_reset' || f === 'idle_timeout')) out.push(`#${o.index}: a cut answer logged with flags ${JSON.stringify(flags)}`);
    if (o.complete && flags.includes('client_abort')) out.push(`#${o.index}: a complete answer flagged client_abort`);
    const tries = l.tries as unknown[];
    if (l.attempts !== tries.length && !flags.includes('fallback')) out.push(`#${o.index}: attempts ${String(l.attempts)} but ${tries.length} tries`);
  }
  return out;
}

function sumSeries(text: string, name: string, must: string): number {
  let n = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) || !line.includes(must)) continue;
    n += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return n;
}

async function runCell(fault: Fault, p: Policy, diag: (s: string) => void): Promise<void> {
  const baseline = snapshotHandles();
  const target = await fault.start();
  const backup = await startUpstream({ status: 200, body: 'backup' });
  let px: TestProxy | null = null;
  try {
    px = await startProxy(configFor(target.origin, backup.origin, p));
    const codes = new Set([...fault.codes, ...p.codes]);
    const t0 = Date.now();
    let readyMidRun = 0;
    const load = drive({
      url: px.url('app'),
      requests: REQUESTS,
      concurrency: CONCURRENCY,
      ...(fault.clientTimeoutMs === undefined ? {} : { timeoutMs: fault.clientTimeoutMs }),
      make: (i) =>
        i % 5 === 4
          ? { method: 'PUT', path: `/item/${i}`, headers: { 'content-type': 'text/plain' }, body: `payload ${i} `.repeat(20) }
          : { path: `/item/${i}?q=${i}` },
    });
    // The admin endpoint keeps answering during the storm.
    const probe = (async () => {
      await sleep(100);
      readyMidRun = (await admin(px!, '/readyz')).status;
    })();
    const outcomes = await load;
    await probe;
    const ms = Date.now() - t0;

    const problems = outcomes.map((o) => [o.index, problem(o, fault, p, codes)] as const).filter(([, e]) => e !== null);
    diag(`${fault.name} × ${p.name}: ${REQUESTS} requests in ${ms} ms ${JSON.stringify(tally(outcomes))}`);
    assert.equal(readyMidRun, 200, '/readyz answered 200 during the load');
    assert.deepEqual(
      problems.slice(0, 5).map(([i, e]) => `#${i} ${e} [${label(outcomes[i]!)}]`),
      [],
      `${problems.length} of ${REQUESTS} answers break the SPEC`,
    );

    const rest = await waitForRest(px, () => target.inFlight() + backup.inFlight);
    assert.equal(rest.ready, 200, '/readyz after the load');
    assert.equal(rest.inflight, 0, 'breakwater_inflight_requests after the load');
    for (const [name, b] of Object.entries(rest.bulkheads)) assert.deepEqual(b, { active: 0, queued: 0 }, `bulkhead ${name} after the load`);
    assert.equal(rest.upstreamInFlight, 0, 'upstream requests breakwater left open');
    const lines = await px.waitForRequests(REQUESTS, 5000);
    assert.equal(lines.length, REQUESTS, 'one access-log line per request');
    const logProblems = crossCheckLog(outcomes, lines);
    assert.deepEqual(logProblems.slice(0, 5), [], `${logProblems.length} access-log lines disagree with what the client saw`);
    const metrics = (await admin(px, '/metrics')).body;
    assert.equal(sumSeries(metrics, 'breakwater_requests_total', 'listener="app"'), REQUESTS, 'requests_total counts every request once');
  } finally {
    await px?.close();
    await backup.close();
    await target.close();
  }
  await assertNoLeaks(baseline, { settleMs: 3000 });
}

describe('fault matrix: every fault × every policy under concurrent load', () => {
  for (const fault of FAULTS) {
    describe(`upstream fault: ${fault.name}`, () => {
      for (const p of POLICIES) {
        it(`with ${p.name}, every request gets a SPEC answer and nothing is left behind`, async (t) => {
          await runCell(fault, p, (s) => t.diagnostic(s));
        });
      }
    });
  }
});
