import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeConfig } from '../../../src/config/describe.ts';
import { loadConfigText } from '../../../src/config/load.ts';
import { CertFactory, opensslMissing } from '../../helpers/certs.ts';
import { config, yaml } from './helpers.ts';

const text = yaml`
  version: 1
  defaults: { timeout: { perTry: 5s } }
  listeners:
    - name: egress
      address: 127.0.0.1:15001
      routes:
        - match: { host: "*.internal", methods: [get] }
          upstream: payments
        - name: inv
          match: { pathPrefix: /inventory/, headers: { x-tenant: blue } }
          upstream: inventory
          stripPrefix: true
          timeout: { total: 2s }
          rateLimit: { rate: 50/100ms }
  upstreams:
    payments:
      endpoints: [http://127.0.0.1:8080, http://127.0.0.1:8081]
      requestHeaders: { set: { authorization: "Bearer \${TOKEN}" }, remove: [x-debug] }
      retry: { maxRetries: 3, methods: [GET, POST], budget: null }
      circuitBreaker: { consecutiveFailures: 5, successThreshold: 2 }
      bulkhead: { maxQueue: 10 }
      rateLimit: { rate: 200/s, burst: 50 }
      fallback: { upstream: dr, on: [circuit-open] }
    dr:
      url: http://127.0.0.1:9090
      fallback: { response: { status: 503 } }
    inventory: { url: "http://127.0.0.1:8082" }
`;

describe('describeConfig (what validate prints)', () => {
  const c = config(text, { TOKEN: 'tok-secret-123' });
  const out = describeConfig(c);

  it('prints each route with its match, upstream, endpoints and effective policies in readable units', () => {
    const route = out.slice(out.indexOf('  route egress/0'), out.indexOf('  route inv'));
    assert.equal(
      route,
      [
        '  route egress/0',
        '    match      host *.internal, methods GET',
        '    upstream   payments: http://127.0.0.1:8080, http://127.0.0.1:8081',
        '               round-robin; pool 64 connections, keep-alive 4s; Host rewritten to the endpoint; sets authorization (values hidden); removes x-debug',
        '    timeout    connect 1s, perTry 5s, total 15s, idle 1m',
        '    retry      up to 3 retries on connect-failure, reset, timeout, 502, 503, 504',
        '               methods GET POST (any method carrying idempotency-key; connect failures always)',
        '               backoff exponential 25ms up to 250ms, full jitter; no retry budget',
        '               Retry-After respected; bodies up to 64KiB replayed',
        '    breaker    opens on 5 consecutive failures or 50% failures of at least 20 attempts in 10s (failures: 5xx, timeout, connect-failure, reset); open 30s, then 1 probe, closes after 2 successes; enforce (shared by all routes to payments)',
        '    bulkhead   100 concurrent, queue 10 for up to 1s; enforce (shared by all routes to payments)',
        '    rateLimit  route: off; upstream: 200/s, burst 50, no wait; enforce',
        '    fallback   upstream dr on circuit-open',
        '',
      ].join('\n'),
    );
  });

  it('shows route overrides merged, and the route’s own rate limit', () => {
    assert.match(out, /route inv\n {4}match {6}path prefix \/inventory\/ \(stripped before forwarding\), header x-tenant: blue\n/);
    assert.match(out, /timeout {4}connect 1s, perTry 2s, total 2s, idle 1m/);
    assert.match(out, /rateLimit {2}route: 50\/100ms, burst 500, no wait; enforce; upstream: off/);
  });

  it('shows upstreams reached only as fallbacks', () => {
    assert.match(out, /\nupstream dr \(no route: reached only as a fallback\)\n {2}upstream {3}dr: http:\/\/127\.0\.0\.1:9090\n/);
    assert.match(out, /fallback {3}static 503 response on circuit-open, connect-failure, timeout, retries-exhausted, bulkhead-full/);
  });

  it('ends with the warnings, code and path first', () => {
    const tail = out.slice(out.indexOf('\n4 warnings:'));
    assert.match(tail, /warning \[retry-post\] upstreams\.payments\.retry\.methods: POST is in retry\.methods/);
    assert.match(tail, /warning \[retry-no-budget\] upstreams\.payments\.retry\.budget/);
    assert.match(tail, /warning \[fallback-no-on\] upstreams\.dr\.fallback/);
    assert.match(tail, /warning \[pertry-capped\] listeners\[0\]\.routes\[1\]\.timeout/);
    assert.ok(out.endsWith('\n'));
    assert.match(describeConfig(config('version: 1\nlisteners: []\nupstreams: {}\n')), /\nno warnings\n$/);
  });

  it('never prints an injected header value', () => {
    assert.doesNotMatch(out, /tok-secret-123/);
  });

  it('is stable: the same config prints the same text', () => {
    assert.equal(describeConfig(config(text, { TOKEN: 'tok-secret-123' })), out);
  });
});

describe('describeConfig: TLS to upstreams', () => {
  it('names the CA, the client certificate files, the servername and the minimum version, never their contents', () => {
    if (opensslMissing() !== null) return;
    const certs = new CertFactory();
    try {
      const ca = certs.ca('describe-ca');
      const client = certs.leaf('describe-client', ca);
      const r = loadConfigText(
        `version: 1
listeners: [{ name: l, address: 127.0.0.1:0, upstream: ledger }]
upstreams:
  ledger:
    url: https://ledger.internal:8443
    tls: { ca: ${ca.certFile}, cert: ${client.certFile}, key: ${client.keyFile}, servername: ledger.internal, minVersion: TLSv1.3 }
`,
        `${certs.dir}/breakwater.yaml`,
        {},
      );
      assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
      if (!r.ok) return;
      const text = describeConfig(r.config);
      assert.match(text, new RegExp(`CA ${ca.certFile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
      assert.match(text, /client certificate .*describe-client/);
      assert.match(text, /servername ledger\.internal/);
      assert.match(text, /min TLSv1\.3/);
      assert.doesNotMatch(text, /BEGIN/);
    } finally {
      certs.close();
    }
  });
});
