import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeView, parseMetrics, quantile } from '../../../src/cli/top-stats.ts';
import { parseInterval, renderView } from '../../../src/cli/top.ts';
import { adminBase } from '../../../src/cli/admin-client.ts';

describe('quantile from histogram buckets', () => {
  it('interpolates inside the bucket that holds the rank, like histogram_quantile', () => {
    // 10 in (0, 0.1], 10 in (0.1, 0.2]
    const b: [number, number][] = [[0.1, 10], [0.2, 20], [Infinity, 20]];
    assert.equal(quantile(0.5, b), 0.1);
    assert.ok(Math.abs(quantile(0.75, b)! - 0.15) < 1e-9);
    assert.ok(Math.abs(quantile(0.25, b)! - 0.05) < 1e-9);
  });
  it('answers the highest finite bound when the rank is in +Inf, and null for an empty window', () => {
    assert.equal(quantile(0.99, [[0.1, 1], [1, 1], [Infinity, 10]]), 1);
    assert.equal(quantile(0.5, [[0.1, 0], [Infinity, 0]]), null);
    assert.equal(quantile(0.5, []), null);
  });
});

const scrape = (reqs: { ok: number; err: number; fast: number; slow: number }, extra = '') =>
  parseMetrics(`# HELP breakwater_requests_total x
# TYPE breakwater_requests_total counter
breakwater_requests_total{listener="main",route="api",upstream="users",method="GET",code="200"} ${reqs.ok}
breakwater_requests_total{listener="main",route="api",upstream="users",method="GET",code="503"} ${reqs.err}
breakwater_requests_total{listener="main",route="web",upstream="web",method="GET",code="200"} 5
breakwater_request_duration_seconds_bucket{listener="main",route="api",upstream="users",method="GET",code_class="2xx",le="0.01"} ${reqs.fast}
breakwater_request_duration_seconds_bucket{listener="main",route="api",upstream="users",method="GET",code_class="2xx",le="0.1"} ${reqs.fast + reqs.slow}
breakwater_request_duration_seconds_bucket{listener="main",route="api",upstream="users",method="GET",code_class="2xx",le="+Inf"} ${reqs.fast + reqs.slow}
breakwater_circuit_state{upstream="users",state="closed"} 0
breakwater_circuit_state{upstream="users",state="open"} 1
breakwater_bulkhead_active{upstream="users"} 3
breakwater_bulkhead_queued{upstream="users"} 1
breakwater_config_info{hash="a\\"b"} 1
${extra}`);

describe('top: the view between two scrapes', () => {
  it('parses labels (escapes included) and +Inf', () => {
    const s = scrape({ ok: 1, err: 0, fast: 1, slow: 0 });
    assert.equal(s.get('breakwater_config_info')![0]!.labels['hash'], 'a"b');
    assert.equal(s.get('breakwater_request_duration_seconds_bucket')![2]!.labels['le'], '+Inf');
  });

  it('rates, success share and quantiles come from the deltas over the window, sorted by rate', () => {
    const before = scrape({ ok: 100, err: 0, fast: 100, slow: 0 });
    // In 2 s: 18 ok + 2 errors; of the 18 timed, 9 fast and 9 slow.
    const now = scrape(
      { ok: 118, err: 2, fast: 109, slow: 9 },
      `breakwater_retries_total{route="api",upstream="users",reason="503"} 4
breakwater_rejected_total{route="api",upstream="users",reason="circuit_open"} 6`,
    );
    const v = computeView(now, before, 2);
    assert.equal(v.routes[0]!.route, 'api');
    assert.equal(v.routes[0]!.rps, 10);
    assert.equal(v.routes[0]!.success, 0.9);
    assert.equal(v.routes[0]!.p50, 0.01, 'half of the window is at or under 10 ms');
    assert.ok(v.routes[0]!.p99! > 0.09 && v.routes[0]!.p99! <= 0.1);
    assert.equal(v.routes[0]!.retriesPerSec, 2, 'a counter absent before counts from zero');
    assert.equal(v.routes[0]!.rejectedPerSec, 3);
    assert.equal(v.routes[1]!.route, 'web');
    assert.equal(v.routes[1]!.rps, 0);
    assert.equal(v.routes[1]!.success, null, 'no requests in the window: no success rate');
    const u = v.upstreams.find((x) => x.upstream === 'users')!;
    assert.equal(u.circuit, 'open');
    assert.equal(u.bulkheadActive, 3);
    assert.equal(u.bulkheadQueued, 1);
    assert.deepEqual(u.rejected, [['circuit_open', 3]]);
  });

  it('a counter that went down (breakwater restarted) counts from zero, never negative', () => {
    const v = computeView(scrape({ ok: 4, err: 0, fast: 4, slow: 0 }), scrape({ ok: 100, err: 0, fast: 100, slow: 0 }), 1);
    assert.equal(v.routes[0]!.route, 'api');
    assert.equal(v.routes[0]!.rps, 4, 'api: the 4 since the restart');
    assert.equal(v.routes[1]!.rps, 0, 'web: unchanged');
  });

  it('renders a table a person reads, cut to the terminal width', () => {
    const v = computeView(scrape({ ok: 20, err: 0, fast: 20, slow: 0 }), scrape({ ok: 0, err: 0, fast: 0, slow: 0 }), 2);
    const lines = renderView(v, 'title', 60);
    assert.match(lines[2]!, /^ROUTE\s+UPSTREAM\s+REQ\/S\s+OK%\s+P50/);
    assert.match(lines[3]!, /^api\s+users\s+10\.0\s+100%/);
    assert.ok(lines.every((l) => l.length <= 60));
    assert.ok(lines.some((l) => /^users\s+open\s/.test(l)));
  });
});

describe('top/tap options', () => {
  it('intervals and admin addresses', () => {
    assert.equal(parseInterval('2'), 2000);
    assert.equal(parseInterval('500ms'), 500);
    assert.equal(parseInterval('1.5s'), 1500);
    assert.equal(parseInterval('10ms'), null);
    assert.equal(parseInterval('soon'), null);
    assert.equal(adminBase('127.0.0.1:9901').href, 'http://127.0.0.1:9901/');
    assert.equal(adminBase(':9901').href, 'http://127.0.0.1:9901/');
    assert.equal(adminBase('9901').href, 'http://127.0.0.1:9901/');
    assert.equal(adminBase('http://localhost:8001/x').href, 'http://localhost:8001/');
    assert.throws(() => adminBase('localhost'), /no port/);
  });
});
