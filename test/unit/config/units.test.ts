import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  MAX_DURATION_MS,
  formatDuration,
  formatRate,
  formatSize,
  parseDuration,
  parseRate,
  parseSize,
} from '../../../src/config/units.ts';

const value = <T>(r: { ok: true; value: T } | { ok: false; expected: string }): T => {
  if (!r.ok) assert.fail(`expected a value, got: ${r.expected}`);
  return r.value;
};

/** Strings that are not durations, sizes or rates whatever their digits. */
const junk = fc.oneof(
  fc.string(),
  fc.constantFrom('', ' ', 's', 'ms', '1 s', '1sec', '-1s', '+1s', '1e3', '1.s', '.5s', '1s2', 'NaN', 'Infinity', '0x10', '10/', '/s', '10//s', '1/0s', '1/-1s'),
);

describe('durations', () => {
  it('read every unit of the format, and integers as milliseconds', () => {
    assert.equal(value(parseDuration('250ms')), 250);
    assert.equal(value(parseDuration('2s')), 2_000);
    assert.equal(value(parseDuration('1m')), 60_000);
    assert.equal(value(parseDuration('1h')), 3_600_000);
    assert.equal(value(parseDuration(1500)), 1500);
    assert.equal(value(parseDuration('0s')), 0);
    assert.equal(value(parseDuration(0)), 0);
  });

  it('read decimals exactly, and refuse a fraction of a millisecond', () => {
    assert.equal(value(parseDuration('0.1s')), 100);
    assert.equal(value(parseDuration('1.5s')), 1500);
    assert.equal(value(parseDuration('0.25m')), 15_000);
    assert.equal(parseDuration('1.5ms').ok, false);
    assert.equal(parseDuration('0.0001s').ok, false);
  });

  it('refuse negatives, non-integers, strings without a unit, and anything longer than a timer can wait', () => {
    for (const bad of [-1, 1.5, '100', '10 s', '10S', '1d', true, null, {}]) assert.equal(parseDuration(bad).ok, false, String(bad));
    assert.equal(parseDuration(MAX_DURATION_MS).ok, true);
    assert.equal(parseDuration(MAX_DURATION_MS + 1).ok, false);
    assert.equal(parseDuration('25d').ok, false);
    assert.equal(parseDuration('999999999999999999999h').ok, false);
  });

  it('take digits alone as milliseconds only when they came from an environment variable', () => {
    assert.equal(parseDuration('750').ok, false);
    assert.equal(value(parseDuration('750', true)), 750);
  });

  it('format to the shortest text that reads back to the same value (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_DURATION_MS }), (ms) => {
        assert.equal(value(parseDuration(formatDuration(ms))), ms);
      }),
    );
    assert.equal(formatDuration(3_600_000), '1h');
    assert.equal(formatDuration(90_000), '90s');
    assert.equal(formatDuration(1500), '1.5s');
    assert.equal(formatDuration(250), '250ms');
  });

  it('read n<unit> as n times the unit (property)', () => {
    const units = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
    fc.assert(
      fc.property(fc.constantFrom(...(Object.keys(units) as (keyof typeof units)[])), fc.nat({ max: 500 }), (u, n) => {
        assert.equal(value(parseDuration(`${n}${u}`)), n * units[u]);
      }),
    );
  });

  it('refuse garbage without throwing (property)', () => {
    fc.assert(
      fc.property(junk, (s) => {
        const r = parseDuration(s);
        if (r.ok) assert.match(s, /^\d+(\.\d+)?(ms|s|m|h)$/);
        else assert.ok(r.expected.length > 0);
      }),
    );
  });
});

describe('sizes', () => {
  it('read binary and decimal units, and integers as bytes', () => {
    assert.equal(value(parseSize('64KiB')), 65_536);
    assert.equal(value(parseSize('1MiB')), 1_048_576);
    assert.equal(value(parseSize('2GiB')), 2 * 2 ** 30);
    assert.equal(value(parseSize('10MB')), 10_000_000);
    assert.equal(value(parseSize('1KB')), 1000);
    assert.equal(value(parseSize('512B')), 512);
    assert.equal(value(parseSize('16Ki')), 16_384);
    assert.equal(value(parseSize('1.5KiB')), 1536);
    assert.equal(value(parseSize('64kib')), 65_536);
    assert.equal(value(parseSize(4096)), 4096);
  });

  it('refuse the ambiguous bare K/M/G, fractions of a byte, negatives and unitless strings', () => {
    for (const bad of ['10M', '10k', '1.5B', '0.1KB1', -1, 1.5, '1024', 'MiB', '']) assert.equal(parseSize(bad).ok, false, String(bad));
    assert.equal(value(parseSize('1024', true)), 1024);
  });

  it('format to text that reads back to the same value (property)', () => {
    fc.assert(
      fc.property(fc.nat({ max: Number.MAX_SAFE_INTEGER }), (n) => {
        assert.equal(value(parseSize(formatSize(n))), n);
      }),
    );
    assert.equal(formatSize(65_536), '64KiB');
    assert.equal(formatSize(10_000_000), '10MB');
    assert.equal(formatSize(100), '100B');
  });

  it('refuse garbage without throwing (property)', () => {
    fc.assert(
      fc.property(junk, (s) => {
        const r = parseSize(s);
        if (r.ok) assert.ok(Number.isSafeInteger(r.value) && r.value >= 0);
      }),
    );
  });
});

describe('rates', () => {
  it('read tokens per unit or per duration', () => {
    const r = value(parseRate('100/s'));
    assert.deepEqual(r, { tokens: 100, periodMs: 1000, perMs: 0.1, source: '100/s' });
    assert.equal(value(parseRate('6000/m')).periodMs, 60_000);
    assert.equal(value(parseRate('6000/m')).perMs, 0.1);
    const b = value(parseRate('50/100ms'));
    assert.equal(b.tokens, 50);
    assert.equal(b.periodMs, 100);
    assert.equal(b.perMs, 0.5);
    assert.equal(value(parseRate('1/h')).periodMs, 3_600_000);
    assert.equal(value(parseRate('0.5/s')).tokens, 0.5);
  });

  it('refuse zero tokens, an empty period, integers and other shapes', () => {
    for (const bad of ['0/s', '10/0s', '10/0.5ms', '100', 100, '100 /s', '100/ s', '100/sec', '/s', 'x/s']) assert.equal(parseRate(bad).ok, false, String(bad));
  });

  it('format to text that reads back to the same tokens and period (property)', () => {
    const tokens = fc.oneof(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 1, max: 99_999 }).map((n) => n / 1000));
    const period = fc.oneof(fc.constantFrom(1, 1000, 60_000, 3_600_000), fc.integer({ min: 1, max: 86_400_000 }));
    fc.assert(
      fc.property(tokens, period, (t, p) => {
        const r = value(parseRate(formatRate({ tokens: t, periodMs: p })));
        assert.equal(r.tokens, t);
        assert.equal(r.periodMs, p);
        assert.equal(r.perMs, t / p);
      }),
    );
    assert.equal(formatRate({ tokens: 100, periodMs: 1000 }), '100/s');
    assert.equal(formatRate({ tokens: 50, periodMs: 100 }), '50/100ms');
  });

  it('refuse garbage without throwing (property)', () => {
    fc.assert(
      fc.property(junk, (s) => {
        const r = parseRate(s);
        if (r.ok) assert.ok(r.value.perMs > 0 && Number.isFinite(r.value.perMs));
      }),
    );
  });
});
