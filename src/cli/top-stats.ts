/**
 * The numbers `breakwater top` shows, computed from two scrapes of the admin
 * API's `/metrics` taken an interval apart: rates are counter deltas over the
 * interval, p50/p99 come from the histogram buckets' deltas (interpolated
 * inside the bucket, as Prometheus' histogram_quantile does over a window).
 * `/metrics` already holds everything, so no new endpoint is needed and it
 * works through anything that forwards the admin port.
 */

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A scrape: samples by metric name (with `_bucket`, `_count`, … suffixes as written). */
export type Scrape = Map<string, Sample[]>;

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Prometheus text exposition format → samples (comments and timestamps ignored). */
export function parseMetrics(text: string): Scrape {
  const out: Scrape = new Map();
  for (const raw of text.split('\n')) {
    if (raw === '' || raw.startsWith('#')) continue;
    const m = LINE.exec(raw);
    if (m === null) continue;
    const labels: Record<string, string> = {};
    if (m[2] !== undefined) {
      for (const l of m[2].matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const v = m[3]!;
    const value = v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v);
    let list = out.get(m[1]!);
    if (list === undefined) out.set(m[1]!, (list = []));
    list.push({ name: m[1]!, labels, value });
  }
  return out;
}

/** Sums a metric's samples by the labels in `by` (joined with \u0000). */
function sumBy(s: Scrape, name: string, by: readonly string[], where?: (l: Readonly<Record<string, string>>) => boolean): Map<string, number> {
  const out = new Map<string, number>();
  for (const x of s.get(name) ?? []) {
    if (where !== undefined && !where(x.labels)) continue;
    const k = by.map((b) => x.labels[b] ?? '').join('\u0000');
    out.set(k, (out.get(k) ?? 0) + x.value);
  }
  return out;
}

/** A counter's increase between scrapes; a reset (the process restarted) counts from zero. */
function increase(now: number, before: number | undefined): number {
  if (before === undefined) return now;
  return now >= before ? now - before : now;
}

/**
 * The q-quantile of a histogram window given as cumulative `[le, count]`
 * pairs (any order): linear inside the bucket that holds the rank; in the
 * +Inf bucket, the highest finite bound. Null when the window is empty.
 */
export function quantile(q: number, buckets: ReadonlyArray<readonly [number, number]>): number | null {
  const b = [...buckets].sort((x, y) => x[0] - y[0]);
  if (b.length === 0) return null;
  const total = b[b.length - 1]![1];
  if (!(total > 0)) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of b) {
    if (count >= rank) {
      if (le === Infinity) return prevLe;
      if (count === prevCount) return le;
      return prevLe + (le - prevLe) * ((rank - prevCount) / (count - prevCount));
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

/** Per-key quantiles of a histogram's bucket deltas between two scrapes. */
function windowQuantiles(now: Scrape, before: Scrape | null, name: string, by: readonly string[], qs: readonly number[]): Map<string, (number | null)[]> {
  const cur = sumBy(now, `${name}_bucket`, [...by, 'le']);
  const old = before === null ? new Map<string, number>() : sumBy(before, `${name}_bucket`, [...by, 'le']);
  const perKey = new Map<string, [number, number][]>();
  for (const [k, v] of cur) {
    const cut = k.lastIndexOf('\u0000');
    const key = k.slice(0, cut);
    const le = k.slice(cut + 1);
    let list = perKey.get(key);
    if (list === undefined) perKey.set(key, (list = []));
    list.push([le === '+Inf' ? Infinity : Number(le), before === null ? v : increase(v, old.get(k))]);
  }
  const out = new Map<string, (number | null)[]>();
  for (const [k, list] of perKey) out.set(k, qs.map((q) => quantile(q, list)));
  return out;
}

export interface RouteRow {
  readonly route: string;
  readonly upstream: string;
  readonly rps: number;
  /** Share of answers below 500, null with no requests in the window. */
  readonly success: number | null;
  /** Seconds. */
  readonly p50: number | null;
  readonly p99: number | null;
  readonly retriesPerSec: number;
  readonly rejectedPerSec: number;
}

export interface UpstreamRow {
  readonly upstream: string;
  readonly attemptsPerSec: number;
  /** Share of attempts that did not fail (`success` or `4xx`: the upstream answered), null with none in the window. */
  readonly attemptSuccess: number | null;
  readonly p99: number | null;
  readonly circuit: string | null;
  readonly bulkheadActive: number | null;
  readonly bulkheadQueued: number | null;
  readonly retriesPerSec: number;
  /** Rejections per second by reason (rate_limited, bulkhead_full, circuit_open, …), only reasons seen in the window. */
  readonly rejected: ReadonlyArray<readonly [string, number]>;
}

export interface TopView {
  readonly routes: RouteRow[];
  readonly upstreams: UpstreamRow[];
  readonly seconds: number;
}

const P = 'breakwater_';
const SEP = '\u0000';

/**
 * The view over the window between `before` and `now` (`seconds` apart).
 * With no `before` (first scrape), the counts since start are shown as
 * if over `seconds`: callers show the first view only after a second scrape.
 */
export function computeView(now: Scrape, before: Scrape | null, seconds: number): TopView {
  const dt = seconds > 0 ? seconds : 1;
  const delta = (name: string, by: readonly string[], where?: (l: Readonly<Record<string, string>>) => boolean): Map<string, number> => {
    const cur = sumBy(now, name, by, where);
    const old = before === null ? null : sumBy(before, name, by, where);
    const out = new Map<string, number>();
    for (const [k, v] of cur) out.set(k, old === null ? v : increase(v, old.get(k)));
    return out;
  };
  const rk = ['route', 'upstream'];
  const reqs = delta(`${P}requests_total`, rk);
  const errs = delta(`${P}requests_total`, rk, (l) => (l['code'] ?? '').startsWith('5'));
  const lat = windowQuantiles(now, before, `${P}request_duration_seconds`, rk, [0.5, 0.99]);
  const retries = delta(`${P}retries_total`, rk);
  const rejected = delta(`${P}rejected_total`, rk);
  const routes: RouteRow[] = [];
  for (const [k, n] of reqs) {
    const [route, upstream] = k.split(SEP) as [string, string];
    const q = lat.get(k) ?? [null, null];
    routes.push({
      route: route === '' ? '(no route)' : route,
      upstream: upstream === '' ? '-' : upstream,
      rps: n / dt,
      success: n > 0 ? 1 - (errs.get(k) ?? 0) / n : null,
      p50: q[0]!,
      p99: q[1]!,
      retriesPerSec: (retries.get(k) ?? 0) / dt,
      rejectedPerSec: (rejected.get(k) ?? 0) / dt,
    });
  }
  routes.sort((a, b) => b.rps - a.rps || a.route.localeCompare(b.route) || a.upstream.localeCompare(b.upstream));

  const names = new Set<string>();
  for (const m of [`${P}upstream_attempts_total`, `${P}circuit_state`, `${P}bulkhead_active`]) for (const s of now.get(m) ?? []) if (s.labels['upstream']) names.add(s.labels['upstream']);
  const attempts = delta(`${P}upstream_attempts_total`, ['upstream']);
  const okAttempts = delta(`${P}upstream_attempts_total`, ['upstream'], (l) => l['result'] === 'success' || l['result'] === '4xx');
  const attemptP99 = windowQuantiles(now, before, `${P}upstream_attempt_duration_seconds`, ['upstream'], [0.99]);
  const upRetries = delta(`${P}retries_total`, ['upstream']);
  const upRejected = delta(`${P}rejected_total`, ['upstream', 'reason']);
  const gauge = (name: string, upstream: string): number | null => (now.get(name) ?? []).find((s) => s.labels['upstream'] === upstream)?.value ?? null;
  const upstreams: UpstreamRow[] = [];
  for (const u of names) {
    const n = attempts.get(u) ?? 0;
    const circuit = (now.get(`${P}circuit_state`) ?? []).find((s) => s.labels['upstream'] === u && s.value === 1)?.labels['state'] ?? null;
    const rej: [string, number][] = [];
    for (const [k, v] of upRejected) {
      const [up, reason] = k.split(SEP) as [string, string];
      if (up === u && v > 0) rej.push([reason, v / dt]);
    }
    rej.sort((a, b) => b[1] - a[1]);
    upstreams.push({
      upstream: u,
      attemptsPerSec: n / dt,
      attemptSuccess: n > 0 ? (okAttempts.get(u) ?? 0) / n : null,
      p99: attemptP99.get(u)?.[0] ?? null,
      circuit,
      bulkheadActive: gauge(`${P}bulkhead_active`, u),
      bulkheadQueued: gauge(`${P}bulkhead_queued`, u),
      retriesPerSec: (upRetries.get(u) ?? 0) / dt,
      rejected: rej,
    });
  }
  upstreams.sort((a, b) => b.attemptsPerSec - a.attemptsPerSec || a.upstream.localeCompare(b.upstream));
  return { routes, upstreams, seconds };
}
