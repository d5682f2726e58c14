/**
 * HTTP conformance through breakwater, one family per describe: the bulkhead
 * queue gauge, drain on kept-alive connections (SPEC §7), the total deadline
 * without perTry (§4.1), CONNECT host:80 tunnels (§10.3), /metrics that lints
 * clean, redirects rewritten to the client's authority (§3), the access-log
 * flag of every retriable failure that is not retried (§4.2, §5), and HEAD.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ProxyAgent, fetch as undiciFetch } from 'undici';
import { Metrics } from '../../src/observability/metrics/index.ts';
import { rawRequest, request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type LogLine, type TestProxy } from '../helpers/proxy.ts';
import { refusedPort, startUpstream, type Step, type Upstream } from '../helpers/upstream.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

const baseline = snapshotHandles();
after(async () => {
  await assertNoLeaks(baseline);
});

/** The access-log line of one request, found by its request id (the x-request-id a response carries). */
async function logFor(t: TestProxy, requestId: unknown): Promise<LogLine> {
  await waitFor(`access-log line of ${String(requestId)}`, () => t.requests().some((l) => l.requestId === requestId), 3000);
  return t.requests().find((l) => l.requestId === requestId)!;
}

/**
 * A raw client connection for conversations node:http would not have: bytes
 * are written as given, and `until` waits for what has arrived so far to
 * match. Every wait is bounded.
 */
interface Conversation {
  send(bytes: string): void;
  /** Resolves with everything received so far once it matches `re`; rejects after `ms`. */
  until(re: RegExp, ms?: number): Promise<string>;
  /** Resolves true once the server closed the connection (FIN or reset), false after `ms`. */
  closed(ms?: number): Promise<boolean>;
  /** Whether the connection ended with an error (a reset) rather than a FIN. */
  readonly errored: boolean;
  /** Everything received so far. */
  text(): string;
  destroy(): void;
}

function converse(port: number): Promise<Conversation> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const chunks: Buffer[] = [];
    let ended = false;
    let errored = false;
    const waiters = new Set<() => void>();
    const wake = () => {
      for (const w of [...waiters]) w();
    };
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      wake();
    });
    socket.on('close', () => {
      ended = true;
      wake();
    });
    socket.on('error', () => {
      errored = true;
    });
    const text = () => Buffer.concat(chunks).toString('latin1');
    const wait = (done: () => boolean, ms: number): Promise<boolean> =>
      new Promise((res) => {
        if (done()) return res(true);
        const check = () => {
          if (!done()) return;
          clearTimeout(timer);
          waiters.delete(check);
          res(true);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          res(false);
        }, ms);
        waiters.add(check);
      });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve({
        send: (bytes) => void socket.write(bytes),
        async until(re, ms = 3000) {
          if (await wait(() => re.test(text()) || ended, ms)) {
            if (re.test(text())) return text();
          }
          throw new Error(`waited for ${re} (closed: ${ended}), got: ${JSON.stringify(text().slice(0, 400))}`);
        },
        closed: (ms = 3000) => wait(() => ended, ms),
        get errored() {
          return errored;
        },
        text,
        destroy: () => socket.destroy(),
      });
    });
    socket.once('error', reject);
  });
}

/** The value of a metric sample (labels written exactly as in the exposition), or null if absent. */
function sample(text: string, series: string): number | null {
  for (const line of text.split('\n')) if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  return null;
}

describe('the bulkhead_queued gauge', () => {
  let up: Upstream;
  let t: TestProxy;

  before(async () => {
    // The first request hangs (it holds the only slot); the rest answer at once.
    up = await startUpstream((_req, i): Step => (i === 0 ? { hang: true } : { status: 200, body: 'ok' }));
    t = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: main, address: 127.0.0.1:0, upstream: bh }
upstreams:
  bh:
    url: ${up.origin}
    retry: { maxRetries: 0 }
    bulkhead: { maxConcurrent: 1, maxQueue: 5, queueTimeout: 10s }
`);
  });
  after(async () => {
    await t.close();
    await up.close();
  });

  it('reads 1 while a request waits in the queue and 0 once it has been served', async () => {
    const scrape = async () => (await request(`${t.adminUrl}/metrics`)).body;
    const series = 'breakwater_bulkhead_queued{upstream="bh"}';
    // The slot holder: a request the upstream never answers, given up by the client below.
    const holder = http.get(`${t.url('main')}/hold`, { agent: false });
    holder.on('error', () => {});
    try {
      await waitFor('the first request to reach the upstream', () => up.inFlight === 1, 3000);
      const queued = request(`${t.url('main')}/queued`);
      queued.catch(() => {}); // awaited below; a failure before then is reported there
      let seen: number | null = null;
      const end = Date.now() + 3000;
      while (Date.now() < end) {
        seen = sample(await scrape(), series);
        if (seen === 1) break;
        await sleep(20);
      }
      assert.equal(seen, 1, `${series} while the second request waits for the slot`);
      assert.equal(up.requests.length, 1, 'the queued request has not reached the upstream');
      // Giving up the slot holder frees the slot; the queued request runs.
      holder.destroy();
      const r = await queued;
      assert.equal(r.status, 200);
      await t.waitForRequests(2);
      const text = await scrape();
      assert.equal(sample(text, series), 0, 'nothing is queued any more');
      assert.equal(sample(text, 'breakwater_bulkhead_active{upstream="bh"}'), 0, 'no slot is held any more');
    } finally {
      holder.destroy();
    }
  });
});

describe('drain on a kept-alive connection (SPEC §7)', () => {
  let up: Upstream;
  let t: TestProxy;
  const conversations: Conversation[] = [];

  before(async () => {
    up = await startUpstream((req): Step => (req.url === '/slow' ? { status: 200, body: 'slow', delayMs: 800 } : { status: 200, body: 'ok' }));
    t = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
drain: { delay: 0s, timeout: 5s }
listeners:
  - { name: main, address: 127.0.0.1:0, upstream: u }
upstreams:
  u: { url: ${up.origin}, retry: { maxRetries: 0 } }
`);
  });
  after(async () => {
    for (const c of conversations) c.destroy();
    await t.close();
    await up.close();
  });

  it('answers a request arriving on an idle kept-alive connection with 503 draining and connection: close, not a reset', async () => {
    const idle = await converse(t.port('main'));
    conversations.push(idle);
    idle.send('GET /first HTTP/1.1\r\nHost: svc.test\r\n\r\n');
    await idle.until(/^HTTP\/1\.1 200 [^]*\r\n\r\nok$/);

    const slow = request(`${t.url('main')}/slow`);
    slow.catch(() => {}); // awaited below; a failure before then is reported there
    await waitFor('the slow request to reach the upstream', () => up.inFlight === 1, 3000);
    const drained = t.proxy.drain();
    const before = idle.text().length;
    idle.send('GET /second HTTP/1.1\r\nHost: svc.test\r\n\r\n');
    const closed = await idle.closed(3000);
    const answer = idle.text().slice(before);
    assert.match(answer, /^HTTP\/1\.1 503 /, `the idle connection is answered, not dropped: ${JSON.stringify(answer.slice(0, 200))}`);
    assert.match(answer, /\r\nx-breakwater-error: draining\r\n/i);
    assert.match(answer, /\r\nconnection: close\r\n/i);
    assert.ok(closed, 'the connection is closed after the answer');
    assert.equal(idle.errored, false, 'closed with a FIN, not a reset');

    const s = await slow;
    assert.equal(s.status, 200, 'the in-flight request finishes');
    assert.equal(s.body, 'slow');
    await drained;
    assert.equal(up.requests.filter((r) => r.url === '/second').length, 0, 'the request during drain never reached the upstream');
  });
});

describe('total deadline without perTry (SPEC §4.1)', () => {
  const PHASES = 20;
  let up: Upstream;
  let t: TestProxy;

  before(async () => {
    up = await startUpstream({ hang: true });
    t = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: main, address: 127.0.0.1:0, upstream: slow }
upstreams:
  slow:
    url: ${up.origin}
    timeout: { total: 100ms }
    retry: { on: [timeout], maxRetries: 2, backoff: { strategy: immediate } }
`);
  });
  after(async () => {
    await t.close();
    await up.close();
  });

  it("never retries a slow answer, wherever in a millisecond of the event loop's clock the request arrives", async () => {
    // Node's timers count whole milliseconds of the loop's clock (the delay
    // truncated, the start rounded down), so one can fire up to ~2 ms before
    // performance.now() says its delay is over. Whether that happens depends
    // on where in a millisecond the timer is armed: each request below is
    // held until a different point of the (monotonic) millisecond before
    // breakwater sees it. The expiry is the request's total deadline every
    // time, and never a retriable perTry timeout.
    const server = [...t.proxy.listeners.values()][0]!.server;
    let phase = 0;
    const align = (): void => {
      const end = performance.now() + 5;
      while (performance.now() < end) {
        const f = Number(process.hrtime.bigint() % 1_000_000n) / 1e6;
        if (Math.abs(f - phase) < 0.02) return;
      }
    };
    server.prependListener('request', align);
    const asked: string[] = [];
    try {
      for (let i = 0; i < PHASES; i++) {
        phase = i / PHASES;
        const before = up.requests.length;
        const r = await request(`${t.url('main')}/slow`);
        assert.equal(r.status, 504);
        assert.equal(r.headers['x-breakwater-error'], 'timeout');
        const line = await logFor(t, r.headers['x-request-id']);
        asked.push(`${phase.toFixed(2)}: ${up.requests.length - before} request(s), attempts ${String(line.attempts)}`);
      }
      await sleep(50);
      assert.equal(up.requests.length, PHASES, `the upstream was asked once per request:\n${asked.join('\n')}`);
      for (const line of t.requests()) assert.equal(line.attempts, 1, `one attempt each:\n${asked.join('\n')}`);
    } finally {
      server.off('request', align);
    }
  });
});

describe('CONNECT host:80 (SPEC §10.3)', () => {
  let up: Upstream;
  let t: TestProxy;
  let canary: net.Server;
  let canaryPort = 0;
  let canaryConnections = 0;
  const conversations: Conversation[] = [];

  before(async () => {
    up = await startUpstream((req): Step => (req.method === 'POST' ? { status: 201, echo: true } : { status: 200, body: `hello ${req.url}` }));
    canary = net.createServer((s) => {
      canaryConnections++;
      s.destroy();
    });
    await new Promise<void>((r) => canary.listen(0, '127.0.0.1', r));
    canaryPort = (canary.address() as net.AddressInfo).port;
    t = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: egress
    address: 127.0.0.1:0
    routes:
      - match: { host: api.test }
        upstream: api
upstreams:
  api: { url: ${up.origin}, retry: { maxRetries: 0 } }
`);
  });
  after(async () => {
    for (const c of conversations) c.destroy();
    await t.close();
    await up.close();
    await new Promise((r) => canary.close(r));
  });

  it("carries undici's fetch through a ProxyAgent to the upstream a route names", async () => {
    // proxyTunnel: a CONNECT even for http:// URLs (undici ≥ 8 sends absolute-form by default).
    const agent = new ProxyAgent({ uri: t.url('egress'), proxyTunnel: true });
    try {
      const res = await undiciFetch('http://api.test/x?y=1', { dispatcher: agent, signal: AbortSignal.timeout(5000) });
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'hello /x?y=1');
      const rid = res.headers.get('x-request-id');
      assert.equal(up.requests.length, 1);
      assert.equal(up.requests[0]!.url, '/x?y=1', 'the upstream saw the path and query');
      const line = await logFor(t, rid);
      assert.equal(line.route, 'egress/0');
      assert.equal(line.upstream, 'api');
      assert.equal(line.status, 200);
    } finally {
      up.reset();
      await agent.close();
    }
  });

  it("carries a POST from Node's built-in fetch with NODE_USE_ENV_PROXY=1", async () => {
    const script = `
      const res = await fetch('http://api.test/orders', { method: 'POST', body: 'order=1', headers: { 'content-type': 'text/plain' }, signal: AbortSignal.timeout(5000) });
      process.stdout.write(JSON.stringify({ status: res.status, body: await res.text() }));
    `;
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!/^(https?|all|no)_proxy$/i.test(k)) env[k] = v;
    Object.assign(env, { NODE_USE_ENV_PROXY: '1', HTTP_PROXY: t.url('egress'), http_proxy: t.url('egress') });
    try {
      const out = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, ['--input-type=module', '-e', script], { env, timeout: 15_000 }, (err, stdout, stderr) => {
          if (err !== null) reject(new Error(`the child's fetch failed: ${err.message}\n${stderr.slice(-800)}`));
          else resolve(stdout);
        });
      });
      const r = JSON.parse(out) as { status: number; body: string };
      assert.equal(r.status, 201);
      assert.equal(r.body, 'order=1', 'the body went through and came back');
      assert.equal(up.requests.length, 1);
      assert.equal(up.requests[0]!.method, 'POST');
      assert.equal(up.requests[0]!.url, '/orders');
      assert.equal(up.requests[0]!.body.toString(), 'order=1');
    } finally {
      up.reset();
    }
  });

  it('opens a tunnel only for port 80 of a routed host: other hosts and ports get 405 and nothing is dialled', async () => {
    const ok = await converse(t.port('egress'));
    conversations.push(ok);
    ok.send('CONNECT api.test:80 HTTP/1.1\r\nHost: api.test:80\r\n\r\n');
    await ok.until(/^HTTP\/1\.1 200 [^\r]*\r\n\r\n/);
    ok.destroy();

    for (const target of ['other.test:80', 'api.test:443', `127.0.0.1:${canaryPort}`, `localhost:${canaryPort}`]) {
      const r = await rawRequest(t.port('egress'), `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
      assert.match(r.raw, /^HTTP\/1\.1 405 /, `CONNECT ${target}: ${JSON.stringify(r.raw.slice(0, 120))}`);
      assert.match(r.raw, /\r\nx-breakwater-error: method_not_allowed\r\n/i, `CONNECT ${target}`);
    }
    await sleep(50);
    assert.equal(canaryConnections, 0, 'the canary was never contacted');
  });

  it('answers 400 to a request inside a tunnel whose Host is not the tunnel host', async () => {
    const c = await converse(t.port('egress'));
    conversations.push(c);
    c.send('CONNECT api.test:80 HTTP/1.1\r\nHost: api.test:80\r\n\r\n');
    await c.until(/^HTTP\/1\.1 200 [^\r]*\r\n\r\n/);
    let mark = c.text().length;
    c.send('GET /inside HTTP/1.1\r\nHost: api.test\r\n\r\n');
    const first = (await c.until(/\r\n\r\nhello \/inside$/)).slice(mark);
    assert.match(first, /^HTTP\/1\.1 200 /, 'a request for the tunnel host is served');
    mark = c.text().length;
    c.send('GET /elsewhere HTTP/1.1\r\nHost: other.test\r\n\r\n');
    const second = (await c.until(/\r\n\r\n\{[^]*\}$/)).slice(mark);
    assert.match(second, /^HTTP\/1\.1 400 /, JSON.stringify(second.slice(0, 200)));
    assert.match(second, /\r\nx-breakwater-error: bad_request\r\n/i);
    c.destroy();
    assert.equal(up.requests.filter((r) => r.url === '/elsewhere').length, 0, 'the other host was never forwarded');
    up.reset();
  });
});

describe('/metrics with the default process metrics', () => {
  it('has no gauge named _total and every counter named _total, and passes promtool check metrics', async (ctx) => {
    const m = new Metrics({ defaultMetrics: true });
    let text: string;
    try {
      text = await m.metricsText();
    } finally {
      m.registry.clear();
    }
    const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((x) => ({ name: x[1]!, type: x[2]! }));
    assert.ok(types.some((x) => x.name.startsWith('breakwater_process_')), 'the default metrics are there');
    const totalGauges = types.filter((x) => x.type === 'gauge' && x.name.endsWith('_total')).map((x) => x.name);
    assert.deepEqual(totalGauges, [], 'no gauge is named _total');
    const counters = types.filter((x) => x.type === 'counter' && !x.name.endsWith('_total')).map((x) => x.name);
    assert.deepEqual(counters, [], 'every counter is named _total');

    const promtool = '/usr/bin/promtool';
    if (!existsSync(promtool)) {
      ctx.diagnostic(`${promtool} is absent: promtool check metrics not run`);
      return;
    }
    const r = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const child = spawn(promtool, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      const timer = setTimeout(() => child.kill(), 15_000);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, out });
      });
      child.stdin.end(text);
    });
    assert.equal(r.code, 0, `promtool check metrics:\n${r.out}`);
  });
});

describe('redirects (SPEC §3)', () => {
  let up: Upstream;
  let t: TestProxy;

  before(async () => {
    up = await startUpstream((req): Step => {
      const own = `http://127.0.0.1:${up.port}`;
      switch (req.url) {
        case '/redir':
          return { status: 302, headers: { location: `${own}/next`, 'content-location': `${own}/c` } };
        case '/elsewhere':
          return { status: 302, headers: { location: 'http://elsewhere.example/x' } };
        case '/relative':
          return { status: 302, headers: { location: '/rel' } };
        default:
          return { status: 200, body: 'ok' };
      }
    });
    t = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: one, address: 127.0.0.1:0, upstream: app }
  - name: egress
    address: 127.0.0.1:0
    routes:
      - match: { host: api.test }
        upstream: app
upstreams:
  app: { url: ${up.origin}, retry: { maxRetries: 0 } }
`);
  });
  after(async () => {
    await t.close();
    await up.close();
  });

  it("rewrites a Location and Content-Location on the endpoint's own authority to the listener's, and leaves others unchanged", async () => {
    const me = `127.0.0.1:${t.port('one')}`;
    const r = await request(`${t.url('one')}/redir`);
    assert.equal(r.status, 302);
    assert.equal(r.headers.location, `http://${me}/next`);
    assert.equal(r.headers['content-location'], `http://${me}/c`);
    const other = await request(`${t.url('one')}/elsewhere`);
    assert.equal(other.headers.location, 'http://elsewhere.example/x', 'another authority passes unchanged');
    const rel = await request(`${t.url('one')}/relative`);
    assert.equal(rel.headers.location, '/rel', 'a relative Location passes unchanged');
  });

  it('rewrites the Location of an absolute-form request to the authority the client asked for', async () => {
    const r = await rawRequest(t.port('egress'), 'GET http://api.test/redir HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n');
    assert.match(r.raw, /^HTTP\/1\.1 302 /);
    assert.match(r.raw, /\r\nlocation: http:\/\/api\.test\/next\r\n/i, JSON.stringify(r.raw.slice(0, 400)));
    assert.match(r.raw, /\r\ncontent-location: http:\/\/api\.test\/c\r\n/i);
  });
});

describe('access-log flags of retriable failures that are not retried (SPEC §4.2, §5)', () => {
  let up: Upstream;
  let t: TestProxy;

  before(async () => {
    up = await startUpstream((req): Step => (req.url === '/later' ? { status: 503, retryAfter: '10' } : { status: 503, body: 'busy' }));
    const dead = await refusedPort();
    t = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: breaker, address: 127.0.0.1:0, upstream: dead }
  - { name: method, address: 127.0.0.1:0, upstream: post }
  - { name: deadline, address: 127.0.0.1:0, upstream: later }
  - { name: budget, address: 127.0.0.1:0, upstream: tight }
upstreams:
  dead:
    url: http://127.0.0.1:${dead}
    retry: { on: [connect-failure], maxRetries: 2, backoff: { strategy: immediate } }
    circuitBreaker: { consecutiveFailures: 1, failureRate: null, openDuration: 300ms }
  post:
    url: ${up.origin}
    retry: { on: [503], maxRetries: 2, backoff: { strategy: immediate } }
  later:
    url: ${up.origin}
    timeout: { total: 1s }
    retry: { on: [503], maxRetries: 2, respectRetryAfter: true, backoff: { strategy: immediate } }
  tight:
    url: ${up.origin}
    retry:
      on: [503]
      maxRetries: 3
      backoff: { strategy: immediate }
      budget: { ratio: 0, minPerSecond: 0.1, window: 10s }
`);
  });
  after(async () => {
    await t.close();
    await up.close();
  });

  it('flags retry_circuit_open when the half-open probe fails and the breaker opens again', async () => {
    const first = await request(`${t.url('breaker')}/a`);
    assert.equal(first.status, 503);
    assert.equal(first.headers['x-breakwater-error'], 'connect_failure');
    const rejected = await request(`${t.url('breaker')}/b`);
    assert.equal(rejected.headers['x-breakwater-error'], 'circuit_open', 'the breaker opened');
    await sleep(450); // openDuration 300ms, with margin
    const probe = await request(`${t.url('breaker')}/c`);
    assert.equal(probe.status, 503);
    assert.equal(probe.headers['x-breakwater-error'], 'connect_failure', 'the probe was let through and failed');
    const line = await logFor(t, probe.headers['x-request-id']);
    assert.equal(line.attempts, 1);
    assert.ok((line.flags as string[]).includes('retry_circuit_open'), `flags: ${JSON.stringify(line.flags)}`);
  });

  it('flags retry_method when a POST gets a retriable status', async () => {
    up.reset();
    const r = await request(`${t.url('method')}/p`, { method: 'POST', body: 'x' });
    assert.equal(r.status, 503);
    assert.equal(r.body, 'busy', "the upstream's answer is passed through");
    const line = await logFor(t, r.headers['x-request-id']);
    assert.equal(line.attempts, 1);
    assert.equal(up.requests.length, 1);
    assert.ok((line.flags as string[]).includes('retry_method'), `flags: ${JSON.stringify(line.flags)}`);
  });

  it('flags retry_deadline when Retry-After does not fit in what is left of total', async () => {
    up.reset();
    const r = await request(`${t.url('deadline')}/later`);
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '10');
    const line = await logFor(t, r.headers['x-request-id']);
    assert.equal(line.attempts, 1);
    assert.equal(up.requests.length, 1);
    assert.ok((line.flags as string[]).includes('retry_deadline'), `flags: ${JSON.stringify(line.flags)}`);
  });

  it('flags retry_budget_exhausted when the retry budget is spent', async () => {
    up.reset();
    const r = await request(`${t.url('budget')}/b`);
    assert.equal(r.status, 503);
    const line = await logFor(t, r.headers['x-request-id']);
    assert.equal(line.attempts, 2, 'the budget allowed one retry');
    assert.ok((line.flags as string[]).includes('retry_budget_exhausted'), `flags: ${JSON.stringify(line.flags)}`);
  });
});

describe('HEAD', () => {
  let up: Upstream;
  let t: TestProxy;

  before(async () => {
    up = await startUpstream({ status: 200, body: 'hello world', headers: { 'content-type': 'text/plain' } });
    t = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: main, address: 127.0.0.1:0, upstream: app }
upstreams:
  app: { url: ${up.origin} }
`);
  });
  after(async () => {
    await t.close();
    await up.close();
  });

  it("answers HEAD with the node upstream's status and content-length and no body", async () => {
    const r = await request(`${t.url('main')}/doc`, { method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], '11');
    assert.equal(r.body, '');
    assert.equal(up.requests[0]?.method, 'HEAD');
    const line = await logFor(t, r.headers['x-request-id']);
    assert.equal(line.status, 200);
    assert.equal(line.method, 'HEAD');
    assert.ok(!(line.flags as string[]).includes('client_abort'), `flags: ${JSON.stringify(line.flags)}`);
  });
});
