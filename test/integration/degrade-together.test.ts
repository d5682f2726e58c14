/**
 * Steps 11–13 meeting on one proxy: the dead-letter endpoints behind the
 * admin token and the generic audit (SPEC §11.1 + §11.3), `/tap` behind the
 * token and seeing the spool's flag (§13), and a stale cache answer and a
 * spooled POST on the same upstream outage (§11.2 + §11.1). Each feature has
 * its own suite; this one checks the seams between them.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { json, request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type LogLine, type TestProxy } from '../helpers/proxy.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

const TOKEN = 'tok-7c1e9a3f5b2d8e4a6c0f9b1d';
const bearer = { authorization: `Bearer ${TOKEN}` };

describe('dead letters, cache, audit and tap together', () => {
  const baseline = snapshotHandles();
  let dir: string;
  let px: TestProxy;
  let upstream: http.Server;
  let port = 0;
  const audits = (from: number): LogLine[] => px.logs.slice(from).filter((l) => l.audit === true);

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bw-together-'));
    upstream = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=0' });
        res.end(`catalogue ${req.url}`);
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    port = (upstream.address() as { port: number }).port;
    px = await startProxy(
      `
version: 1
admin:
  address: 127.0.0.1:0
  token: \${ADMIN_TOKEN}
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: orders, match: { pathPrefix: /orders }, upstream: shop, deadLetter: { path: "${path.join(dir, 'spool.db')}" } }
      - { name: catalogue, match: { pathPrefix: /catalogue }, upstream: shop, cache: { staleIfError: 1m } }
upstreams:
  shop:
    url: http://127.0.0.1:${port}
    retry: { maxRetries: 0 }
`,
      { ADMIN_TOKEN: TOKEN },
    );
  });

  after(async () => {
    await px.close();
    if (upstream.listening) await new Promise<void>((r) => upstream.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
    await assertNoLeaks(baseline);
  });

  it('one outage: the GET is answered from the cache, the POST is spooled, and /tap shows both to a token holder', async () => {
    // A tap subscriber for the spool's flag, behind the token.
    assert.equal((await request(`${px.adminUrl}/tap?flag=dead_letter`)).status, 401, '/tap needs the token');
    const lines: string[] = [];
    const tap = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const r = http.get(`${px.adminUrl}/tap?flag=dead_letter`, { headers: bearer }, resolve);
      r.on('error', reject);
    });
    assert.equal(tap.statusCode, 200);
    tap.setEncoding('utf8');
    let buf = '';
    tap.on('data', (c: string) => {
      buf += c;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const l = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (l.trim() !== '') lines.push(l);
      }
    });

    assert.equal((await request(`${px.url('main')}/catalogue/shoes`)).status, 200, 'stored while healthy');
    // The upstream goes away: new connections are refused (connect_failure).
    await new Promise<void>((r) => {
      upstream.close(() => r());
      upstream.closeAllConnections();
    });
    const stale = await request(`${px.url('main')}/catalogue/shoes`);
    assert.equal(stale.status, 200);
    assert.equal(stale.headers['x-breakwater-fallback'], 'cache');
    assert.equal(stale.body, 'catalogue /catalogue/shoes');

    const post = await request(`${px.url('main')}/orders`, { method: 'POST', body: 'order 1' });
    assert.equal(post.status, 503);
    const id = post.headers['x-breakwater-dead-letter'];
    assert.equal(typeof id, 'string');

    await waitFor('the tap line of the spooled POST', () => lines.length >= 1, 5_000);
    await sleep(100);
    assert.equal(lines.length, 1, 'the filter passes the spooled POST only, not the stale GET');
    const line = JSON.parse(lines[0]!) as { route: string; flags: string[]; method: string };
    assert.equal(line.route, 'orders');
    assert.equal(line.method, 'POST');
    assert.ok(line.flags.includes('dead_letter'));
    tap.destroy();
  });

  it('the dead-letter endpoints need the token, and each call is one audit line', async () => {
    let from = px.logs.length;
    const refused = await request(`${px.adminUrl}/dead-letters`);
    assert.equal(refused.status, 401);
    await waitFor('the 401 audit line', () => audits(from).length >= 1, 5_000);
    await sleep(50);
    assert.deepEqual(audits(from).map((l) => l.msg), ['admin_unauthorized']);

    const list = json(await request(`${px.adminUrl}/dead-letters`, { headers: bearer })) as { entries: { id: string }[] };
    assert.equal(list.entries.length, 1);
    const id = list.entries[0]!.id;

    // Replay while the upstream still fails: kept. One audit line.
    from = px.logs.length;
    const replay = await request(`${px.adminUrl}/dead-letters/${id}/replay`, { method: 'POST', headers: bearer });
    assert.equal(replay.status, 502);
    await waitFor('the replay audit line', () => audits(from).length >= 1, 5_000);
    await sleep(50);
    const a = audits(from);
    assert.equal(a.length, 1);
    assert.equal(a[0]!.msg, 'admin_action');
    assert.equal(a[0]!['path'], `/dead-letters/${id}/replay`);
    assert.equal(a[0]!['status'], 502);

    // Delete: one line; the entry is gone; the token in no line.
    from = px.logs.length;
    assert.equal((await request(`${px.adminUrl}/dead-letters/${id}`, { method: 'DELETE', headers: bearer })).status, 200);
    await waitFor('the delete audit line', () => audits(from).length >= 1, 5_000);
    await sleep(50);
    assert.deepEqual(audits(from).map((l) => [l.msg, l['method']]), [['admin_action', 'DELETE']]);
    assert.equal((json(await request(`${px.adminUrl}/dead-letters`, { headers: bearer })) as { entries: unknown[] }).entries.length, 0);
    assert.ok(!JSON.stringify(px.logs).includes(TOKEN), 'the token is in no log line');
  });
});

describe('a rotated admin token cuts off the taps opened with the old one', () => {
  const baseline = snapshotHandles();

  it('the stream ends with {"tap":"end","reason":"token_changed"}; the old token opens no new one', async () => {
    const up = http.createServer((req, res) => {
      req.resume();
      res.end('ok');
    });
    await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
    const cfg = (variable: string) => `
version: 1
admin:
  address: 127.0.0.1:0
  token: \${${variable}}
listeners:
  - { name: main, address: 127.0.0.1:0, upstream: svc }
upstreams:
  svc: { url: "http://127.0.0.1:${(up.address() as { port: number }).port}" }
`;
    const OLD = 'old-token-0123456789abcdef';
    const px = await startProxy(cfg('TOKEN_A'), { TOKEN_A: OLD, TOKEN_B: 'new-token-fedcba9876543210' });
    try {
      const tap = await new Promise<http.IncomingMessage>((resolve, reject) => http.get(`${px.adminUrl}/tap`, { headers: { authorization: `Bearer ${OLD}` } }, resolve).on('error', reject));
      assert.equal(tap.statusCode, 200);
      let text = '';
      tap.setEncoding('utf8');
      tap.on('data', (c: string) => (text += c));
      const ended = new Promise<void>((r) => tap.on('end', r));
      px.write(cfg('TOKEN_B'));
      assert.equal((await px.proxy.reload('test')).result, 'success');
      await ended;
      const lines = text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.deepEqual(lines.at(-1), { tap: 'end', reason: 'token_changed' });
      assert.equal((await request(`${px.adminUrl}/tap`, { headers: { authorization: `Bearer ${OLD}` } })).status, 401);
    } finally {
      await px.close();
      await new Promise<void>((r) => up.close(() => r()));
      await assertNoLeaks(baseline);
    }
  });
});
