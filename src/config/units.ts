/**
 * The three unit-carrying value types of the config format (SPEC §2):
 * durations (`250ms`, `2s`, `1m`, `1h`, or an integer meaning milliseconds),
 * sizes (`64KiB`, `1MiB`, `10MB`, or an integer meaning bytes) and rates
 * (`100/s`, `6000/m`, `50/100ms`). Each parser is total: it returns a value or
 * a description of what was expected, never throws; each formatter writes the
 * shortest exact text its parser reads back, so `validate` output round-trips.
 */
import type { Bytes, Millis, Rate } from './types.ts';

/** `secret`: the input must not be echoed in the message (a URL with credentials in it). */
export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly expected: string; readonly secret?: boolean };

/** Node timers overflow above this (about 24.8 days); a longer duration would fire at once. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
export const DURATION_EXPECTED = 'a duration such as 250ms, 2s, 1m, 1h, or an integer number of milliseconds';

/**
 * A decimal literal times an integer factor, computed on integers so that
 * 0.1s is exactly 100ms. A result that is not whole comes back fractional;
 * one beyond exact integer arithmetic comes back as Infinity.
 */
function scaled(literal: string, factor: number): number {
  const dot = literal.indexOf('.');
  const digits = dot < 0 ? literal : literal.slice(0, dot) + literal.slice(dot + 1);
  const scale = dot < 0 ? 1 : 10 ** (literal.length - dot - 1);
  const n = Number(digits) * factor;
  if (!Number.isSafeInteger(n)) return Infinity;
  return n / scale;
}

/**
 * `fromEnv` is true when the value came from an environment variable: `${TIMEOUT_MS}`
 * always yields a string, so digits alone then mean milliseconds as an integer would.
 */
export function parseDuration(input: unknown, fromEnv = false): Parsed<Millis> {
  const bad = { ok: false, expected: DURATION_EXPECTED } as const;
  let ms: number;
  if (typeof input === 'number') {
    if (!Number.isInteger(input) || input < 0) return bad;
    ms = input;
  } else if (typeof input === 'string') {
    if (fromEnv && /^\d+$/.test(input)) {
      ms = Number(input);
    } else {
      const m = DURATION_RE.exec(input);
      if (m === null) return bad;
      ms = scaled(m[1]!, DURATION_UNITS[m[2]!]!);
      if (Number.isFinite(ms) && !Number.isInteger(ms)) return { ok: false, expected: 'a whole number of milliseconds' };
    }
  } else {
    return bad;
  }
  if (ms > MAX_DURATION_MS) return { ok: false, expected: `a duration of at most ${formatDuration(MAX_DURATION_MS)} (about 24.8 days)` };
  return { ok: true, value: ms };
}

/** Shortest exact text: 3600000 → "1h", 90000 → "90s", 1500 → "1.5s", 250 → "250ms". */
export function formatDuration(ms: Millis): string {
  if (ms === 0) return '0s';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1_000 === 0) return `${ms / 1_000}s`;
  if (ms > 1_000 && ms % 100 === 0) return `${ms / 1_000}s`;
  return `${ms}ms`;
}

// Bare K/M/G are left out on purpose: nginx reads `10m` as 10 MiB, Kubernetes as 10 000 000.
const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
  ki: 2 ** 10,
  mi: 2 ** 20,
  gi: 2 ** 30,
  ti: 2 ** 40,
};
const SIZE_RE = /^(\d+(?:\.\d+)?)\s?([a-z]+)$/i;
export const SIZE_EXPECTED = 'a size such as 512B, 64KiB, 1MiB, 10MB, or an integer number of bytes';

export function parseSize(input: unknown, fromEnv = false): Parsed<Bytes> {
  const bad = { ok: false, expected: SIZE_EXPECTED } as const;
  let bytes: number;
  if (typeof input === 'number') {
    if (!Number.isInteger(input) || input < 0) return bad;
    bytes = input;
  } else if (typeof input === 'string') {
    if (fromEnv && /^\d+$/.test(input)) {
      bytes = Number(input);
    } else {
      const m = SIZE_RE.exec(input);
      const factor = m === null ? undefined : SIZE_UNITS[m[2]!.toLowerCase()];
      if (m === null || factor === undefined) return bad;
      bytes = scaled(m[1]!, factor);
      if (Number.isFinite(bytes) && !Number.isInteger(bytes)) return { ok: false, expected: 'a whole number of bytes' };
    }
  } else {
    return bad;
  }
  if (!Number.isSafeInteger(bytes)) return { ok: false, expected: 'a size below 8PiB' };
  return { ok: true, value: bytes };
}

const BINARY: readonly (readonly [number, string])[] = [
  [2 ** 40, 'TiB'],
  [2 ** 30, 'GiB'],
  [2 ** 20, 'MiB'],
  [2 ** 10, 'KiB'],
];
const DECIMAL: readonly (readonly [number, string])[] = [
  [1e12, 'TB'],
  [1e9, 'GB'],
  [1e6, 'MB'],
  [1e3, 'KB'],
];

/** Exact binary unit first (65536 → "64KiB"), then decimal (10000 → "10KB"), else bytes ("100B"). */
export function formatSize(bytes: Bytes): string {
  if (bytes === 0) return '0B';
  for (const [f, u] of BINARY) if (bytes % f === 0) return `${bytes / f}${u}`;
  for (const [f, u] of DECIMAL) if (bytes % f === 0) return `${bytes / f}${u}`;
  return `${bytes}B`;
}

const RATE_RE = /^(\d+(?:\.\d+)?)\/(\d+(?:\.\d+)?)?(ms|s|m|h)$/;
export const RATE_EXPECTED = 'a rate such as 100/s, 6000/m or 50/100ms';
/** A bucket refilling faster than this is a typo, and its arithmetic would lose precision. */
const MAX_TOKENS = 1e9;

export function parseRate(input: unknown): Parsed<Rate> {
  const bad = { ok: false, expected: RATE_EXPECTED } as const;
  if (typeof input !== 'string') return bad;
  const m = RATE_RE.exec(input);
  if (m === null) return bad;
  const tokens = Number(m[1]);
  const periodMs = scaled(m[2] ?? '1', DURATION_UNITS[m[3]!]!);
  if (!(tokens > 0) || tokens > MAX_TOKENS) return { ok: false, expected: `a rate with a token count above 0 and at most ${MAX_TOKENS}` };
  if (!Number.isInteger(periodMs) || periodMs <= 0 || periodMs > MAX_DURATION_MS) {
    return { ok: false, expected: 'a rate whose period is a whole number of milliseconds above 0' };
  }
  return { ok: true, value: { tokens, periodMs, perMs: tokens / periodMs, source: input } };
}

/** "100/s", "6000/m", "50/100ms": the period is a bare unit when it is exactly one of it. */
export function formatRate(rate: Pick<Rate, 'tokens' | 'periodMs'>): string {
  const p = rate.periodMs;
  const period = p === 1 ? 'ms' : p === 1_000 ? 's' : p === 60_000 ? 'm' : p === 3_600_000 ? 'h' : formatDuration(p);
  return `${rate.tokens}/${period}`;
}
