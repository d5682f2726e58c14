/**
 * The two load shapes of a measurement:
 * - throughput: autocannon, N keep-alive connections, pipelining 1, as fast as
 *   the subject answers (closed loop);
 * - latency: a fixed rate (default 1000 req/s), requests sent on a schedule
 *   that does not wait for answers (open loop), timed with a nanosecond clock.
 *
 * Why not autocannon's `overallRate` for the latency run: it sends each
 * connection's whole per-second quota back to back at the start of every
 * second (a burst, not a rate) and records latencies in whole milliseconds,
 * while the differences measured here are tens to hundreds of microseconds.
 */
import autocannon from 'autocannon';
import { createHistogram } from 'node:perf_hooks';
import { Pool } from 'undici';
import { cpuMicros, peakRssBytes, watchMemoryPeaks } from './proc-stats.ts';

export interface Throughput {
  readonly rps: number;
  /** Responses counted (any status). */
  readonly requests: number;
  /** Errors, timeouts and non-2xx answers: a subject should have none. */
  readonly failures: number;
}

/** What each request is: GET without a body unless a scenario says otherwise (dead-letter: POST with a body). */
export interface RequestShape {
  readonly method: 'POST' | 'PUT';
  readonly body: string;
}

export async function throughput(
  url: string,
  connections: number,
  durationS: number,
  headers?: Record<string, string>,
  shape?: RequestShape,
): Promise<Throughput> {
  const r = await autocannon({ url, connections, pipelining: 1, duration: durationS, timeout: 10, ...(headers && { headers }), ...(shape && { method: shape.method, body: shape.body }) });
  return {
    rps: r['2xx'] / r.duration,
    requests: r.requests.total,
    failures: r.errors + r.timeouts + r.non2xx,
  };
}

export interface Latency {
  readonly p50Us: number;
  readonly p99Us: number;
  readonly failures: number;
}

export async function fixedRateLatency(
  url: string,
  rate: number,
  durationS: number,
  headers?: Record<string, string>,
  shape?: RequestShape,
): Promise<Latency> {
  const u = new URL(url);
  // Enough connections that a slow answer never holds up the next scheduled send.
  const pool = new Pool(u.origin, { connections: 16, pipelining: 1, headersTimeout: 10_000, bodyTimeout: 10_000 });
  const hist = createHistogram();
  // The first half second opens the client's connections and is not recorded:
  // a TCP handshake is not latency the subject adds.
  const unrecorded = Math.round(rate / 2);
  const total = unrecorded + Math.max(1, Math.round(rate * durationS));
  let sent = 0;
  let settled = 0;
  let failures = 0;

  await new Promise<void>((resolve) => {
    const fire = (): void => {
      const record = sent > unrecorded;
      const start = process.hrtime.bigint();
      pool
        .request({ path: u.pathname + u.search, method: shape?.method ?? 'GET', ...(shape && { body: shape.body }), ...(headers && { headers }) })
        .then(async (res) => {
          await res.body.dump();
          if (res.statusCode !== 200) failures++;
          else if (record) hist.record(Number(process.hrtime.bigint() - start));
        })
        .catch(() => failures++)
        .finally(() => {
          if (++settled === total) resolve();
        });
    };
    const t0 = performance.now();
    // Each tick sends whatever the schedule says is due; timers fire about
    // every millisecond, so at 1000 req/s that is mostly one request a tick.
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000));
      while (sent < due) {
        sent++;
        fire();
      }
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
  await pool.close();
  const ok = hist.count > 0;
  return {
    p50Us: ok ? hist.percentile(50) / 1e3 : NaN,
    p99Us: ok ? hist.percentile(99) / 1e3 : NaN,
    failures,
  };
}

export interface Sample {
  readonly rps: number;
  /** Proxy CPU time over the throughput run, per request; null without a pid. */
  readonly cpuUsPerReq: number | null;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly peakRssBytes: number | null;
  /** Largest private (anonymous) resident memory seen from warm-up to the end of the latency run. */
  readonly peakPrivateBytes: number | null;
  /** Largest proportional set size (smaps_rollup Pss) seen over the same span. */
  readonly peakPssBytes: number | null;
  /** Proxy CPU time during the fixed-rate run over its wall time: cores busy at that rate. */
  readonly coresAtRate: number | null;
  readonly failures: number;
}

export interface MeasureOptions {
  readonly connections: number;
  readonly warmupS: number;
  readonly durationS: number;
  readonly latencyRate: number;
  readonly headers?: Record<string, string>;
  readonly shape?: RequestShape;
}

/** Warm up, measure throughput (with the process's CPU time around it), then latency (and the CPU it took), then peak memory. */
export async function measure(url: string, pid: number | null, o: MeasureOptions): Promise<Sample> {
  const memory = pid === null ? null : watchMemoryPeaks(pid);
  try {
    await throughput(url, o.connections, o.warmupS, o.headers, o.shape);
    const cpu0 = pid === null ? 0 : cpuMicros(pid);
    const t = await throughput(url, o.connections, o.durationS, o.headers, o.shape);
    const cpu1 = pid === null ? 0 : cpuMicros(pid);
    const w0 = performance.now();
    const cpu2 = pid === null ? 0 : cpuMicros(pid);
    const l = await fixedRateLatency(url, o.latencyRate, o.durationS, o.headers, o.shape);
    const cpu3 = pid === null ? 0 : cpuMicros(pid);
    const wallUs = (performance.now() - w0) * 1000;
    const peaks = memory?.peaks();
    return {
      rps: t.rps,
      cpuUsPerReq: pid === null || t.requests === 0 ? null : (cpu1 - cpu0) / t.requests,
      p50Us: l.p50Us,
      p99Us: l.p99Us,
      peakRssBytes: pid === null ? null : peakRssBytes(pid),
      peakPrivateBytes: peaks?.privateBytes ?? null,
      peakPssBytes: peaks?.pssBytes ?? null,
      coresAtRate: pid === null ? null : (cpu3 - cpu2) / wallUs,
      failures: t.failures + l.failures,
    };
  } finally {
    memory?.stop();
  }
}
