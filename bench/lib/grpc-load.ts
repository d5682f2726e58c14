/**
 * Load for the `grpc` scenario: unary gRPC calls (POST, `application/grpc`,
 * `te: trailers`, one 5 + 128-byte message) on node's http2 client. A call
 * counts only if it ends with `grpc-status: 0`.
 *
 * - throughput: `sessions` connections, `streams` calls in flight on each,
 *   closed loop, for `durationS` after `warmupS`;
 * - fixed-rate latency: `rate` calls/s, open loop (each call is sent when the
 *   schedule says, whatever the previous ones are doing), for `durationS`.
 */
import http2, { type ClientHttp2Session } from 'node:http2';
import { createHistogram } from 'node:perf_hooks';
import { cpuMicros } from './proc-stats.ts';

const REQUEST = Buffer.concat([Buffer.from([0, 0, 0, 0, 128]), Buffer.alloc(128, 0x79)]);
const HEADERS = {
  ':method': 'POST',
  ':path': '/bench.Echo/Unary',
  'content-type': 'application/grpc',
  te: 'trailers',
};

function connect(url: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(url);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** One unary call; resolves true when it ended with grpc-status 0. */
export function unaryCall(s: ClientHttp2Session, timeoutMs = 10_000): Promise<boolean> {
  return new Promise((resolve) => {
    let status: string | undefined;
    const st = s.request(HEADERS);
    st.setTimeout(timeoutMs, () => st.close(http2.constants.NGHTTP2_CANCEL));
    st.on('response', (h) => (status = h['grpc-status'] as string | undefined)); // trailers-only
    st.on('trailers', (t) => (status = t['grpc-status'] as string | undefined));
    st.on('error', () => {});
    st.on('close', () => resolve(status === '0'));
    st.resume();
    st.end(REQUEST);
  });
}

/** A single call on a fresh connection: is the subject serving gRPC? */
export async function grpcReady(url: string): Promise<boolean> {
  let s: ClientHttp2Session | undefined;
  try {
    s = await connect(url);
    s.on('error', () => {});
    return await unaryCall(s, 1000);
  } catch {
    return false;
  } finally {
    s?.destroy();
  }
}

export interface GrpcSample {
  readonly rps: number;
  readonly cpuUsPerReq: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly failures: number;
}

export interface GrpcLoad {
  readonly sessions: number;
  readonly streams: number;
  readonly warmupS: number;
  readonly durationS: number;
  readonly rate: number;
}

async function closedLoop(sessions: ClientHttp2Session[], streams: number, ms: number): Promise<{ ok: number; failed: number }> {
  const end = performance.now() + ms;
  let ok = 0;
  let failed = 0;
  const worker = async (s: ClientHttp2Session): Promise<void> => {
    while (performance.now() < end) (await unaryCall(s)) ? ok++ : failed++;
  };
  await Promise.all(sessions.flatMap((s) => Array.from({ length: streams }, () => worker(s))));
  return { ok, failed };
}

async function fixedRate(sessions: ClientHttp2Session[], rate: number, durationS: number): Promise<{ p50Us: number; p99Us: number; failed: number }> {
  const hist = createHistogram();
  const total = Math.max(1, Math.round(rate * durationS));
  let sent = 0;
  let settled = 0;
  let failed = 0;
  await new Promise<void>((resolve) => {
    const fire = (): void => {
      const s = sessions[sent % sessions.length]!;
      const start = process.hrtime.bigint();
      void unaryCall(s).then((ok) => {
        if (ok) hist.record(Number(process.hrtime.bigint() - start));
        else failed++;
        if (++settled === total) resolve();
      });
    };
    const t0 = performance.now();
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000));
      while (sent < due) {
        fire();
        sent++;
      }
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
  const any = hist.count > 0;
  return { p50Us: any ? hist.percentile(50) / 1e3 : NaN, p99Us: any ? hist.percentile(99) / 1e3 : NaN, failed };
}

/** Throughput (with the subject's CPU per call), then latency at a fixed rate, on fresh connections. */
export async function measureGrpc(url: string, pid: number | null, o: GrpcLoad): Promise<GrpcSample> {
  const sessions = await Promise.all(Array.from({ length: o.sessions }, () => connect(url)));
  for (const s of sessions) s.on('error', () => {});
  try {
    await closedLoop(sessions, o.streams, o.warmupS * 1000);
    const cpu0 = pid === null ? 0 : cpuMicros(pid);
    const t0 = performance.now();
    const tp = await closedLoop(sessions, o.streams, o.durationS * 1000);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = pid === null ? NaN : cpuMicros(pid) - cpu0;
    const lat = await fixedRate(sessions, o.rate, o.durationS);
    return {
      rps: tp.ok / seconds,
      cpuUsPerReq: tp.ok === 0 ? NaN : cpu / tp.ok,
      p50Us: lat.p50Us,
      p99Us: lat.p99Us,
      failures: tp.failed + lat.failed,
    };
  } finally {
    for (const s of sessions) s.destroy();
  }
}
