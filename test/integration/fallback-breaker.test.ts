import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from '../helpers/http.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { refusedPort, startUpstream, type Upstream } from '../helpers/upstream.ts';

describe('a fallback upstream and the primary’s circuit breaker (SPEC §4.3, §4.6)', () => {
  let backup: Upstream;
  let px: TestProxy;

  before(async () => {
    backup = await startUpstream({ status: 200, body: 'backup' });
    const dead = await refusedPort();
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: l, address: 127.0.0.1:0, upstream: primary }
upstreams:
  primary:
    url: http://127.0.0.1:${dead}
    retry: { maxRetries: 0 }
    circuitBreaker: { consecutiveFailures: 2, failureRate: null, openDuration: 1m }
    fallback: { upstream: backup, on: [connect-failure, circuit-open] }
  backup:
    url: ${backup.origin}
`);
  });

  after(async () => {
    await px.close();
    await backup.close();
  });

  it('never records the fallback upstream’s attempts on the primary’s breaker: two primary failures in a row open it', async () => {
    for (let i = 0; i < 2; i++) assert.equal((await request(`${px.url('l')}/x`)).body, 'backup');
    const state = JSON.parse((await request(`${px.adminUrl}/upstreams`)).body);
    assert.equal(state.primary.circuitBreaker.state, 'open', 'the backup’s successes did not reset the primary’s consecutive failures');
    const r = await request(`${px.url('l')}/x`);
    assert.equal(r.body, 'backup');
    const lines = await px.waitForRequests(3);
    assert.deepEqual(
      (lines[2]!['tries'] as { endpoint: string }[]).map((t) => t.endpoint),
      [new URL(backup.origin).host],
      'the open breaker sent the third request straight to the fallback',
    );
  });
});
