/**
 * grpc: unary gRPC calls over h2c (128-byte messages, grpc-status in
 * trailers) to an h2c target (bench/baselines/grpc-target.ts), directly and
 * through: breakwater (h2c listener, `protocol: h2c` upstream), a minimal
 * node http2 forwarder (bench/baselines/h2-forwarder.ts) and nginx
 * (`grpc_pass`, HTTP/2 both sides). Interleaved rounds, medians; CPU µs per
 * call of the proxy process and the latency it adds at a fixed rate.
 *
 * Knobs: DURATION WARMUP ROUNDS LATENCY_RATE ONLY PIN (as for the other
 * scenarios), GRPC_SESSIONS=4 GRPC_STREAMS=8 (calls in flight per session).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { measureGrpc, grpcReady, type GrpcSample } from '../lib/grpc-load.ts';
import { spawnChild, stopChild, type Child } from '../lib/procs.ts';
import { fmtInt, fmtPct, fmtRatio, fmtUsPair, markdownTable, median, progress, spread } from '../lib/report.ts';
import { breakwaterBuilt, type Settings } from '../lib/settings.ts';
import { SkipError, type Running, type Subject } from '../lib/subjects.ts';
import { setTimeout as sleep } from 'node:timers/promises';

export interface GrpcContext {
  readonly settings: Settings;
  readonly tmp: string;
  readonly nginx: string | null;
}

const positive = (name: string, fallback: number): number => {
  const n = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer`);
  return n;
};

async function serving(name: string, child: Child, url: string): Promise<Running> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !child.hasExited()) {
    if (await grpcReady(url)) return { url, pid: child.pid, stop: () => stopChild(child) };
    await sleep(100);
  }
  await stopChild(child);
  throw new SkipError(`${name}: did not answer a gRPC call — skipped\n    ${child.stderrTail().split('\n').slice(-4).join('\n    ')}`);
}

function subjects(ctx: GrpcContext, targetUrl: string): Subject[] {
  const s = ctx.settings;
  const proxyUrl = `http://127.0.0.1:${s.proxyPort}`;
  const list: Subject[] = [{ id: 'direct', label: 'direct (no proxy)', start: async () => ({ url: targetUrl, pid: null, stop: async () => {} }) }];
  if (breakwaterBuilt(s)) {
    list.push({
      id: 'breakwater',
      label: 'breakwater (h2c in, h2c out)',
      async start() {
        const file = join(ctx.tmp, 'grpc.yaml');
        writeFileSync(
          file,
          `version: 1
admin: { address: 127.0.0.1:${s.adminPort} }
log: { level: warn, access: false }
drain: { delay: 0s, timeout: 1s }
listeners:
  - { name: bench, address: 127.0.0.1:${s.proxyPort}, upstream: target }
upstreams:
  target:
    url: ${targetUrl}
    protocol: h2c
    pool: { connections: 4, keepAlive: 30s }
`,
        );
        return serving('breakwater', spawnChild('breakwater', process.execPath, [s.breakwaterCli, '--config', file], { core: 1 }), proxyUrl);
      },
    });
  } else progress('breakwater: dist/cli.js not built — skipped (npm run build)');
  list.push({
    id: 'node-h2',
    label: 'node:http2 forwarder (baseline)',
    start: async () =>
      serving(
        'node-h2',
        spawnChild('node-h2', process.execPath, [join(s.benchDir, 'baselines/h2-forwarder.ts')], {
          core: 1,
          guardStdin: true,
          env: { BENCH_CHILD: '1', LISTEN_PORT: String(s.proxyPort), UPSTREAM: targetUrl, SESSIONS: '4' },
        }),
        proxyUrl,
      ),
  });
  if (ctx.nginx !== null) {
    const nginx = ctx.nginx;
    list.push({
      id: 'nginx',
      label: 'nginx grpc_pass',
      async start() {
        const dir = join(ctx.tmp, 'nginx-grpc');
        mkdirSync(dir, { recursive: true });
        writeFileSync(
          join(dir, 'nginx.conf'),
          `worker_processes 1;
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  keepalive_requests 1000000;
  http2_max_requests 1000000;
  upstream target { server ${new URL(targetUrl).host}; keepalive 4; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${s.proxyPort} http2;
    location / { grpc_pass grpc://target; }
  }
}
`,
        );
        const child = spawnChild('nginx', nginx, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { core: 1 });
        return serving('nginx', child, proxyUrl);
      },
    });
  } else progress('nginx: not installed — skipped (apt-get install -y nginx-light, or BENCH_INSTALL=1 as root)');
  return s.only === null ? list : list.filter((x) => x.id === 'direct' || s.only!.has(x.id));
}

export async function run(ctx: GrpcContext): Promise<string> {
  const s = ctx.settings;
  const targetUrl = `http://127.0.0.1:${s.targetPort}`;
  const target = spawnChild('grpc-target', process.execPath, [join(s.benchDir, 'baselines/grpc-target.ts')], {
    core: 0,
    guardStdin: true,
    env: { BENCH_CHILD: '1', TARGET_PORT: String(s.targetPort) },
  });
  const t = await serving('grpc target', target, targetUrl);
  const load = { sessions: positive('GRPC_SESSIONS', 4), streams: positive('GRPC_STREAMS', 8), warmupS: s.warmupS, durationS: s.durationS, rate: s.latencyRate };
  const list = subjects(ctx, targetUrl);
  const results = new Map<string, (GrpcSample | undefined)[]>(list.map((x) => [x.id, []]));
  const skipped = new Set<string>();
  try {
    for (let round = 0; round < s.rounds; round++) {
      const order = [...list.slice(round % list.length), ...list.slice(0, round % list.length)];
      for (const subject of order) {
        if (skipped.has(subject.id)) continue;
        progress(`round ${round + 1}/${s.rounds}: ${subject.label}`);
        let r: Running;
        try {
          r = await subject.start();
        } catch (err) {
          if (!(err instanceof SkipError)) throw err;
          progress(err.message);
          skipped.add(subject.id);
          continue;
        }
        try {
          const sample = await measureGrpc(r.url, r.pid, load);
          if (sample.failures > 0) progress(`  warning: ${sample.failures} calls did not end with grpc-status 0`);
          results.get(subject.id)![round] = sample;
        } finally {
          await r.stop();
        }
      }
    }
  } finally {
    await t.stop();
  }
  return table(list, results, load.sessions * load.streams, s.latencyRate);
}

function table(list: readonly Subject[], results: Map<string, (GrpcSample | undefined)[]>, inFlight: number, rate: number): string {
  const direct = results.get('direct') ?? [];
  const med = (id: string, f: (x: GrpcSample) => number): number => median((results.get(id) ?? []).flatMap((x) => (x === undefined ? [] : [f(x)])));
  const added = (id: string, f: (x: GrpcSample) => number): number =>
    median((results.get(id) ?? []).flatMap((x, i) => (x === undefined || direct[i] === undefined ? [] : [f(x) - f(direct[i]!)])));
  const cpuOf = (id: string): number | null => (results.get(id)?.some((x) => x !== undefined) ? med(id, (x) => x.cpuUsPerReq) : null);
  const rows: string[][] = [];
  for (const x of list) {
    const own = (results.get(x.id) ?? []).filter((v): v is GrpcSample => v !== undefined);
    if (own.length === 0) continue;
    const isDirect = x.id === 'direct';
    const cpu = med(x.id, (v) => v.cpuUsPerReq);
    const cpuSpread = spread(own.map((v) => v.cpuUsPerReq));
    const ratio = (base: string): string => {
      const b = cpuOf(base);
      return isDirect || b === null || x.id === base ? '—' : fmtRatio(cpu / b);
    };
    rows.push([
      x.label,
      fmtInt(med(x.id, (v) => v.rps)),
      fmtPct(spread(own.map((v) => v.rps))),
      isDirect ? '—' : `${fmtInt(cpu)} (${fmtPct(cpuSpread)})`,
      ratio('node-h2'),
      ratio('nginx'),
      fmtUsPair(med(x.id, (v) => v.p50Us), med(x.id, (v) => v.p99Us)),
      isDirect ? '—' : fmtUsPair(added(x.id, (v) => v.p50Us), added(x.id, (v) => v.p99Us), true),
    ]);
  }
  return markdownTable(
    ['subject', `calls/s @${inFlight} in flight`, 'rounds spread', 'CPU µs/call (spread)', 'CPU vs node-h2', 'CPU vs nginx', `p50 / p99 @${rate} calls/s`, 'added p50 / p99'],
    rows,
  );
}
