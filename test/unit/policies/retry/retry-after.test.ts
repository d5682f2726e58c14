import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseRetryAfter, RETRY_AFTER_CAP_MS } from '../../../../src/policies/retry/retry-after.ts';

// Sun, 06 Nov 1994 08:49:37 GMT — the RFC's own example date.
const NOW = Date.UTC(1994, 10, 6, 8, 49, 37);

describe('parseRetryAfter (SPEC §4.2 respectRetryAfter)', () => {
  it('reads delta-seconds as that many seconds', () => {
    assert.equal(parseRetryAfter('0', NOW), 0);
    assert.equal(parseRetryAfter('3', NOW), 3000);
    assert.equal(parseRetryAfter(' 120 ', NOW), 120_000);
  });

  it('reads an IMF-fixdate as the time left until it', () => {
    assert.equal(parseRetryAfter('Sun, 06 Nov 1994 08:49:47 GMT', NOW), 10_000);
    assert.equal(parseRetryAfter('Sun, 06 Nov 1994 08:50:37 GMT', NOW + 500), 59_500);
  });

  it('reads the obsolete RFC 850 and asctime date forms too', () => {
    assert.equal(parseRetryAfter('Sunday, 06-Nov-94 08:49:57 GMT', NOW), 20_000);
    assert.equal(parseRetryAfter('Sun Nov  6 08:50:07 1994', NOW), 30_000);
  });

  it('reads a two-digit RFC 850 year more than 50 years ahead as last century', () => {
    const now2030 = Date.UTC(2030, 0, 1);
    // "99" would be 2099 (69 years ahead), so it means 1999: in the past.
    assert.equal(parseRetryAfter('Friday, 01-Jan-99 00:00:00 GMT', now2030), 0);
    assert.equal(parseRetryAfter('Tuesday, 01-Jan-30 00:00:05 GMT', now2030), 5000);
  });

  it('waits nothing for a date in the past', () => {
    assert.equal(parseRetryAfter('Sun, 06 Nov 1994 08:00:00 GMT', NOW), 0);
    assert.equal(parseRetryAfter('Thu, 01 Jan 1970 00:00:00 GMT', Date.now()), 0);
  });

  it('caps both forms at 300 seconds', () => {
    assert.equal(RETRY_AFTER_CAP_MS, 300_000);
    assert.equal(parseRetryAfter('301', NOW), RETRY_AFTER_CAP_MS);
    assert.equal(parseRetryAfter('99999999999999999999999', NOW), RETRY_AFTER_CAP_MS);
    assert.equal(parseRetryAfter('Mon, 07 Nov 1994 08:49:37 GMT', NOW), RETRY_AFTER_CAP_MS);
  });

  it('returns null when the header is absent, empty or not a valid value', () => {
    for (const v of [
      undefined,
      '',
      '   ',
      'soon',
      '-5',
      '1.5',
      '5s',
      '0x10',
      'Sun, 06 Nov 1994 08:49:37', // no GMT
      'Sun, 06 Nov 1994 25:00:00 GMT', // no hour 25
      'Sun, 31 Feb 1994 08:00:00 GMT', // no 31 February
      'Sun, 06 Foo 1994 08:49:37 GMT',
      'tomorrow at noon',
    ]) {
      assert.equal(parseRetryAfter(v, NOW), null, JSON.stringify(v));
    }
    assert.equal(parseRetryAfter([], NOW), null);
  });

  it('takes the first value of a repeated header', () => {
    assert.equal(parseRetryAfter(['2', '7'], NOW), 2000);
    assert.equal(parseRetryAfter(['garbage', '7'], NOW), null);
  });

  it('is never negative nor above the cap, and never throws, whatever the input', () => {
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 0, max: 4_102_444_800_000 }), (s, now) => {
        const v = parseRetryAfter(s, now);
        return v === null || (v >= 0 && v <= RETRY_AFTER_CAP_MS);
      }),
    );
    fc.assert(
      fc.property(fc.nat({ max: 1e6 }), (secs) => parseRetryAfter(String(secs), NOW) === Math.min(secs * 1000, RETRY_AFTER_CAP_MS)),
    );
  });

  it('round-trips any date written by toUTCString', () => {
    fc.assert(
      fc.property(fc.integer({ min: -400_000, max: 400_000 }), (offsetSec) => {
        const at = NOW + offsetSec * 1000;
        const v = parseRetryAfter(new Date(at).toUTCString(), NOW);
        return v === Math.min(Math.max(0, offsetSec * 1000), RETRY_AFTER_CAP_MS);
      }),
    );
  });
});
