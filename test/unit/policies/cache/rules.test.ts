import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, it } from 'node:test';
import {
  STAR,
  freshnessLifetime,
  initialAge,
  parseCacheControl,
  requestWantsUpstream,
  staleWindow,
  storable,
  varyKey,
  varyNames,
} from '../../../../src/policies/cache/rules.ts';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const date = (offsetMs: number): string => new Date(NOW + offsetMs).toUTCString();

describe('cache rules: what may be stored (RFC 9111 §3, shared cache)', () => {
  const cases: [desc: string, req: IncomingHttpHeaders, status: number, res: IncomingHttpHeaders, stored: boolean][] = [
    ['a plain 200 (heuristically cacheable)', {}, 200, {}, true],
    ['a 404 (heuristically cacheable)', {}, 404, {}, true],
    ['a 301 (heuristically cacheable)', {}, 301, {}, true],
    ['a 302 without explicit freshness', {}, 302, {}, false],
    ['a 302 with max-age', {}, 302, { 'cache-control': 'max-age=60' }, true],
    ['a 201 with Expires', {}, 201, { expires: date(60_000) }, true],
    ['a 307 marked public', {}, 307, { 'cache-control': 'public' }, true],
    ['a 206 (ranges are not assembled)', {}, 206, { 'cache-control': 'max-age=60' }, false],
    ['a 304 (the client’s own validators)', {}, 304, { 'cache-control': 'max-age=60' }, false],
    ['a 500, even with max-age', {}, 500, { 'cache-control': 'max-age=60' }, false],
    ['a 501 (heuristic, but a failure)', {}, 501, {}, false],
    ['no-store', {}, 200, { 'cache-control': 'no-store' }, false],
    ['No-Store in any case', {}, 200, { 'cache-control': 'max-age=5, No-Store' }, false],
    ['private', {}, 200, { 'cache-control': 'private' }, false],
    ['qualified private', {}, 200, { 'cache-control': 'private="x-user", max-age=60' }, false],
    ['set-cookie', {}, 200, { 'set-cookie': ['a=1'] }, false],
    ['Vary: *', {}, 200, { vary: 'accept, *' }, false],
    ['Vary: accept', {}, 200, { vary: 'accept' }, true],
    ['a request with no-store', { 'cache-control': 'no-store' }, 200, {}, false],
    ['a request with authorization', { authorization: 'Bearer x' }, 200, { 'cache-control': 'max-age=60' }, false],
    ['a request with authorization, answer public', { authorization: 'Bearer x' }, 200, { 'cache-control': 'public' }, true],
    ['a request with authorization, answer s-maxage', { authorization: 'Bearer x' }, 200, { 'cache-control': 's-maxage=5' }, true],
    ['a request with authorization, answer must-revalidate', { authorization: 'Bearer x' }, 200, { 'cache-control': 'must-revalidate' }, true],
    ['a range request', { range: 'bytes=0-1' }, 200, {}, false],
    ['no-cache (stored, never served fresh)', {}, 200, { 'cache-control': 'no-cache' }, true],
  ];
  for (const [desc, req, status, res, stored] of cases) {
    it(`${stored ? 'stores' : 'does not store'} ${desc}`, () => {
      assert.equal(storable(req, status, res) !== null, stored);
    });
  }
});

describe('cache rules: freshness, stale window, age', () => {
  it('takes s-maxage over max-age over Expires', () => {
    assert.equal(freshnessLifetime(parseCacheControl('max-age=10, s-maxage=20'), 200, {}, NOW), 20_000);
    assert.equal(freshnessLifetime(parseCacheControl('max-age=10'), 200, { expires: date(60_000) }, NOW), 10_000);
    assert.equal(freshnessLifetime(parseCacheControl(undefined), 200, { expires: date(60_000), date: date(0) }, NOW), 60_000);
  });

  it('reads an invalid Expires or max-age as already stale', () => {
    assert.equal(freshnessLifetime(parseCacheControl(undefined), 200, { expires: '0' }, NOW), 0);
    assert.equal(freshnessLifetime(parseCacheControl('max-age=soon'), 200, {}, NOW), 0);
  });

  it('uses 10% of Last-Modified’s age as a heuristic, at most a day, only for heuristic statuses', () => {
    const res = { date: date(0), 'last-modified': date(-100_000) };
    assert.equal(freshnessLifetime(parseCacheControl(undefined), 200, res, NOW), 10_000);
    assert.equal(freshnessLifetime(parseCacheControl(undefined), 200, { date: date(0), 'last-modified': date(-100 * 86_400_000) }, NOW), 86_400_000);
    assert.equal(freshnessLifetime(parseCacheControl('public'), 302, res, NOW), 0);
    assert.equal(freshnessLifetime(parseCacheControl(undefined), 200, {}, NOW), 0);
  });

  it('serves stale for the response’s own stale-if-error first, else not when the origin forbids it, else the route’s window', () => {
    assert.equal(staleWindow(parseCacheControl('max-age=0, stale-if-error=30'), 5000), 30_000);
    assert.equal(staleWindow(parseCacheControl('must-revalidate, stale-if-error=30'), 5000), 30_000);
    assert.equal(staleWindow(parseCacheControl('max-age=60'), 5000), 5000);
    for (const cc of ['must-revalidate', 'proxy-revalidate', 'no-cache', 's-maxage=60']) assert.equal(staleWindow(parseCacheControl(cc), 5000), 0, cc);
  });

  it('ages a response by the larger of its Age and its Date’s distance, in whole seconds', () => {
    assert.equal(initialAge({ age: '7' }, NOW), 7000);
    assert.equal(initialAge({ date: date(-3_000) }, NOW + 500), 3000, 'rounded down');
    assert.equal(initialAge({ date: date(0) }, NOW + 900), 0, 'less than a second after its Date is 0');
    assert.equal(initialAge({ age: '2', date: date(-10_000) }, NOW), 10_000);
    assert.equal(initialAge({ date: date(5000) }, NOW), 0, 'a Date in the future is no negative age');
    assert.equal(initialAge({ age: 'x' }, NOW), 0);
  });

  it('lets the client ask for the origin with no-cache, max-age=0 or Pragma: no-cache', () => {
    assert.equal(requestWantsUpstream({}), false);
    assert.equal(requestWantsUpstream({ 'cache-control': 'no-cache' }), true);
    assert.equal(requestWantsUpstream({ 'cache-control': 'max-age=0' }), true);
    assert.equal(requestWantsUpstream({ 'cache-control': 'max-age=10' }), false);
    assert.equal(requestWantsUpstream({ pragma: 'no-cache' }), true);
  });
});

describe('cache rules: Vary', () => {
  it('lists names lower-cased and sorted, * alone as STAR', () => {
    assert.deepEqual(varyNames('Accept-Language, accept'), ['accept', 'accept-language']);
    assert.equal(varyNames('accept, *'), STAR);
    assert.equal(varyNames(undefined), null);
    assert.equal(varyNames(' , '), null);
  });

  it('keys by the values of the named headers; absent differs from empty', () => {
    const names = varyNames('accept-language')!;
    assert.equal(varyKey(names, { 'accept-language': 'en' }), varyKey(names, { 'accept-language': ' en ' }));
    assert.notEqual(varyKey(names, { 'accept-language': 'en' }), varyKey(names, { 'accept-language': 'fr' }));
    assert.notEqual(varyKey(names, {}), varyKey(names, { 'accept-language': '' }));
    assert.equal(varyKey(null, { 'accept-language': 'en' }), '');
    assert.equal(varyKey(names, { 'accept-encoding': 'gzip' }), varyKey(names, {}), 'headers not named do not matter');
    // A Vary naming an Object.prototype member reads the request's own header only (it once threw).
    const proto = varyNames('constructor, __proto__, toString');
    assert.equal(varyKey(proto, {}), varyKey(proto, {}));
    assert.notEqual(varyKey(proto, { constructor: 'x' } as IncomingHttpHeaders), varyKey(proto, {}));
  });
});
