/**
 * Dead-letter replay at its edges (SPEC §11.1), each found by the final
 * review: a shutdown while a manual replay reads the upstream's 2xx must not
 * leave the entry for the next process to send again; manual and automatic
 * passes of one route never overlap; a broken percent-encoding in an admin
 * path is a 400, not a 500.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SpoolStore } from '../../src/dead-letter/store.ts';
import { request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy } from '../helpers/proxy.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

/** An upstream that refuses (503) until told to accept; accepted bodies are recorded with the time and how many were in flight. */
class Upstream {
  mode: 'fail' | 'ok' | 'slow-body' = 'fail';
  readonly got: { body: string; at: number }[] = [];
  inflight = 0;
  maxInflight = 0;
  readonly server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (this.mode === 'fail') {
        res.writeHead(503);
        res.end('down');
        return;
      }
      this.got.push({ body: Buffer.concat(chunks).toString(), at: Date.now() });
      this.inflight++;
      this.maxInflight = Math.max(this.maxInflight, this.inflight);
      if (this.mode === 'slow-body') {
        // The 2xx head now, the rest of the body much later.
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('accepted;');
        setTimeout(() => {
          this.inflight--;
          res.end('done');
        }, 1500);
        return;
      }
      setTimeout(() => {
        this.inflight--;
        res.writeHead(200);
        res.end('ok');
      }, 50);
    });
  });
  port = 0;
  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

describe('dead-letter replay edges', () => {
  const baseline = snapshotHandles();
  let dir: string;
  let up: Upstream;
  const cfg = (spool: string, auto: boolean) => `
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: pay
    address: 127.0.0.1:0
    routes:
      - name: payments
        upstream: payments
        deadLetter: { path: "${spool}", on: [503], replay: { auto: ${auto}, rate: 5/s } }
upstreams:
  payments:
    url: http://127.0.0.1:${up.port}
    retry: { maxRetries: 0 }
`;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bw-dl-edges-'));
    up = new Upstream();
    await up.start();
  });

  after(async () => {
    await up.close();
    rmSync(dir, { recursive: true, force: true });
    await assertNoLeaks(baseline);
  });

  it('a shutdown while a manual replay reads the upstream’s 2xx: the entry is removed, the next process sends nothing', async () => {
    up.mode = 'fail';
    up.got.length = 0;
    const spool = path.join(dir, 'shutdown.db');
    const px = await startProxy(cfg(spool, false));
    const r1 = await request(`${px.url('pay')}/charge`, { method: 'POST', body: 'order-1' });
    const id = r1.headers['x-breakwater-dead-letter'] as string;
    assert.equal(typeof id, 'string');
    up.mode = 'slow-body';
    const replay = request(`${px.adminUrl}/dead-letters/${id}/replay`, { method: 'POST' }).then(
      (r) => r.status,
      () => 0,
    );
    await waitFor('the upstream took the replay', () => up.got.length === 1, 5_000);
    await px.close();
    await replay;
    const s = new SpoolStore(spool);
    assert.deepEqual(s.list().map((e) => e.id), [], 'delivered: not left for the next process');
    s.close();
    await waitFor('the slow body ended', () => up.inflight === 0, 5_000);
  });

  it('a manual replay-all while the automatic pass runs: one replay at a time, oldest first, at replay.rate', async () => {
    up.mode = 'fail';
    up.got.length = 0;
    up.maxInflight = 0;
    const spool = path.join(dir, 'passes.db');
    const px = await startProxy(cfg(spool, false));
    try {
      for (let i = 0; i < 6; i++) await request(`${px.url('pay')}/charge`, { method: 'POST', body: `order-${i}` });
      up.mode = 'ok';
      // The reload's commit starts the automatic pass; two manual replay-alls join in.
      px.write(cfg(spool, true));
      assert.equal((await request(`${px.adminUrl}/reload`, { method: 'POST' })).status, 200);
      await sleep(50);
      const answers = await Promise.all([1, 2].map(() => request(`${px.adminUrl}/dead-letters/replay`, { method: 'POST' })));
      assert.deepEqual(answers.map((a) => a.status), [200, 200]);
      await waitFor('all six delivered', () => up.got.length >= 6, 10_000);
      await sleep(300);
      assert.deepEqual(up.got.map((g) => g.body), ['order-0', 'order-1', 'order-2', 'order-3', 'order-4', 'order-5'], 'each once, oldest first');
      assert.equal(up.maxInflight, 1, 'never two replays of the route at once');
      // 5/s: a gap of ~200 ms between sends (wide margin for a loaded machine).
      const gaps = up.got.slice(1).map((g, i) => g.at - up.got[i]!.at);
      assert.ok(gaps.every((g) => g >= 120), `gaps ${gaps.join(',')}`);
    } finally {
      await px.close();
    }
  });

  it('a broken percent-encoding in an admin path is a 400 and no internal error', async () => {
    const px = await startProxy(cfg(path.join(dir, 'pct.db'), false));
    try {
      for (const [method, p] of [
        ['GET', '/dead-letters/%E0'],
        ['DELETE', '/dead-letters/%E0'],
        ['POST', '/dead-letters/%E0/replay'],
        ['POST', '/upstreams/%E0/circuit'],
      ] as const) {
        const r = await request(`${px.adminUrl}${p}`, { method, ...(method === 'POST' && p.endsWith('circuit') ? { body: '{"state":"open"}' } : {}) });
        assert.equal(r.status, 400, `${method} ${p}`);
      }
      assert.ok(!px.logs.some((l) => l.msg === 'admin_error'));
    } finally {
      await px.close();
    }
  });
});
