/**
 * Reading Prometheus text exposition in tests.
 */
import { request } from './http.ts';

/** The value of the first sample of `name` whose labels include `labels` (others ignored), or undefined. */
export function sampleOf(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const lm of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) have.set(lm[1]!, lm[2]!);
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[3]);
  }
  return undefined;
}

/** The value of the series of `name` with exactly `labels` (no other label), or 0 when absent. */
export function seriesValue(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const body = line.slice(name.length + 1, line.lastIndexOf('}'));
    const got = Object.fromEntries([...body.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v) && Object.keys(got).length === Object.keys(labels).length) {
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return 0;
}

/** Scrapes a proxy's /metrics: the value of the sample written exactly as `series` (`name{labels}`), or 0 when absent. */
export async function scrapedValue(adminUrl: string, series: string): Promise<number> {
  const text = (await request(`${adminUrl}/metrics`)).body;
  const found = text.split('\n').find((l) => l.startsWith(series + ' '));
  return found === undefined ? 0 : Number(found.slice(series.length + 1));
}
