import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeConfig } from '../../../src/config/describe.ts';
import { config, errorAt, yaml } from './helpers.ts';

const withCache = (block: string) => yaml`
  version: 1
  listeners:
    - name: l
      address: 127.0.0.1:0
      routes:
        - { name: r, upstream: u, cache: ${block} }
        - { name: plain, upstream: u }
  upstreams:
    u: { url: "http://127.0.0.1:8080" }
`;

describe('config: a route’s cache block (SPEC §11.2)', () => {
  it('is off unless present, and {} takes the built-ins', () => {
    const c = config(withCache('{}'));
    const [r, plain] = c.listeners[0]!.routes;
    assert.equal(plain!.cache, null);
    assert.deepEqual(r!.cache, { maxEntries: 1000, maxBytes: 16 * 1024 * 1024, maxEntrySize: 1024 * 1024, staleIfError: 300_000, serveFresh: false });
  });

  it('reads sizes and durations with units, and caps maxEntrySize at maxBytes', () => {
    const c = config(withCache('{ maxEntries: 10, maxBytes: 64KiB, maxEntrySize: 1MiB, staleIfError: 90s, serveFresh: true }'));
    assert.deepEqual(c.listeners[0]!.routes[0]!.cache, { maxEntries: 10, maxBytes: 65536, maxEntrySize: 65536, staleIfError: 90_000, serveFresh: true });
  });

  it('names the file, line and key of a bad value', () => {
    const e = errorAt(withCache('{ staleIfError: soon }'), 'listeners[0].routes[0].cache.staleIfError');
    assert.match(String(e), /test\.yaml:\d+:\d+/);
    errorAt(withCache('{ maxEntries: 0 }'), 'listeners[0].routes[0].cache.maxEntries');
    errorAt(withCache('{ maxBytes: lots }'), 'listeners[0].routes[0].cache.maxBytes');
    errorAt(withCache('{ ttl: 5s }'), 'listeners[0].routes[0].cache.ttl');
  });

  it('is refused on an upstream, with where it goes', () => {
    const e = errorAt(
      yaml`
        version: 1
        listeners: [{ name: l, address: 127.0.0.1:0, upstream: u }]
        upstreams:
          u: { url: "http://127.0.0.1:8080", cache: {} }
      `,
      'upstreams.u.cache',
    );
    assert.match(e.message, /move it to the routes/);
  });

  it('is described by validate with its effective values, only where it is on', () => {
    const out = describeConfig(config(withCache('{ maxBytes: 4MiB, staleIfError: 2m }')));
    assert.match(out, /cache {6}GET\/HEAD, up to 1000 URLs and 4MiB \(1MiB each\); served up to 2m stale .* on circuit-open, connect-failure, timeout, retries-exhausted, bulkhead-full; before any fallback/);
    assert.equal(out.match(/ cache /g)?.length, 1, 'the route without one shows no cache line');
  });
});
