import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { acceptsOpenMetrics } from '../../../src/admin/server.ts';
import { dropReporter, Tracing } from '../../../src/observability/tracing/tracing.ts';
import type { Exchange } from '../../../src/pipeline/exchange.ts';
import type { Reply } from '../../../src/pipeline/handler.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** Starts a proxy in a fresh process, sends one request, and reports which OpenTelemetry modules were loaded. */
function otelModulesLoaded(tracing: string): string[] {
  const script = `
    import { createRequire } from 'node:module';
    import http from 'node:http';
    import { loadConfigText } from './src/config/load.ts';
    import { Proxy } from './src/runtime/proxy.ts';
    const up = http.createServer((q, s) => s.end('ok'));
    await new Promise((r) => up.listen(0, '127.0.0.1', r));
    const yaml = \`
version: 1
admin: { address: 127.0.0.1:0 }
log: { access: false }
${tracing}
listeners:
  - { name: main, address: 127.0.0.1:0, upstream: svc }
upstreams:
  svc: { url: http://127.0.0.1:\${up.address().port} }
\`;
    const loaded = loadConfigText(yaml, 'x.yaml', {});
    if (!loaded.ok) throw new Error(loaded.errors.join('\\n'));
    const p = await Proxy.start(loaded.config, { defaultMetrics: false, logDestination: { write() {} } });
    await fetch('http://127.0.0.1:' + p.port('main') + '/');
    const cache = Object.keys(createRequire(import.meta.url).cache);
    const names = [...new Set(cache.map((f) => /node_modules\\/(@opentelemetry\\/[^/]+)/.exec(f)?.[1]).filter(Boolean))].sort();
    await p.close();
    up.close();
    console.log(JSON.stringify(names));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as string[];
}

describe('tracing costs nothing when off', () => {
  it('without a tracing block, no OpenTelemetry SDK module is loaded; with one, the SDK and the exporter are', () => {
    // @opentelemetry/api alone is prom-client's own import (its process CPU
    // metric reads the active span for exemplars), loaded with or without tracing.
    assert.deepEqual(
      otelModulesLoaded('').filter((m) => m !== '@opentelemetry/api'),
      [],
    );
    const on = otelModulesLoaded('tracing: { endpoint: "http://127.0.0.1:9/v1/traces" }');
    for (const m of ['@opentelemetry/api', '@opentelemetry/sdk-trace', '@opentelemetry/exporter-trace-otlp-proto']) assert.ok(on.includes(m), `${m} in ${on.join(', ')}`);
  });
});

describe('OpenMetrics content negotiation', () => {
  it('serves OpenMetrics only when Accept names it with a non-zero q', () => {
    assert.equal(acceptsOpenMetrics(undefined), false);
    assert.equal(acceptsOpenMetrics('text/plain;version=0.0.4'), false);
    assert.equal(acceptsOpenMetrics('*/*'), false);
    // What Prometheus 2.x sends by default.
    assert.equal(acceptsOpenMetrics('application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'), true);
    assert.equal(acceptsOpenMetrics('Application/OpenMetrics-Text'), true);
    assert.equal(acceptsOpenMetrics('application/openmetrics-text;q=0, text/plain'), false);
  });
});

describe('dropped spans', () => {
  it('are all counted, and warned about at most once per interval with the sum since the last warning', () => {
    const counted: [string, number][] = [];
    const warned: Record<string, unknown>[] = [];
    const report = dropReporter(
      (reason, n) => counted.push([reason, n]),
      (fields) => warned.push(fields),
    );
    report('queue_full', 1);
    report('queue_full', 1);
    report('export_failed', 5);
    assert.deepEqual(counted, [
      ['queue_full', 1],
      ['queue_full', 1],
      ['export_failed', 5],
    ]);
    assert.deepEqual(warned, [{ reason: 'queue_full', dropped: 1 }]);
  });
});

describe('a load’s tracing before its commit', () => {
  it('serves a request untraced while no engine is bound (a listener a reload added, before the commit), never throws', async () => {
    const t = new Tracing({ endpoint: 'http://127.0.0.1:4318/v1/traces', sampleRatio: 1, serviceName: null, queueSize: 8 });
    const answer: Reply = { type: 'static', status: 200, headers: {}, body: 'ok' };
    const ex = { trace: null } as unknown as Exchange;
    const reply = await t.serverStep()(async () => answer)(ex);
    assert.equal(reply, answer);
    assert.equal(ex.trace, null);
  });
});
