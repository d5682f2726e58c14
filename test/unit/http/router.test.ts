/**
 * The compiled router must answer exactly what "first route in file order
 * whose match holds" answers, for any mix of exact-host, wildcard-host and
 * host-less routes; the per-host index is only a shortcut to that answer.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Router, type Routable } from '../../../src/http/router.ts';
import type { HostMatch, RouteConfig } from '../../../src/config/types.ts';

const HOSTS = ['a.svc', 'b.svc', 'c.internal', 'd.internal', 'other.example'];

function route(i: number, host: HostMatch | null, pathPrefix: string | null): Routable<number> {
  const config = { name: `r${i}`, match: { host, pathPrefix, methods: null, headers: null } } as unknown as RouteConfig;
  return { config, value: i };
}

/** The definition: scan every route in order. */
function naive(routes: readonly Routable<number>[], host: string, path: string): number | null {
  for (const r of routes) {
    const h = r.config.match.host;
    if (h?.kind === 'exact' && h.host !== host) continue;
    if (h?.kind === 'suffix' && !(host.length > h.suffix.length && host.endsWith(h.suffix))) continue;
    const p = r.config.match.pathPrefix;
    if (p !== null && !path.startsWith(p)) continue;
    return r.value;
  }
  return null;
}

const hostMatch = fc.oneof(
  fc.constant(null),
  fc.constantFrom(...HOSTS.slice(0, 4)).map((host): HostMatch => ({ kind: 'exact', host })),
  fc.constant<HostMatch>({ kind: 'suffix', suffix: '.internal' }),
);
const prefix = fc.constantFrom(null, '/', '/api/', '/api/v2/', '/static/');

describe('Router', () => {
  it('answers like a first-match scan of the routes in file order, for any mix of host kinds', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(hostMatch, prefix), { maxLength: 12 }), fc.constantFrom(...HOSTS), fc.constantFrom('/', '/api/v2/x', '/static/a', '/other'), (specs, host, path) => {
        const routes = specs.map(([h, p], i) => route(i, h, p));
        const got = new Router(routes).match(host, path, 'GET', { headers: {} });
        assert.equal(got?.value ?? null, naive(routes, host, path));
      }),
      { numRuns: 2000 },
    );
  });

  it('keeps a host-less route that comes before an exact-host route ahead of it for that host', () => {
    const routes = [route(0, null, '/api/'), route(1, { kind: 'exact', host: 'a.svc' }, null), route(2, null, null)];
    const r = new Router(routes);
    assert.equal(r.match('a.svc', '/api/x', 'GET', { headers: {} })?.value, 0);
    assert.equal(r.match('a.svc', '/x', 'GET', { headers: {} })?.value, 1);
    assert.equal(r.match('b.svc', '/x', 'GET', { headers: {} })?.value, 2);
  });

  it('builds the index for thousands of host routes in linear time', () => {
    const routes = Array.from({ length: 20_000 }, (_, i) => route(i, { kind: 'exact', host: `svc${i}.bench` }, null));
    routes.push(route(20_000, null, null));
    const started = performance.now();
    const r = new Router(routes);
    const ms = performance.now() - started;
    assert.equal(r.match('svc19999.bench', '/', 'GET', { headers: {} })?.value, 19_999);
    assert.equal(r.match('unknown', '/', 'GET', { headers: {} })?.value, 20_000);
    // A quadratic build (400 million filter steps) takes seconds; a linear one milliseconds.
    assert.ok(ms < 1_500, `router build took ${ms.toFixed(0)} ms`);
  });
});
