import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_VARIANTS, ResponseCache, ageOf, type StoredResponse } from '../../../../src/policies/cache/store.ts';
import { varyKey, varyNames } from '../../../../src/policies/cache/rules.ts';

const MiB = 1024 * 1024;

function entry(body: Buffer, over: Partial<StoredResponse> = {}): StoredResponse {
  return {
    status: 200,
    headers: {},
    body,
    endpoint: '127.0.0.1:1',
    storedAt: 1000,
    initialAge: 0,
    lifetime: 0,
    staleWindow: 60_000,
    noCache: false,
    vary: null,
    varyKey: '',
    size: body.length + 256,
    ...over,
  };
}

describe('ResponseCache', () => {
  it('holds 50 × 1 MiB bodies within 4 MiB, evicting the least recently used and counting it', () => {
    const c = new ResponseCache({ maxEntries: 1000, maxBytes: 4 * MiB, maxEntrySize: 2 * MiB });
    for (let i = 0; i < 50; i++) {
      c.put(`/${i}`, entry(Buffer.alloc(MiB)));
      assert.ok(c.bytes <= 4 * MiB, `after ${i + 1}: ${c.bytes}`);
    }
    assert.equal(c.entries, 3);
    assert.equal(c.takeEvicted(), 47);
    assert.equal(c.takeEvicted(), 0, 'taken once');
    assert.equal(c.lookup('/0', {}), null);
    assert.notEqual(c.lookup('/49', {}), null);
  });

  it('evicts by recency of use, not of storing', () => {
    const c = new ResponseCache({ maxEntries: 2, maxBytes: MiB, maxEntrySize: MiB });
    c.put('/a', entry(Buffer.from('a')));
    c.put('/b', entry(Buffer.from('b')));
    assert.notEqual(c.lookup('/a', {}), null);
    c.put('/c', entry(Buffer.from('c')));
    assert.notEqual(c.lookup('/a', {}), null);
    assert.equal(c.lookup('/b', {}), null);
  });

  it('does not store an entry over maxEntrySize', () => {
    const c = new ResponseCache({ maxEntries: 10, maxBytes: 4 * MiB, maxEntrySize: MiB });
    c.put('/big', entry(Buffer.alloc(MiB)));
    assert.equal(c.entries, 0);
    assert.equal(c.takeEvicted(), 0);
  });

  it('keeps variants per URL, replacing the same variant and capping their number', () => {
    const c = new ResponseCache({ maxEntries: 10, maxBytes: 4 * MiB, maxEntrySize: MiB });
    const vary = varyNames('accept-language');
    const put = (lang: string, body: string) => c.put('/v', entry(Buffer.from(body), { vary, varyKey: varyKey(vary, { 'accept-language': lang }) }));
    put('en', 'en1');
    put('fr', 'fr');
    put('en', 'en2');
    assert.equal(c.lookup('/v', { 'accept-language': 'en' })?.body.toString(), 'en2');
    assert.equal(c.lookup('/v', { 'accept-language': 'fr' })?.body.toString(), 'fr');
    assert.equal(c.lookup('/v', { 'accept-language': 'de' }), null);
    for (let i = 0; i < MAX_VARIANTS + 3; i++) put(`x${i}`, `x${i}`);
    assert.equal(c.lookup('/v', { 'accept-language': 'en' }), null, 'the oldest variants went');
    assert.notEqual(c.lookup('/v', { 'accept-language': `x${MAX_VARIANTS + 2}` }), null);
    assert.equal(c.entries, 1);
  });

  it('removes one variant, or the URL with its last, giving back its bytes', () => {
    const c = new ResponseCache({ maxEntries: 10, maxBytes: MiB, maxEntrySize: MiB });
    const vary = varyNames('accept');
    const a = entry(Buffer.alloc(1000), { vary, varyKey: varyKey(vary, { accept: 'a' }) });
    const b = entry(Buffer.alloc(1000), { vary, varyKey: varyKey(vary, { accept: 'b' }) });
    c.put('/v', a);
    c.put('/v', b);
    const both = c.bytes;
    c.remove('/v', a);
    assert.equal(c.bytes, both - a.size);
    assert.equal(c.lookup('/v', { accept: 'a' }), null);
    assert.equal(c.lookup('/v', { accept: 'b' }), b);
    c.remove('/v', a);
    assert.equal(c.bytes, both - a.size, 'removing twice is a no-op');
    c.remove('/v', b);
    assert.equal(c.entries, 0);
    assert.equal(c.bytes, 0);
  });

  it('starts a URL over when its Vary names change', () => {
    const c = new ResponseCache({ maxEntries: 10, maxBytes: MiB, maxEntrySize: MiB });
    c.put('/v', entry(Buffer.from('plain')));
    const vary = varyNames('accept');
    c.put('/v', entry(Buffer.from('json'), { vary, varyKey: varyKey(vary, { accept: 'application/json' }) }));
    assert.equal(c.lookup('/v', {}), null);
    assert.equal(c.lookup('/v', { accept: 'application/json' })?.body.toString(), 'json');
  });

  it('keeps its entries across new bounds, dropping the least recently used that no longer fit', () => {
    const c = new ResponseCache({ maxEntries: 10, maxBytes: 8 * MiB, maxEntrySize: 2 * MiB });
    for (let i = 0; i < 5; i++) c.put(`/${i}`, entry(Buffer.alloc(MiB)));
    c.lookup('/0', {});
    c.update({ maxEntries: 10, maxBytes: 3 * MiB, maxEntrySize: 2 * MiB });
    assert.equal(c.entries, 2);
    assert.ok(c.bytes <= 3 * MiB);
    assert.notEqual(c.lookup('/0', {}), null, 'recently used, kept');
    assert.notEqual(c.lookup('/4', {}), null);
    assert.equal(c.lookup('/1', {}), null);
    assert.equal(c.takeEvicted(), 0, 'a reload’s resize is not counted as evictions');
  });

  it('ages an entry from its initial age and the time since storing', () => {
    const e = entry(Buffer.from('x'), { storedAt: 1000, initialAge: 3000 });
    assert.equal(ageOf(e, 6000), 8000);
    assert.equal(ageOf(e, 0), 3000, 'a clock stepping back does not make it younger');
  });
});
