/**
 * Prometheus' own linter on what breakwater exports and ships: `promtool check
 * metrics` on the admin /metrics of the built CLI (which, unlike the
 * in-process helper, exports prom-client's default process metrics) after
 * traffic that fills most families, and `promtool check rules` on the rules
 * file in deploy/.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from '../helpers/http.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { PEERS, ROOT, requirePeers, run, skipUnless, startCli, type Cli } from './lib.ts';

describe('promtool', { skip: skipUnless(PEERS.promtool) }, () => {
  let up: Upstream | undefined;
  let cli: Cli | undefined;

  before(async () => {
    requirePeers(PEERS.promtool);
    up = await startUpstream((req) => (req.url.startsWith('/fail') ? { status: 503 } : { status: 200, body: 'ok' }));
    cli = await startCli(`
version: 1
admin: { address: 127.0.0.1:0 }
log: { access: false }
listeners:
  - name: app
    address: 127.0.0.1:0
    upstream: app
  - name: egress
    address: 127.0.0.1:0
    routes:
      - match: { host: app.test }
        upstream: app
upstreams:
  app:
    url: "${up.origin}"
    retry: { maxRetries: 1, backoff: { base: 1ms, max: 2ms } }
    circuitBreaker: { consecutiveFailures: 50 }
    bulkhead: { maxConcurrent: 10 }
    rateLimit: { rate: 1000/s }
`);
  });
  after(async () => {
    await cli?.close();
    await up?.close();
  });

  it('promtool check metrics finds no problem in /metrics, default process metrics included', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await request(`${cli!.url('app')}/ok/${i}`)).status, 200);
    assert.equal((await request(`${cli!.url('app')}/fail`)).status, 503);
    assert.equal((await request(`${cli!.url('egress')}/x`, { headers: { host: 'nowhere.test' } })).status, 404);
    const metrics = await request(`${cli!.adminUrl}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^breakwater_process_cpu_seconds_total /m, 'default process metrics are on in the CLI');
    assert.match(metrics.body, /^breakwater_retries_total\{/m, 'traffic reached the retry counter');
    const r = await run('promtool', ['check', 'metrics'], { input: metrics.body });
    assert.equal(r.code, 0, `promtool check metrics:\n${r.stdout}${r.stderr}`);
  });

  it('promtool check rules accepts deploy/prometheus/breakwater-rules.yaml', async () => {
    const r = await run('promtool', ['check', 'rules', path.join(ROOT, 'deploy', 'prometheus', 'breakwater-rules.yaml')]);
    assert.equal(r.code, 0, `promtool check rules:\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /SUCCESS: \d+ rules found/);
  });
});
