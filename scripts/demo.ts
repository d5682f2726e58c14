/**
 * `npm run demo`: breakwater at work on loopback, in about 20 seconds.
 *
 * Starts two upstreams — "orders", which answers 503 a third of the time and
 * sometimes hangs, and "recommendations", which goes down half-way — then the
 * built breakwater (`dist/cli.js`, config/demo.yaml) in a child process, drives
 * traffic both directly and through breakwater, and prints what happened.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SECONDS = Number(process.env['DEMO_SECONDS'] ?? 20);
const CONCURRENCY = 8;
/** A port nothing listens on right now (the demo must work beside whatever else runs on the machine). */
function freePort(): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(String(port)));
    });
  });
}
// Each port can be pinned from the environment; otherwise a free one is taken.
const ports = {
  DEMO_ADMIN_PORT: process.env['DEMO_ADMIN_PORT'] ?? (await freePort()),
  DEMO_ORDERS_PORT: process.env['DEMO_ORDERS_PORT'] ?? (await freePort()),
  DEMO_RECS_PORT: process.env['DEMO_RECS_PORT'] ?? (await freePort()),
  DEMO_FLAKY_PORT: process.env['DEMO_FLAKY_PORT'] ?? (await freePort()),
  DEMO_DOWN_PORT: process.env['DEMO_DOWN_PORT'] ?? (await freePort()),
};

const cli = path.join(root, 'dist', 'cli.js');
if (!existsSync(cli)) {
  console.error('dist/cli.js is missing: run `npm ci` (or `npm run build`) first.');
  process.exit(1);
}

function listen(port: number, handler: http.RequestListener): Promise<http.Server> {
  const s = http.createServer(handler);
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

let n = 0;
const flaky = await listen(Number(ports.DEMO_FLAKY_PORT), (req, res) => {
  req.resume();
  const i = n++;
  if (i % 10 === 7) return void setTimeout(() => res.end('{"late":true}'), 1000); // too slow: perTry cuts it
  if (i % 3 === 0) {
    res.writeHead(503, { 'content-type': 'application/json' });
    return void res.end('{"error":"overloaded"}');
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end('{"order":42}');
});
let recs: http.Server | null = await listen(Number(ports.DEMO_DOWN_PORT), (req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end('{"recommendations":["tea","biscuits"]}');
});

const child = spawn(process.execPath, [cli, '--config', path.join(root, 'config', 'demo.yaml')], {
  env: { ...process.env, ...ports },
  stdio: ['ignore', 'pipe', 'inherit'],
});
const events: Record<string, unknown>[] = [];
let buf = '';
child.stdout.on('data', (c: Buffer) => {
  buf += c.toString();
  let nl: number;
  while ((nl = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    try {
      events.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not ours
    }
  }
});
const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY * 2 });
function get(port: string, p: string, timeoutMs = 5000): Promise<{ status: number; ms: number; headers: http.IncomingHttpHeaders }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: Number(port), path: p, agent, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0, headers: res.headers }));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve({ status: 0, ms: performance.now() - t0, headers: {} }));
  });
}

async function waitReady(): Promise<void> {
  const end = Date.now() + 10_000;
  let gone = false;
  void exited.then(() => (gone = true));
  while (Date.now() < end && !gone) {
    const r = await get(ports.DEMO_ADMIN_PORT, '/readyz', 500);
    if (r.status === 200 && !gone) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  // breakwater said why on stderr (a port in use, say): stop here, cleanly.
  console.error(gone ? '\nbreakwater exited before it was ready (see its message above).' : '\nbreakwater did not become ready within 10 s.');
  child.kill('SIGKILL');
  flaky.close();
  recs?.close();
  process.exit(1);
}

await waitReady();
console.log(`breakwater is up (admin http://127.0.0.1:${ports.DEMO_ADMIN_PORT}). Driving traffic for ${SECONDS} s…\n`);

type Tally = { ok: number; fail: number; lat: number[]; fallback: number };
const tally = (): Tally => ({ ok: 0, fail: 0, lat: [], fallback: 0 });
const direct = tally();
const viaOrders = tally();
const viaRecs = tally();
const end = Date.now() + SECONDS * 1000;
const downAt = Date.now() + (SECONDS * 1000) / 2;

async function worker(fn: () => Promise<void>): Promise<void> {
  while (Date.now() < end) await fn();
}
function record(t: Tally, r: { status: number; ms: number; headers: http.IncomingHttpHeaders }): void {
  if (r.status >= 200 && r.status < 500) t.ok++;
  else t.fail++;
  if (r.headers['x-breakwater-fallback'] !== undefined) t.fallback++;
  t.lat.push(r.ms);
}
const ticker = setInterval(() => {
  if (recs !== null && Date.now() >= downAt) {
    recs.closeAllConnections();
    recs.close();
    recs = null;
    console.log('… recommendations just went down (connection refused from now on)');
  }
}, 100);

await Promise.all([
  ...Array.from({ length: CONCURRENCY / 2 }, () => worker(async () => record(direct, await get(ports.DEMO_FLAKY_PORT, '/orders/42', 2000)))),
  ...Array.from({ length: CONCURRENCY / 2 }, () => worker(async () => record(viaOrders, await get(ports.DEMO_ORDERS_PORT, '/orders/42')))),
  ...Array.from({ length: 2 }, () =>
    worker(async () => {
      record(viaRecs, await get(ports.DEMO_RECS_PORT, '/recommendations'));
      await new Promise((r) => setTimeout(r, 20));
    }),
  ),
]);
clearInterval(ticker);

const metrics = await new Promise<string>((resolve) => {
  http
    .get(`http://127.0.0.1:${ports.DEMO_ADMIN_PORT}/metrics`, (res) => {
      let s = '';
      res.on('data', (c: Buffer) => (s += c.toString()));
      res.on('end', () => resolve(s));
    })
    .on('error', () => resolve(''));
});
function sum(name: string, filter = ''): number {
  let total = 0;
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(name) || !line.includes(filter)) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

child.kill('SIGTERM');
const code = await exited;
flaky.closeAllConnections();
flaky.close();
agent.destroy();

const pct = (t: Tally): string => `${((100 * t.ok) / Math.max(1, t.ok + t.fail)).toFixed(1)} %`;
const q = (xs: number[], p: number): string => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? '-' : `${s[Math.min(s.length - 1, Math.floor(p * s.length))]!.toFixed(1)} ms`;
};
const transitions = events.filter((e) => e['msg'] === 'circuit_transition');

console.log('\n=== what breakwater did ===');
console.log(`orders, called directly:          ${direct.ok + direct.fail} requests, ${pct(direct)} succeeded (p50 ${q(direct.lat, 0.5)}, p99 ${q(direct.lat, 0.99)})`);
console.log(`orders, through breakwater:       ${viaOrders.ok + viaOrders.fail} requests, ${pct(viaOrders)} succeeded (p50 ${q(viaOrders.lat, 0.5)}, p99 ${q(viaOrders.lat, 0.99)})`);
console.log(`  retries made:                   ${sum('breakwater_retries_total', 'upstream="orders"')} (503s and perTry timeouts retried with backoff, inside a retry budget)`);
console.log(`  retry budget exhausted:         ${sum('breakwater_retry_budget_exhausted_total', 'upstream="orders"')} times (the budget caps retries at 50 % of requests: the 503 went back as it was)`);
console.log(`  attempts by result:             ${['success', '5xx', 'timeout', 'reset', 'connect_failure'].map((r) => `${r} ${sum('breakwater_upstream_attempts_total', `upstream="orders",result="${r}"`)}`).join(', ')}`);
console.log(`recommendations, through breakwater: ${viaRecs.ok + viaRecs.fail} requests, ${pct(viaRecs)} answered, ${viaRecs.fallback} with the degraded fallback`);
console.log(`  circuit breaker:                ${transitions.map((t) => `${t['from']}→${t['to']}`).join(', ') || 'no transitions'}`);
console.log(`  rejected while open:            ${sum('breakwater_rejected_total', 'reason="circuit_open"')} (answered at once from the fallback, the dead upstream was left alone)`);
console.log(`access-log lines written:         ${events.filter((e) => e['msg'] === 'request').length}`);
console.log(`breakwater exited with code ${code} after SIGTERM (graceful drain).`);
const sample = events.find((e) => e['msg'] === 'request' && Array.isArray(e['tries']) && (e['tries'] as unknown[]).length > 1);
if (sample !== undefined) console.log(`\nOne access-log line, explaining a retried request:\n${JSON.stringify(sample)}`);
process.exit(code === 0 ? 0 : 1);
