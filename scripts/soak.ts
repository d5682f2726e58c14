/**
 * Soak test: a long run of kept-alive requests through a mixed-policy config,
 * watching the proxy for memory growth and event-loop lag. Not part of the
 * test suite (it takes minutes); run it before a release:
 *
 *   node scripts/soak.ts                         # 1,000,000 requests
 *   SOAK_REQUESTS=200000 node scripts/soak.ts    # a shorter run
 *
 * Knobs (env): SOAK_REQUESTS (1000000), SOAK_CONNECTIONS (32), SOAK_SAMPLE_MS
 * (2000), SOAK_WARMUP (0.1: share of requests before the baseline sample) and
 * SOAK_WARMUP_MS (10000: and at least this long),
 * BREAKWATER_CLI (dist/cli.js, else src/cli.ts), SOAK_LOG (a file for the
 * proxy's stdout; default /dev/null — access logs are still written).
 *
 * Three processes: the upstream (a small node:http server, child), breakwater
 * (`node dist/cli.js`, child) and the load generator (autocannon, here). The
 * proxy's RSS comes from /proc, its event-loop lag from its own /metrics
 * (`breakwater_nodejs_eventloop_lag_p99_seconds`, reset by prom-client at
 * every scrape, so each sample is the p99 of that interval; it includes
 * the monitor's 10 ms sampling interval, so an idle process reads ~10-11 ms
 * and the idle reading is printed beside it). The report
 * (Markdown) goes to stdout, progress to stderr. Exit code 1 if the proxy
 * failed, answered with unexpected errors, or did not come back to rest.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const REQUESTS = Number(process.env['SOAK_REQUESTS'] ?? 1_000_000);
const CONNECTIONS = Number(process.env['SOAK_CONNECTIONS'] ?? 32);
const SAMPLE_MS = Number(process.env['SOAK_SAMPLE_MS'] ?? 2000);
const WARMUP = Number(process.env['SOAK_WARMUP'] ?? 0.1);
/** The baseline sample also waits this long: young-generation and allocator pools grow for the first seconds. */
const WARMUP_MS = Number(process.env['SOAK_WARMUP_MS'] ?? 10_000);
const root = path.resolve(import.meta.dirname, '..');
const CLI = process.env['BREAKWATER_CLI'] ?? (existsSync(path.join(root, 'dist/cli.js')) ? path.join(root, 'dist/cli.js') : path.join(root, 'src/cli.ts'));

// The part of autocannon's API used here (the bench's declaration covers less).
interface AcResult {
  requests: { total: number; average: number };
  latency: { p50: number; p99: number; max: number };
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodeStats: Record<string, { count: number }>;
}
interface AcInstance extends PromiseLike<AcResult> {
  on(event: 'response', fn: (client: unknown, status: number) => void): void;
  stop(): void;
}
// Loaded through require: autocannon ships no types, and this script declares the part it uses.
const autocannon = createRequire(import.meta.url)('autocannon') as (opts: Record<string, unknown>) => AcInstance;

const log = (s: string): void => void process.stderr.write(`${s}\n`);

const UPSTREAM = `
const http = require('node:http');
const body = Buffer.alloc(128, 'x');
let n = 0;
http.createServer({ keepAliveTimeout: 10000 }, (req, res) => {
  n++;
  req.resume();
  req.on('end', () => {
    const u = req.url;
    if (u.startsWith('/b') && n % 50 === 0) { res.writeHead(503, { 'content-length': 4 }); res.end('down'); return; }
    if (u.startsWith('/c') && n % 100 === 0) { setTimeout(() => { res.writeHead(200, { 'content-length': 128 }); res.end(body); }, 30); return; }
    res.writeHead(200, { 'content-length': 128 });
    res.end(body);
  });
}).listen(0, '127.0.0.1', function () { process.stdout.write(this.address().port + '\\n'); });
`;

function config(port: number, admin: number, upstream: string): string {
  return `
version: 1
admin: { address: 127.0.0.1:${admin} }
log: { level: info, access: true, headers: [user-agent] }
listeners:
  - name: app
    address: 127.0.0.1:${port}
    routes:
      - { name: plain, match: { pathPrefix: /a }, upstream: plain }
      - { name: guarded, match: { pathPrefix: /b }, upstream: guarded }
      - { name: limited, match: { pathPrefix: /c }, upstream: limited, timeout: { total: 2s } }
upstreams:
  plain:
    url: ${upstream}
    pool: { connections: 64 }
    retry: { maxRetries: 2 }
  guarded:
    url: ${upstream}
    pool: { connections: 64 }
    retry: { maxRetries: 2, on: [connect-failure, reset, timeout, 503], backoff: { strategy: constant, base: 1ms, max: 1ms }, budget: { ratio: 0.5, minPerSecond: 1000 } }
    circuitBreaker: { failureRate: 90, minimumRequests: 200, window: 10s, openDuration: 1s }
    bulkhead: { maxConcurrent: 256, maxQueue: 256, queueTimeout: 1s }
    fallback:
      response: { status: 200, headers: { content-type: application/json }, body: '{"degraded":true}' }
  limited:
    url: ${upstream}
    pool: { connections: 64 }
    timeout: { perTry: 500ms }
    rateLimit: { rate: 1000000/s, burst: 100000 }
    bulkhead: { maxConcurrent: 64, maxQueue: 1024, queueTimeout: 1s }
`;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(5000, () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m?.[1] === undefined ? NaN : Number(m[1]) * 1024;
}

function metric(text: string, name: string): number {
  let sum = NaN;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.charAt(name.length);
    if (rest !== ' ' && rest !== '{') continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    sum = Number.isNaN(sum) ? v : sum + v;
  }
  return sum;
}

interface Sample {
  t: number;
  done: number;
  rss: number;
  heap: number;
  lagP99: number;
}

const mb = (b: number): string => (b / 1024 / 1024).toFixed(1);

/** Least-squares RSS growth per 100k requests over the samples after warm-up. */
function slope(xs: readonly Sample[]): string {
  if (xs.length < 3) return `n/a (${xs.length} samples after warm-up; run longer)`;
  const n = xs.length;
  const mx = xs.reduce((a, x) => a + x.done, 0) / n;
  const my = xs.reduce((a, x) => a + x.rss, 0) / n;
  let num = 0;
  let den = 0;
  for (const x of xs) {
    num += (x.done - mx) * (x.rss - my);
    den += (x.done - mx) ** 2;
  }
  return den === 0 ? 'n/a' : `${mb((num / den) * 100_000)} MiB per 100k requests over ${n} samples`;
}
const pct = (a: number, b: number): string => `${(((b - a) / a) * 100).toFixed(1)} %`;

async function main(): Promise<number> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'bw-soak-'));
  const children: ChildProcess[] = [];
  const cleanup = (): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  try {
    // 1. The upstream.
    const up = spawn(process.execPath, ['-e', UPSTREAM], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(up);
    const upPort = await new Promise<number>((resolve, reject) => {
      up.stdout!.once('data', (c: Buffer) => resolve(Number(c.toString().trim())));
      up.once('exit', (code) => reject(new Error(`upstream exited (${code})`)));
    });

    // 2. breakwater, as the CLI.
    const port = await freePort();
    const adminPort = await freePort();
    const file = path.join(tmp, 'breakwater.yaml');
    writeFileSync(file, config(port, adminPort, `http://127.0.0.1:${upPort}`));
    const out = openSync(process.env['SOAK_LOG'] ?? '/dev/null', 'w');
    const proxy = spawn(process.execPath, [CLI, '--config', file], { stdio: ['ignore', out, 'pipe'] });
    children.push(proxy);
    let stderr = '';
    proxy.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const adminUrl = `http://127.0.0.1:${adminPort}`;
    for (let i = 0; ; i++) {
      if (proxy.exitCode !== null) throw new Error(`breakwater exited ${proxy.exitCode}: ${stderr}`);
      try {
        if ((await get(`${adminUrl}/readyz`)).status === 200) break;
      } catch {
        // not listening yet
      }
      if (i > 100) throw new Error(`breakwater not ready after 10 s: ${stderr}`);
      await sleep(100);
    }
    const pid = proxy.pid!;
    const rssStart = rssBytes(pid);
    // Two scrapes 1 s apart while idle: the second is the idle lag p99 (the monitor's resolution plus noise).
    await get(`${adminUrl}/metrics`);
    await sleep(1000);
    const idleLag = metric((await get(`${adminUrl}/metrics`)).body, 'breakwater_nodejs_eventloop_lag_p99_seconds');
    log(`soak: ${REQUESTS} requests, ${CONNECTIONS} connections, proxy pid ${pid} (${path.relative(root, CLI)}), rss at start ${mb(rssStart)} MiB`);

    // 3. The load, with samples along the way.
    let done = 0;
    const started = Date.now();
    const samples: Sample[] = [];
    let warm: Sample | null = null;
    const instance = autocannon({
      url: `http://127.0.0.1:${port}`,
      connections: CONNECTIONS,
      pipelining: 1,
      amount: REQUESTS,
      timeout: 10,
      headers: { 'user-agent': 'breakwater-soak' },
      requests: [{ path: '/a/items' }, { path: '/b/orders' }, { path: '/a/items?page=2' }, { path: '/c/stock' }, { method: 'POST', path: '/b/orders', body: '{"qty":1}', headers: { 'content-type': 'application/json' } }],
    });
    instance.on('response', () => {
      done++;
    });
    const sample = async (): Promise<Sample> => {
      const text = (await get(`${adminUrl}/metrics`)).body;
      return { t: Date.now() - started, done, rss: rssBytes(pid), heap: metric(text, 'breakwater_nodejs_heap_size_used_bytes'), lagP99: metric(text, 'breakwater_nodejs_eventloop_lag_p99_seconds') };
    };
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        await sleep(SAMPLE_MS);
        if (!sampling) break;
        const s = await sample();
        samples.push(s);
        if (warm === null && s.done >= REQUESTS * WARMUP && s.t >= WARMUP_MS) warm = s;
        log(`  t=${(s.t / 1000).toFixed(0)}s done=${s.done} rss=${mb(s.rss)}MiB heap=${mb(s.heap)}MiB lagP99=${(s.lagP99 * 1000).toFixed(1)}ms`);
      }
    })();
    const result = await instance;
    sampling = false;
    await sampler;
    const end = await sample();
    const elapsed = (Date.now() - started) / 1000;

    // 4. Back to rest: nothing in flight, bulkheads empty.
    await sleep(500);
    const text = (await get(`${adminUrl}/metrics`)).body;
    const inflight = metric(text, 'breakwater_inflight_requests');
    const ups = JSON.parse((await get(`${adminUrl}/upstreams`)).body) as Record<string, { bulkhead: { active: number; queued: number } | null }>;
    const busy = Object.entries(ups).filter(([, u]) => u.bulkhead !== null && (u.bulkhead.active !== 0 || u.bulkhead.queued !== 0));

    // 5. Drain and exit like a pod would.
    proxy.kill('SIGTERM');
    const exitCode = await new Promise<number | null>((resolve) => {
      const t = setTimeout(() => resolve(null), 40_000);
      proxy.once('exit', (code) => {
        clearTimeout(t);
        resolve(code);
      });
    });

    const base = warm ?? samples[0] ?? end;
    const after = samples.filter((x) => x.t >= base.t).concat(end);
    // The sample nearest half-way: a leak keeps growing through the second half, warm-up growth does not.
    const mid = samples.reduce((best, x) => (Math.abs(x.done - REQUESTS / 2) < Math.abs(best.done - REQUESTS / 2) ? x : best), end);
    const lags = samples.map((s) => s.lagP99).filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    const median = lags[Math.floor(lags.length / 2)] ?? NaN;
    const codes = Object.entries(result.statusCodeStats ?? {}).map(([c, s]) => `${c}: ${s.count}`).join(', ');
    const rows: [string, string][] = [
      ['requests', `${result.requests.total} in ${elapsed.toFixed(1)} s (${Math.round(result.requests.total / elapsed)} req/s), ${CONNECTIONS} kept-alive connections`],
      ['status codes', codes],
      ['client errors / timeouts', `${result.errors} / ${result.timeouts}`],
      ['latency p50 / p99 / max', `${result.latency.p50} / ${result.latency.p99} / ${result.latency.max} ms`],
      ['RSS at start (idle)', `${mb(rssStart)} MiB`],
      ['RSS after warm-up', `${mb(base.rss)} MiB (after ${base.done} requests, t=${(base.t / 1000).toFixed(0)} s)`],
      ['RSS at end', `${mb(end.rss)} MiB (growth ${pct(base.rss, end.rss)})`],
      ['RSS max over samples', `${mb(Math.max(...samples.map((s) => s.rss), end.rss))} MiB`],
      ['RSS second half (leak check)', `${mb(mid.rss)} MiB at ${mid.done} requests → ${mb(end.rss)} MiB at end (${pct(mid.rss, end.rss)})`],
      ['heap used after warm-up (GC sawtooth)', `min ${mb(Math.min(...after.map((x) => x.heap)))}, max ${mb(Math.max(...after.map((x) => x.heap)))} MiB; first half max ${mb(Math.max(...after.filter((x) => x.done < mid.done).map((x) => x.heap), 0))}, second half max ${mb(Math.max(...after.filter((x) => x.done >= mid.done).map((x) => x.heap)))} MiB`],
      ['event-loop lag p99 (per sample interval)', `median ${(median * 1000).toFixed(1)} ms, max ${((lags.at(-1) ?? NaN) * 1000).toFixed(1)} ms over ${lags.length} samples (idle: ${(idleLag * 1000).toFixed(1)} ms — the 10 ms monitor resolution is included)`],
      ['RSS slope after warm-up', slope(after)],
      ['at rest after the run', `inflight ${inflight}, busy bulkheads ${busy.length === 0 ? 'none' : busy.map(([n]) => n).join(', ')}`],
      ['drain on SIGTERM', `exit code ${exitCode}`],
    ];
    process.stdout.write(`\n## breakwater soak\n\n| | |\n| --- | --- |\n${rows.map(([k, v]) => `| ${k} | ${v} |`).join('\n')}\n\nmachine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, node ${process.version}\n`);
    const unexpected = Object.keys(result.statusCodeStats ?? {}).filter((c) => !['200', '503'].includes(c));
    const ok = result.errors === 0 && result.timeouts === 0 && unexpected.length === 0 && inflight === 0 && busy.length === 0 && exitCode === 0;
    if (!ok) log(`soak: FAILED (errors ${result.errors}, timeouts ${result.timeouts}, unexpected statuses ${unexpected.join(',') || 'none'}, inflight ${inflight}, exit ${exitCode})`);
    return ok ? 0 : 1;
  } finally {
    cleanup();
  }
}

process.exitCode = await main();
