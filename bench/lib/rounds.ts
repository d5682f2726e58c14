/**
 * Interleaved rounds: every round measures every subject once, each in a
 * fresh process, and each round starts one subject later than the previous
 * one. Slow drift on a shared machine (other jobs, thermal limits) then
 * spreads over all subjects instead of landing on whichever ran last.
 */
import { measure, type RequestShape, type Sample } from './load.ts';
import { median, progress, spread } from './report.ts';
import type { Settings } from './settings.ts';
import { SkipError, type Running, type Subject } from './subjects.ts';

export interface RoundSample extends Sample {
  /** From spawn to the first proxied 200, in milliseconds. */
  readonly startMs: number;
}

/** Per subject id, one entry per round (undefined where it was skipped). */
export type Results = Map<string, (RoundSample | undefined)[]>;

export interface RoundOptions {
  /** Request headers per subject (e.g. the Host a host-routed config expects). */
  readonly headers?: (subject: Subject) => Record<string, string> | undefined;
  /** Runs after a subject was measured, while it still runs. */
  readonly after?: (subject: Subject, running: Running, round: number) => Promise<void>;
  /** POST/PUT with a body instead of GET (every subject alike). */
  readonly shape?: RequestShape;
}

export async function runRounds(subjects: readonly Subject[], s: Settings, o: RoundOptions = {}): Promise<Results> {
  const results: Results = new Map(subjects.map((x) => [x.id, []]));
  const skipped = new Set<string>();
  for (let round = 0; round < s.rounds; round++) {
    const order = [...subjects.slice(round % subjects.length), ...subjects.slice(0, round % subjects.length)];
    for (const subject of order) {
      if (skipped.has(subject.id)) continue;
      progress(`round ${round + 1}/${s.rounds}: ${subject.label}`);
      const t0 = performance.now();
      let running: Running;
      try {
        running = await subject.start();
      } catch (err) {
        if (!(err instanceof SkipError)) throw err;
        progress(err.message);
        skipped.add(subject.id);
        continue;
      }
      const startMs = performance.now() - t0;
      try {
        const headers = o.headers?.(subject);
        const sample = await measure(running.url, running.pid, {
          connections: s.connections,
          warmupS: s.warmupS,
          durationS: s.durationS,
          latencyRate: s.latencyRate,
          ...(headers && { headers }),
          ...(o.shape && { shape: o.shape }),
        });
        if (sample.failures > 0) progress(`  warning: ${sample.failures} failed or non-2xx requests`);
        results.get(subject.id)![round] = { ...sample, startMs };
        await o.after?.(subject, running, round);
      } finally {
        await running.stop();
      }
    }
  }
  return results;
}

export interface Summary {
  readonly rounds: number;
  readonly rps: number;
  /** (max − min) / median of req/s over the rounds, in percent. */
  readonly rpsSpread: number;
  readonly cpuUsPerReq: number;
  readonly p50Us: number;
  readonly p99Us: number;
  /** Round by round minus `base`'s latency in the same round, then the median. */
  readonly addedP50Us: number;
  readonly addedP99Us: number;
  readonly peakRssBytes: number;
  readonly peakPrivateBytes: number;
  readonly peakPssBytes: number;
  readonly coresAtRate: number;
  readonly startMs: number;
}

/** Medians over the rounds; null when the subject never ran. */
export function summarize(results: Results, id: string, base = 'direct'): Summary | null {
  const own = (results.get(id) ?? []).map((x, round) => ({ x, round })).filter((e) => e.x !== undefined) as {
    x: RoundSample;
    round: number;
  }[];
  if (own.length === 0) return null;
  const baseRounds = results.get(base) ?? [];
  const pick = (f: (x: RoundSample) => number | null): number => median(own.map((e) => f(e.x) ?? NaN));
  const added = (f: (x: RoundSample) => number): number =>
    median(own.flatMap((e) => (baseRounds[e.round] === undefined ? [] : [f(e.x) - f(baseRounds[e.round]!)])));
  const rps = own.map((e) => e.x.rps);
  return {
    rounds: own.length,
    rps: median(rps),
    rpsSpread: spread(rps),
    cpuUsPerReq: pick((x) => x.cpuUsPerReq),
    p50Us: pick((x) => x.p50Us),
    p99Us: pick((x) => x.p99Us),
    addedP50Us: added((x) => x.p50Us),
    addedP99Us: added((x) => x.p99Us),
    peakRssBytes: pick((x) => x.peakRssBytes),
    peakPrivateBytes: pick((x) => x.peakPrivateBytes),
    peakPssBytes: pick((x) => x.peakPssBytes),
    coresAtRate: pick((x) => x.coresAtRate),
    startMs: pick((x) => x.startMs),
  };
}
