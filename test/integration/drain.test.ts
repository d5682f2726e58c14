/**
 * Graceful drain (SPEC §7), in-process through `Proxy.drain()`: readiness
 * fails at once, listeners keep serving for `drain.delay`, then stop
 * accepting; in-flight requests finish; a request arriving on a kept-alive
 * connection is answered `draining` and its connection closed; whatever is
 * still running after `drain.timeout` is cut.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { json, request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { startUpstream, type Step, type Upstream } from '../helpers/upstream.ts';
import { sleep, waitFor, freePort, tryConnect, getVia } from '../helpers/wait.ts';

const byPath = (req: { url: string }): Step => {
  const slow = /\/slow\/(\d+)/.exec(req.url);
  if (slow !== null) return { status: 200, body: `slow ${req.url}`, delayMs: Number(slow[1]) };
  return { status: 200, body: `ok ${req.url}` };
};

const config = (up: Upstream, port: number, drain: string) => `
version: 1
admin: { address: 127.0.0.1:0 }
drain: ${drain}
listeners:
  - { name: main, address: 127.0.0.1:${port}, upstream: u }
upstreams:
  u: { url: ${up.origin}, retry: { maxRetries: 0 } }
`;

describe('graceful drain', () => {
  const baseline = snapshotHandles();
  let up: Upstream;
  const proxies: TestProxy[] = [];
  const agents: http.Agent[] = [];

  before(async () => {
    up = await startUpstream(byPath);
  });
  after(async () => {
    for (const a of agents) a.destroy();
    for (const p of proxies) await p.close();
    await up.close();
    await assertNoLeaks(baseline);
  });

  it('fails readiness at once, keeps serving for drain.delay, then refuses new connections', async () => {
    const port = await freePort();
    const px = await startProxy(config(up, port, '{ delay: 600ms, timeout: 5s }'));
    proxies.push(px);
    const adminPort = px.proxy.admin!.port;
    assert.equal((await request(`${px.adminUrl}/readyz`)).status, 200);

    const t0 = Date.now();
    const drained = px.proxy.drain().then(() => Date.now());
    const ready = await request(`${px.adminUrl}/readyz`);
    assert.equal(ready.status, 503, 'readiness fails at once');
    assert.match(ready.body, /draining/);
    assert.equal((await request(`${px.adminUrl}/healthz`)).status, 200, 'liveness is unaffected');
    const during = await request(`http://127.0.0.1:${port}/during-delay`);
    assert.ok(Date.now() - t0 < 600, 'asked within the delay');
    assert.equal(during.status, 200, 'a new connection is still served during drain.delay');

    const at = await drained;
    assert.ok(at - t0 >= 580, `the delay was kept (${at - t0}ms)`);
    assert.equal(await tryConnect(port), 'ECONNREFUSED', 'the listener stopped accepting');
    assert.equal(await tryConnect(adminPort), 'ECONNREFUSED', 'the admin endpoint is closed at the end');
    const events = px.logs.map((l) => l.msg);
    assert.ok(events.includes('drain_start') && events.includes('drain_complete'), `drain events logged: ${events.join(',')}`);
  });

  it('lets in-flight requests finish and answers a request on a kept-alive connection with draining, closing it', async () => {
    const port = await freePort();
    const px = await startProxy(config(up, port, '{ delay: 0s, timeout: 10s }'));
    proxies.push(px);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    const base = `http://127.0.0.1:${port}`;
    up.reset();

    const first = getVia(agent, `${base}/slow/600/kept`).then((r) => ({ r, at: Date.now() }));
    const other = request(`${base}/slow/1800/other`).then((r) => ({ r, at: Date.now() }));
    await waitFor('both requests reached the upstream', () => up.inFlight === 2);

    const drained = px.proxy.drain().then(() => Date.now());
    const f = await first;
    assert.equal(f.r.status, 200, 'the in-flight request finished');
    assert.equal(f.r.body, 'slow /slow/600/kept');

    // Same kept-alive socket, after drain began: draining, and the connection closes.
    const next = await getVia(agent, `${base}/after-drain`);
    assert.equal(next.reused, true, 'sent on the kept-alive connection');
    assert.equal(next.status, 503);
    assert.equal(next.headers['x-breakwater-error'], 'draining');
    assert.equal(next.headers.connection, 'close');
    assert.equal(json(next).error, 'draining');
    assert.equal(up.requests.filter((r) => r.url === '/after-drain').length, 0, 'never forwarded');

    const o = await other;
    assert.equal(o.r.status, 200, 'the other in-flight request finished too');
    const at = await drained;
    assert.ok(at >= o.at - 50, 'drain waited for the last in-flight request');
    const done = px.logs.find((l) => l.msg === 'drain_complete');
    assert.equal(done?.['abandoned'], 0);
    const line = (await px.waitForRequests(3)).find((l) => l['path'] === '/after-drain');
    assert.equal(line?.['error'], 'draining');
  });

  it('waits for a request on a listener that a reload removed, even one between retries', async () => {
    const [pA, pB] = [await freePort(), await freePort()];
    const cfg = (withB: boolean) => `
version: 1
admin: { address: 127.0.0.1:0 }
drain: { delay: 0s, timeout: 10s }
listeners:
  - { name: a, address: 127.0.0.1:${pA}, upstream: u }
${withB ? `  - { name: b, address: 127.0.0.1:${pB}, upstream: u }\n` : ''}upstreams:
  u:
    url: ${up.origin}
    retry: { maxRetries: 1, on: [503], backoff: { strategy: constant, base: 700ms, max: 700ms, jitter: none } }
`;
    const px = await startProxy(cfg(true));
    proxies.push(px);
    up.reset();
    let first = true;
    up.setScript((req) => {
      if (req.url === '/retry-me' && first) {
        first = false;
        return { status: 503 };
      }
      return byPath(req);
    });
    try {
      const inflight = request(`http://127.0.0.1:${pB}/retry-me`).then(
        (r) => `${r.status} ${r.headers['x-breakwater-error'] ?? r.body}`,
        (e: Error) => `failed: ${e.message}`,
      );
      await waitFor('the first attempt was answered 503', () => up.requests.length === 1 && up.inFlight === 0);
      px.write(cfg(false));
      assert.equal((await px.proxy.reload('test')).result, 'success');
      // Draining now, while the request on the removed listener waits for its retry.
      await px.proxy.drain();
      assert.equal(await inflight, '200 ok /retry-me', 'the request finished with its retry');
      assert.equal(up.requests.length, 2);
    } finally {
      up.setScript(byPath);
    }
  });

  it('does not bind a listener that a reload during drain adds', async () => {
    const [port, added] = [await freePort(), await freePort()];
    const px = await startProxy(config(up, port, '{ delay: 0s, timeout: 10s }'));
    proxies.push(px);
    const inflight = request(`http://127.0.0.1:${port}/slow/800/keeps-draining`);
    await waitFor('the request reached the upstream', () => up.inFlight >= 1);
    const drained = px.proxy.drain();
    await sleep(50);
    px.write(`
version: 1
admin: { address: 127.0.0.1:0 }
drain: { delay: 0s, timeout: 10s }
listeners:
  - { name: main, address: 127.0.0.1:${port}, upstream: u }
  - { name: late, address: 127.0.0.1:${added}, upstream: u }
upstreams:
  u: { url: ${up.origin}, retry: { maxRetries: 0 } }
`);
    const r = await px.proxy.reload('SIGHUP');
    assert.equal((await inflight).status, 200);
    await drained;
    assert.equal(await tryConnect(added), 'ECONNREFUSED', `nothing listens on the added address after drain (reload: ${r.result})`);
  });

  it('stops waiting after drain.timeout and cuts the requests still running', async () => {
    const port = await freePort();
    const px = await startProxy(config(up, port, '{ delay: 0s, timeout: 400ms }'));
    proxies.push(px);
    up.reset();
    const stuck = request(`http://127.0.0.1:${port}/slow/8000/stuck`).then(
      (r) => `answered ${r.status}`,
      (e: Error) => `failed: ${e.message}`,
    );
    await waitFor('the request reached the upstream', () => up.inFlight === 1);
    const t0 = Date.now();
    await px.proxy.drain();
    const took = Date.now() - t0;
    assert.ok(took >= 380 && took < 3000, `drain gave up after about drain.timeout (${took}ms)`);
    assert.match(await stuck, /^failed/, 'the client connection was cut');
    assert.equal(px.logs.find((l) => l.msg === 'drain_complete')?.['abandoned'], 1);
    await waitFor('the upstream request was abandoned too', () => up.inFlight === 0, 3000);
  });
});
