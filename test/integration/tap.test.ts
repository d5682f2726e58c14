/**
 * GET /tap end to end (SPEC §13): a subscriber sees exactly the finished
 * requests its filter names, as the access log writes them; nothing is built
 * for the tap while nobody listens; the subscriber limit; a reader that never
 * reads is dropped with its buffer bounded; shutdown ends every stream; the
 * admin server's requestTimeout does not cut a long stream.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { json, request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { openTap, type Tap } from '../helpers/tap.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

const upstreamConfig = (up: Upstream, extra = '') => `
version: 1
admin: { address: 127.0.0.1:0 }
${extra}
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: api, match: { pathPrefix: /api }, upstream: users }
      - { name: web, match: { pathPrefix: / }, upstream: web }
upstreams:
  users:
    url: ${up.origin}
    retry: { maxRetries: 1, backoff: { strategy: immediate } }
  web:
    url: ${up.origin}
    retry: { maxRetries: 0 }
`;

describe('GET /tap (SPEC §13)', () => {
  let up: Upstream;
  let px: TestProxy;
  const baseline = snapshotHandles();

  before(async () => {
    up = await startUpstream((req) => ({ status: req.url.includes('fail') ? 503 : 200, body: 'ok' }));
    px = await startProxy(upstreamConfig(up));
  });

  after(async () => {
    await px.close();
    await up.close();
    await assertNoLeaks(baseline);
  });

  it('builds nothing for the tap while nobody listens', async () => {
    for (let i = 0; i < 5; i++) await request(`${px.url('main')}/api/x`);
    await px.waitForRequests(5);
    assert.equal(px.proxy.tap.active, false);
    assert.equal(px.proxy.tap.offered, 0, 'no line was offered to the tap');
  });

  it('streams exactly the finished requests each filter names, as the access log writes them', async () => {
    const all = await openTap(px.adminUrl);
    const errors = await openTap(px.adminUrl, '?status=5xx');
    const apiRetried = await openTap(px.adminUrl, '?route=api&flag=retried');
    const code = await openTap(px.adminUrl, '?upstream=web&status=503');
    assert.equal(all.status, 200);
    await waitFor('4 subscribers', () => px.proxy.tap.subscribers === 4);
    const before = px.requests().length;
    for (const p of ['/api/ok', '/api/fail', '/web/ok', '/web/fail', '/api/ok2']) await request(`${px.url('main')}${p}`);
    const logged = (await px.waitForRequests(before + 5)).slice(before);
    await waitFor('all lines on the tap', () => all.lines.length === 5);
    // The same JSON as the access log, field for field.
    assert.deepEqual(all.lines, logged);
    const paths = (t: Tap) => t.lines.map((l) => l['path']);
    await waitFor('filtered lines', () => errors.lines.length === 2 && code.lines.length === 1 && apiRetried.lines.length === 1);
    await sleep(100);
    assert.deepEqual(paths(errors), ['/api/fail', '/web/fail']);
    assert.deepEqual(paths(apiRetried), ['/api/fail']);
    assert.deepEqual(paths(code), ['/web/fail']);
    for (const t of [all, errors, apiRetried, code]) t.close();
    await waitFor('subscribers gone', () => px.proxy.tap.subscribers === 0);
    assert.equal(px.proxy.tap.active, false);
    const offered = px.proxy.tap.offered;
    await request(`${px.url('main')}/api/after`);
    await px.waitForRequests(before + 6);
    assert.equal(px.proxy.tap.offered, offered, 'once the last one left, nothing is built for the tap');
  });

  it('keeps streaming across a config reload (the hub outlives the runtime)', async () => {
    const t = await openTap(px.adminUrl, '?route=api');
    await waitFor('subscribed', () => px.proxy.tap.subscribers === 1);
    await request(`${px.url('main')}/api/before-reload`);
    await waitFor('first line', () => t.lines.length === 1);
    px.write(upstreamConfig(up).replace('maxRetries: 1', 'maxRetries: 2'));
    const r = await px.proxy.reload('test');
    assert.equal(r.result, 'success', r.errors.join('\n'));
    await request(`${px.url('main')}/api/after-reload`);
    await waitFor('second line', () => t.lines.length === 2);
    assert.deepEqual(t.lines.map((l) => l['path']), ['/api/before-reload', '/api/after-reload']);
    t.close();
    await waitFor('gone', () => px.proxy.tap.subscribers === 0);
  });

  it('HEAD /tap answers the headers and subscribes nobody', async () => {
    const r = await request(`${px.adminUrl}/tap`, { method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/x-ndjson');
    assert.equal(px.proxy.tap.subscribers, 0);
  });

  it('subscribers coming and going under traffic leave nothing behind', async () => {
    let stop = false;
    const traffic = (async () => {
      while (!stop) await request(`${px.url('main')}/api/churn`).catch(() => undefined);
    })();
    for (let round = 0; round < 10; round++) {
      await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          new Promise<void>((resolve) => {
            const req = http.get(`${px.adminUrl}/tap${i % 2 === 0 ? '?status=2xx' : ''}`, { agent: false }, (res) => {
              res.resume();
              // Some leave at once, some after a line or two.
              setTimeout(() => req.destroy(), i * 5);
              res.on('close', () => resolve());
            });
            req.on('error', () => resolve());
            if (i === 5) setImmediate(() => req.destroy()); // before the answer, sometimes
          }),
        ),
      );
    }
    stop = true;
    await traffic;
    await waitFor('every subscriber gone', () => px.proxy.tap.subscribers === 0);
    assert.equal(px.proxy.tap.active, false);
  });

  it('refuses a bad filter with 400 and a message', async () => {
    const r = await request(`${px.adminUrl}/tap?status=9xx`);
    assert.equal(r.status, 400);
    assert.equal(json(r).error, 'bad_filter');
    assert.match(json(r).message, /9xx/);
  });

  it('holds at most 8 subscribers; the 9th gets 503 tap_full until one leaves', async () => {
    const taps = await Promise.all(Array.from({ length: 8 }, () => openTap(px.adminUrl)));
    assert.ok(taps.every((t) => t.status === 200));
    const ninth = await request(`${px.adminUrl}/tap`);
    assert.equal(ninth.status, 503);
    assert.equal(json(ninth).error, 'tap_full');
    assert.equal(json(ninth).limit, 8);
    assert.match(json(ninth).message, /8 tap subscribers/);
    taps[0]!.close();
    await waitFor('one left', () => px.proxy.tap.subscribers === 7);
    const again = await openTap(px.adminUrl);
    assert.equal(again.status, 200);
    for (const t of [...taps, again]) t.close();
    await waitFor('all gone', () => px.proxy.tap.subscribers === 0);
  });

  it('drops a subscriber that never reads, once 1 MiB is waiting for it, and closes its socket', async () => {
    const sock = net.connect(px.proxy.admin!.port, '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write('GET /tap HTTP/1.1\r\nhost: x\r\n\r\n');
    await waitFor('subscribed', () => px.proxy.tap.subscribers === 1);
    sock.pause(); // never reads again
    sock.on('error', () => {});
    const dropped = px.proxy.tap.dropped;
    // ~4 KiB lines; the kernel's socket buffers take the first few MiB.
    const pad = 'p'.repeat(4000);
    let sent = 0;
    while (px.proxy.tap.dropped === dropped && sent < 20_000) {
      await Promise.all(Array.from({ length: 20 }, () => request(`${px.url('main')}/web/${pad}`)));
      sent += 20;
    }
    assert.equal(px.proxy.tap.dropped, dropped + 1, `dropped after ${sent} requests`);
    assert.equal(px.proxy.tap.subscribers, 0);
    const drop = px.logs.find((l) => l.msg === 'tap_dropped')!;
    assert.equal(drop['limit'], 1024 * 1024);
    assert.ok((drop['buffered'] as number) <= 1024 * 1024, 'never more than the bound waited for it');
    // Our paused socket cannot see the close; the server's side can.
    const connections = () => new Promise<number>((r) => px.proxy.admin!.server.getConnections((_e, n) => r(n)));
    await waitFor('the server closed the dropped connection', async () => (await connections()) === 0, 4_000);
    sock.destroy();
    // The hub is quiet again: nothing built for nobody.
    const offered = px.proxy.tap.offered;
    await request(`${px.url('main')}/web/x`);
    assert.equal(px.proxy.tap.offered, offered);
  });

  it('is not cut by the admin requestTimeout (10 s): requestTimeout bounds receiving the request only', async () => {
    const t = await openTap(px.adminUrl);
    await sleep(11_000);
    await request(`${px.url('main')}/api/late`);
    await waitFor('line after 11 s', () => t.lines.length === 1);
    assert.equal(t.ended, false);
    t.close();
    await waitFor('gone', () => px.proxy.tap.subscribers === 0);
  });
});

describe('GET /tap with the access log off, and at shutdown', () => {
  const baseline = snapshotHandles();
  let up: Upstream;
  before(async () => {
    up = await startUpstream({ status: 200 });
  });
  after(async () => {
    await up.close();
    await assertNoLeaks(baseline);
  });

  it('still streams with log.access false (the line is built only for the tap), and ends streams on drain', async () => {
    const px = await startProxy(upstreamConfig(up, 'log: { access: false }\ndrain: { delay: 0s, timeout: 1s }'));
    try {
      const t = await openTap(px.adminUrl);
      await waitFor('subscribed', () => px.proxy.tap.subscribers === 1);
      await request(`${px.url('main')}/api/one`);
      await waitFor('line', () => t.lines.length === 1);
      assert.equal(t.lines[0]!['path'], '/api/one');
      assert.equal(px.requests().length, 0, 'the access log stays off');
      await px.proxy.drain();
      await waitFor('stream ended', () => t.ended);
      assert.deepEqual(t.lines.at(-1), { tap: 'end', reason: 'shutdown' });
      assert.equal(px.proxy.tap.subscribers, 0);
    } finally {
      await px.close();
    }
  });
});
