/**
 * The tracing code's own CPU per request, without HTTP: a real TraceEngine
 * (SDK, batch processor, OTLP protobuf exporter to a local sink) drives the
 * server step, one attempt's client span and the end of the exchange for
 * fake exchanges, N times, and the process's CPU time (all threads) is
 * divided by N. The export of every sampled span is inside the measured
 * window (the queue is large enough to drop nothing, and a flush closes the
 * window). Complements the `tracing` scenario, whose end-to-end figures move
 * with whatever else the machine runs.
 *
 *   node bench/tracing-cost.ts            (N=50000 per run, 3 runs per ratio)
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { TraceEngine, Tracing } from '../src/observability/tracing/tracing.ts';

const N = Number(process.env['N'] ?? 50_000);

const sink = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => res.end());
});
await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
const endpoint = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/v1/traces`;

async function measure(ratio: number, n: number): Promise<number> {
  const cfg = { endpoint, sampleRatio: ratio, serviceName: null, queueSize: 4 * n };
  const t = new Tracing(cfg);
  const engine = new TraceEngine(cfg, 'bench', { dropped() {}, warn() {} }, {});
  t.engine = engine;
  const response = { kind: 'success', status: 200, grpcStatus: -1, endpoint: { endpoint: { authority: '127.0.0.1:1' } } };
  const attempt = t.attemptLayer('svc')((async () => response) as never);
  const handler = t.serverStep()((async (ex: { attempts: number }) => {
    ex.attempts = 1;
    return attempt(ex as never);
  }) as never);
  const metrics = { exemplar() {} };
  const headers = ['accept', '*/*', 'user-agent', 'bench', 'x-request-id', 'abc', 'host', 'h'];
  const run = async (count: number): Promise<void> => {
    for (let i = 0; i < count; i++) {
      const ex = {
        req: { headers: {} }, method: 'GET', route: 'r', upstream: 'svc', listener: 'l', requestId: 'id', target: '/x?q=1',
        start: performance.now(), upstreamHeaders: headers, baseHeaders: headers, hostIndex: 7, attempts: 0,
        trace: null as { end(ex: unknown, status: number, s: number): void } | null,
        flags: null, error: null, fallback: null, endpoint: '127.0.0.1:1', route_: null, metrics,
      };
      await handler(ex as never);
      ex.trace!.end(ex, 200, 0.001);
    }
  };
  await run(5_000);
  await engine.flush(30_000);
  const c0 = process.cpuUsage();
  await run(n);
  await engine.flush(30_000);
  const c = process.cpuUsage(c0);
  await engine.shutdown();
  return ((c.user + c.system) / n) * 1000;
}

console.log(`tracing code + export, CPU per request (${N} requests per run, 3 runs; ns):`);
for (const ratio of [0, 0.1, 1]) {
  const runs: number[] = [];
  for (let k = 0; k < 3; k++) runs.push(await measure(ratio, N));
  console.log(`  sampleRatio ${ratio}: ${runs.map((x) => Math.round(x)).join(' / ')}`);
}
sink.closeAllConnections();
sink.close();
