/**
 * Exemplars (SPEC §13) read by a real OpenMetrics parser: Python's
 * prometheus_client.openmetrics.parser (Debian python3-prometheus-client)
 * parses the admin /metrics that breakwater serves when a scraper asks for
 * application/openmetrics-text with tracing on, and the trace ids it finds
 * on request_duration_seconds buckets are traces the OTLP receiver got.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from '../helpers/http.ts';
import { startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { PEERS, PYTHON, requirePeers, run, skipUnless } from './lib.ts';

const PARSE = `
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        if s.exemplar is not None:
            out.append({"family": fam.name, "type": fam.type, "sample": s.name, "le": s.labels.get("le"), "labels": s.exemplar.labels, "value": s.exemplar.value})
print(json.dumps(out))
`;

describe('OpenMetrics exemplars, parsed by prometheus_client', { skip: skipUnless(PEERS.openmetrics) }, () => {
  let up: Upstream | undefined;
  let otlp: OtlpReceiver | undefined;
  let px: TestProxy | undefined;

  before(async () => {
    requirePeers(PEERS.openmetrics);
    up = await startUpstream((req) => (req.url.startsWith('/slow') ? { status: 200, delayMs: 30 } : { status: 200 }));
    otlp = await startOtlpReceiver();
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
tracing: { endpoint: ${otlp.url} }
listeners:
  - name: main
    address: 127.0.0.1:0
    upstream: svc
upstreams:
  svc: { url: ${up.origin}, circuitBreaker: {}, retry: { maxRetries: 1 } }
`);
  });

  after(async () => {
    await px?.close();
    await otlp?.close();
    await up?.close();
  });

  it('the whole scrape parses as OpenMetrics and its exemplars are trace ids of exported server spans', async () => {
    for (let i = 0; i < 3; i++) await request(`${px!.url('main')}/fast/${i}`);
    await request(`${px!.url('main')}/slow`);
    const scrape = await request(`${px!.adminUrl}/metrics`, { headers: { accept: 'application/openmetrics-text; version=1.0.0' } });
    assert.match(String(scrape.headers['content-type']), /^application\/openmetrics-text/);
    const r = await run(PYTHON, ['-c', PARSE], { input: scrape.body });
    assert.equal(r.code, 0, `the OpenMetrics parser refused the scrape:\n${r.stderr}`);
    const exemplars = JSON.parse(r.stdout) as { family: string; type: string; sample: string; le: string; labels: Record<string, string>; value: number }[];
    assert.ok(exemplars.length >= 2, `a fast and a slow bucket have exemplars: ${r.stdout}`);
    for (const e of exemplars) {
      assert.equal(e.family, 'breakwater_request_duration_seconds', 'exemplars only on request_duration_seconds');
      assert.equal(e.type, 'histogram');
      assert.equal(e.sample, 'breakwater_request_duration_seconds_bucket');
      assert.match(e.labels['trace_id']!, /^[0-9a-f]{32}$/);
      assert.ok(e.value <= (e.le === '+Inf' ? Infinity : Number(e.le)), 'an exemplar sits in its own bucket');
    }
    const spans = await otlp!.waitForSpans((s) => exemplars.every((e) => s.some((x) => x.kind === 'server' && x.traceId === e.labels['trace_id'])));
    assert.ok(spans.length > 0);
  });
});
