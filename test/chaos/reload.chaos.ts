/**
 * Reload chaos (SPEC §7): 50 reloads — valid and invalid configs in turn —
 * while kept-alive clients send ~1000 requests per second through the
 * listener. No request may fail, no connection may break, every valid reload
 * must take and every invalid one must change nothing.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { admin, drive, scaled, tally, waitForRest } from './lib.ts';

const RELOADS = 50;
const RATE = 1000;
const REQUESTS = scaled(6000, 500);
const CONCURRENCY = 16;

function valid(origin: string, variant: number): string {
  // Two shapes that differ in the layers they build: the swap has real work to do each time.
  const policy =
    variant % 2 === 0
      ? `    retry: { maxRetries: 1, backoff: { strategy: immediate } }`
      : `    retry: { maxRetries: 2, backoff: { strategy: constant, base: 1ms, max: 1ms } }
    rateLimit: { rate: 1000000/s }
    circuitBreaker: { consecutiveFailures: 1000, openDuration: 1s }
    bulkhead: { maxConcurrent: 1000, maxQueue: 10 }`;
  return `
version: 1
admin: { address: 127.0.0.1:0 }
log: { level: info }
listeners:
  - name: app
    address: 127.0.0.1:0
    routes:
      - { name: items, match: { pathPrefix: /items/ }, upstream: fast, timeout: { total: ${variant % 2 === 0 ? '5s' : '6s'} } }
      - { name: rest, upstream: fast }
upstreams:
  fast:
    url: ${origin}
${policy}
`;
}

/** Invalid configs of several kinds; each must be refused with the old config still serving. */
function invalid(origin: string, k: number): string {
  const kinds = [
    // YAML syntax error
    `version: 1\nlisteners: [ { name: app, address: 127.0.0.1:0, upstream: fast }\nupstreams: {`,
    // unknown key
    valid(origin, 0).replace('retry: {', 'retyr: {'),
    // unknown upstream
    valid(origin, 0).replace('upstream: fast }\n', 'upstream: nowhere }\n'),
    // missing environment variable
    valid(origin, 0).replace(`url: ${origin}`, 'url: ${CHAOS_MISSING_ORIGIN}'),
    // perTry above total in one block
    valid(origin, 0).replace('timeout: { total: 5s }', 'timeout: { total: 1s, perTry: 2s }'),
    // bad duration
    valid(origin, 1).replace('openDuration: 1s', 'openDuration: soon'),
  ];
  return kinds[k % kinds.length]!;
}

describe('reload chaos under load', () => {
  let up: Upstream;
  let px: TestProxy;
  const baseline = snapshotHandles();

  before(async () => {
    // Mostly instant, every 10th answer 20 ms late: some requests are always in flight during a swap.
    up = await startUpstream((_req, i) => (i % 10 === 0 ? { status: 200, body: 'fast', delayMs: 20 } : { status: 200, body: 'fast' }));
    px = await startProxy(valid(up.origin, 0));
  });

  after(async () => {
    await px?.close();
    await up?.close();
    await assertNoLeaks(baseline, { settleMs: 3000 });
  });

  it(`survives ${RELOADS} reloads, valid and invalid in turn, at ~${RATE} req/s with no failed request or broken connection`, async (t) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    let sockets = 0;
    const onSocket = (): void => {
      sockets++;
    };
    // Count the client connections made: a reload must not close kept-alive ones.
    const origCreate = agent.createConnection.bind(agent);
    agent.createConnection = ((...args: Parameters<typeof origCreate>) => {
      onSocket();
      return origCreate(...args);
    }) as typeof agent.createConnection;
    const results: { kind: 'valid' | 'invalid'; result: string }[] = [];
    const t0 = Date.now();
    let loadDone = false;
    const load = drive({
      url: px.url('app'),
      requests: REQUESTS,
      concurrency: CONCURRENCY,
      ratePerSecond: RATE,
      agent,
      make: (i) => (i % 7 === 3 ? { method: 'POST', path: `/items/${i}`, body: `{"n":${i}}`, headers: { 'content-type': 'application/json' } } : { path: i % 2 ? `/items/${i}` : `/other/${i}` }),
    }).finally(() => {
      loadDone = true;
    });

    const spread = Math.max(20, Math.floor(((REQUESTS / RATE) * 1000 * 0.8) / RELOADS));
    for (let k = 0; k < RELOADS; k++) {
      await sleep(spread);
      const isValid = k % 2 === 0;
      px.write(isValid ? valid(up.origin, k / 2 + 1) : invalid(up.origin, (k - 1) / 2));
      let result: string;
      if (k % 5 === 4) {
        // Some through the admin API, the way an operator would.
        const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = http.request(`${px.adminUrl}/reload`, { method: 'POST', agent: false }, (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          });
          req.on('error', reject);
          req.end();
        });
        result = (JSON.parse(r.body) as { result: string }).result;
        assert.equal(r.status, result === 'failure' ? 400 : 200);
      } else {
        result = (await px.proxy.reload('chaos')).result;
      }
      results.push({ kind: isValid ? 'valid' : 'invalid', result });
    }
    const reloadMs = Date.now() - t0;
    const reloadsDuringLoad = !loadDone;
    const outcomes = await load;
    const ms = Date.now() - t0;
    agent.destroy();

    const bad = outcomes.filter((o) => !o.complete || o.status !== 200 || o.body !== 'fast');
    t.diagnostic(
      `${REQUESTS} requests in ${ms} ms (${Math.round((REQUESTS * 1000) / ms)} req/s), ${RELOADS} reloads in ${reloadMs} ms, ` +
        `${sockets} client connections, outcomes ${JSON.stringify(tally(outcomes))}`,
    );
    assert.ok(reloadsDuringLoad, 'every reload happened while the load was running');
    assert.deepEqual(
      bad.slice(0, 5).map((o) => `#${o.index} ${o.status} ${o.error ?? ''} ${o.body.slice(0, 60)}`),
      [],
      `${bad.length} of ${REQUESTS} requests failed`,
    );
    assert.deepEqual(
      results.filter((r) => (r.kind === 'valid' ? r.result !== 'success' : r.result !== 'failure')),
      [],
      'every valid reload took, every invalid one was refused',
    );
    assert.ok(sockets <= CONCURRENCY, `client connections stayed open across reloads (${sockets} made for ${CONCURRENCY} clients)`);

    const metrics = (await admin(px, '/metrics')).body;
    assert.match(metrics, /breakwater_config_reloads_total\{result="success"\} 25\b/);
    assert.match(metrics, /breakwater_config_reloads_total\{result="failure"\} 25\b/);
    const cfg = JSON.parse((await admin(px, '/config')).body) as { lastReload: { ok: boolean; errors: string[] } };
    assert.equal(cfg.lastReload.ok, false, 'the last (invalid) reload is shown in /config');
    assert.ok(cfg.lastReload.errors.length > 0);
    const failedLogs = px.logs.filter((l) => l.msg === 'reload_failed');
    assert.equal(failedLogs.length, 25, 'each refused reload is logged');

    const rest = await waitForRest(px, () => up.inFlight);
    assert.equal(rest.ready, 200);
    assert.equal(rest.inflight, 0);
    await px.waitForRequests(REQUESTS, 5000);
  });
});
