import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeConfig } from '../../../src/config/describe.ts';
import { config, errorAt, yaml } from './helpers.ts';

const base = (tracing: string): string => yaml`
  version: 1
  ${tracing}
  listeners:
    - { name: main, address: 127.0.0.1:0, upstream: svc }
  upstreams:
    svc: { url: http://127.0.0.1:8080 }
`;

describe('config: the tracing block (SPEC §13)', () => {
  it('is off (null) unless present', () => {
    assert.equal(config(base('')).tracing, null);
  });

  it('takes the built-ins for what it does not say: ratio 1, queue 2048, service name from the environment', () => {
    assert.deepEqual(config(base('tracing: { endpoint: http://collector:4318/v1/traces }')).tracing, {
      endpoint: 'http://collector:4318/v1/traces',
      sampleRatio: 1,
      serviceName: null,
      queueSize: 2048,
    });
  });

  it('keeps what it says', () => {
    const t = config(base('tracing: { endpoint: "https://otel.example:4318/v1/traces", sampleRatio: 0.1, serviceName: checkout, queueSize: 100 }')).tracing;
    assert.deepEqual(t, { endpoint: 'https://otel.example:4318/v1/traces', sampleRatio: 0.1, serviceName: 'checkout', queueSize: 100 });
  });

  it('refuses a missing endpoint, a non-HTTP one, one with credentials, a ratio outside 0..1 and an empty queue', () => {
    assert.match(errorAt(base('tracing: { sampleRatio: 1 }'), 'tracing.endpoint').message, /endpoint/);
    assert.match(errorAt(base('tracing: { endpoint: "grpc://collector:4317" }'), 'tracing.endpoint').message, /http:\/\/ or https:\/\//);
    assert.match(errorAt(base('tracing: { endpoint: "http://u:p@collector:4318/v1/traces" }'), 'tracing.endpoint').message, /no credentials/);
    errorAt(base('tracing: { endpoint: "http://c:4318/v1/traces", sampleRatio: 1.5 }'), 'tracing.sampleRatio');
    errorAt(base('tracing: { endpoint: "http://c:4318/v1/traces", queueSize: 0 }'), 'tracing.queueSize');
    errorAt(base('tracing: { endpoint: "http://c:4318/v1/traces", sampler: always }'), 'tracing.sampler');
  });

  it('is described by validate with its effective values, never the endpoint’s query', () => {
    const off = describeConfig(config(base('')));
    assert.match(off, /^ {2}tracing {4}off$/m);
    const on = describeConfig(config(base('tracing: { endpoint: "http://c:4318/v1/traces?key=s3cret", sampleRatio: 0.25, queueSize: 64 }')));
    assert.match(on, /tracing {4}OTLP\/HTTP to http:\/\/c:4318\/v1\/traces\?…; sample 25% of new traces \(parent-based\); service \$OTEL_SERVICE_NAME, else breakwater; queue 64 spans/);
    assert.ok(!on.includes('s3cret'));
  });
});
