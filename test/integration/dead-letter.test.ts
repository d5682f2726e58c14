import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { json, request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { freePort, waitFor } from '../helpers/wait.ts';
import { startUpstream } from '../helpers/upstream.ts';
import { SpoolStore } from '../../src/dead-letter/store.ts';
import { scrapedValue } from '../helpers/metrics.ts';

/** An upstream that can die (stop listening) and come back on the same port, recording what it accepted. */
class MortalUpstream {
  readonly delivered: { id: string; headers: http.IncomingHttpHeaders }[] = [];
  readonly #server: http.Server;
  port = 0;
  constructor(status = 200) {
    this.#server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method !== 'GET') this.delivered.push({ id: Buffer.concat(chunks).toString('utf8'), headers: req.headers });
        res.writeHead(status, { 'content-type': 'text/plain' });
        res.end('ok');
      });
    });
  }
  async up(): Promise<void> {
    // Its port is set aside once (see freePort): a port-0 port it let go while down could be taken by another test's server.
    if (this.port === 0) this.port = await freePort();
    return new Promise((resolve) => this.#server.listen(this.port, '127.0.0.1', () => {
      this.port = (this.#server.address() as { port: number }).port;
      resolve();
    }));
  }
  down(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
  get listening(): boolean {
    return this.#server.listening;
  }
}

function count<T>(xs: readonly T[]): Map<T, number> {
  const m = new Map<T, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
}

const metric = (px: TestProxy, series: string): Promise<number> => scrapedValue(px.adminUrl, series);

describe('dead-letter spool (SPEC §11.1)', () => {
  const baseline = snapshotHandles();
  let dir: string;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'bw-dl-'));
  });

  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await assertNoLeaks(baseline);
  });

  it('an upstream that dies mid-run: every POST is delivered or spooled, and after the breaker closes each is delivered exactly once', async () => {
    const up = new MortalUpstream();
    await up.up();
    const px = await startProxy(
      `
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: pay
    address: 127.0.0.1:0
    routes:
      - name: payments
        upstream: payments
        deadLetter: { path: ${dir}/outage.db, replay: { auto: true, rate: 200/s } }
upstreams:
  payments:
    url: http://127.0.0.1:${up.port}
    timeout: { connect: 300ms, total: 3s }
    retry: { maxRetries: 0 }
    requestHeaders: { set: { authorization: "Bearer \${TOKEN}" } }
    circuitBreaker: { consecutiveFailures: 3, openDuration: 400ms }
`,
      { TOKEN: 'sekret-1' },
    );
    try {
      const answered = new Map<string, string | null>();
      for (let i = 0; i < 24; i++) {
        if (i === 8) await up.down();
        const id = `order-${i}`;
        const r = await request(`${px.url('pay')}/charge?n=${i}`, { method: 'POST', body: id, headers: { cookie: 'session=abc', 'content-type': 'text/plain' } });
        if (r.status === 200) answered.set(id, null);
        else {
          assert.ok([503].includes(r.status), `status ${r.status}`);
          const dl = r.headers['x-breakwater-dead-letter'];
          assert.equal(typeof dl, 'string', `POST ${id} failed (${r.status}) without a dead-letter id`);
          answered.set(id, dl as string);
        }
      }
      const spooled = [...answered.values()].filter((v) => v !== null);
      assert.equal(spooled.length, 16);
      const list = json(await request(`${px.adminUrl}/dead-letters?route=payments`));
      assert.equal(list.count, 16);
      assert.deepEqual(new Set(list.entries.map((e: { id: string }) => e.id)), new Set(spooled));
      assert.ok(list.entries.some((e: { reason: string }) => e.reason === 'connect_failure'));
      assert.ok(list.entries.some((e: { reason: string }) => e.reason === 'circuit_open'));
      // Nothing secret was stored: not the client's cookie, not the injected credential.
      const one = json(await request(`${px.adminUrl}/dead-letters/${spooled[0]}`));
      const names = one.headers.map(([n]: [string]) => n);
      assert.ok(!names.includes('cookie') && !names.includes('authorization'), names.join(','));
      assert.equal(one.body, 'order-8');
      assert.equal(one.path, '/charge?n=8');
      assert.equal(await metric(px, 'breakwater_dead_letters{route="payments"}'), 16);

      // The upstream is back; live traffic probes the half-open breaker, it closes, replay follows.
      await up.up();
      await waitFor('the breaker to let a probe through', async () => (await request(`${px.url('pay')}/health`)).status === 200, 5000);
      await waitFor('every POST delivered', () => up.delivered.length >= 24, 10_000);
      await waitFor('the spool to be empty', async () => json(await request(`${px.adminUrl}/dead-letters`)).count === 0, 5000);
      const delivered = count(up.delivered.map((d) => d.id));
      assert.equal(delivered.size, 24, 'every POST reached the upstream');
      for (const [id, n] of delivered) assert.equal(n, 1, `${id} delivered ${n} times`);
      const replayed = up.delivered.slice(8);
      // Oldest first, each with an idempotency key and today's credential.
      assert.deepEqual(replayed.map((d) => d.id), spooled.map((_, i) => `order-${i + 8}`));
      for (const d of replayed) {
        assert.match(String(d.headers['idempotency-key']), /^[0-9a-f-]{36}$/);
        assert.equal(d.headers.authorization, 'Bearer sekret-1');
        assert.equal(d.headers.cookie, undefined);
      }
      assert.equal(await metric(px, 'breakwater_dead_letter_replays_total{route="payments",result="success"}'), 16);
      assert.equal(await metric(px, 'breakwater_dead_letters{route="payments"}'), 0);
      await px.waitForRequests(25); // 24 POSTs and at least one probe
      const lines = px.requests().filter((l) => Array.isArray(l.flags) && (l.flags as string[]).includes('dead_letter'));
      assert.equal(lines.length, 16);
    } finally {
      await px.close();
      if (up.listening) await up.down();
    }
  });

  it('a replay while the upstream still fails keeps the entry with its attempt count; the client’s idempotency key is kept', async () => {
    const up = new MortalUpstream();
    await up.up();
    await up.down(); // a port nobody listens on any more
    const px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: pay
    address: 127.0.0.1:0
    routes:
      - { name: r, upstream: u, deadLetter: { path: ${dir}/keep.db } }
upstreams:
  u: { url: "http://127.0.0.1:${up.port}", timeout: { connect: 300ms }, retry: { maxRetries: 0 } }
`);
    try {
      const r = await request(`${px.url('pay')}/x`, { method: 'PUT', body: 'v', headers: { 'idempotency-key': 'client-key-1' } });
      assert.equal(r.status, 503);
      const id = r.headers['x-breakwater-dead-letter'] as string;
      const replay = await request(`${px.adminUrl}/dead-letters/${id}/replay`, { method: 'POST' });
      assert.equal(replay.status, 502);
      assert.equal(json(replay).result, 'failure');
      const e = json(await request(`${px.adminUrl}/dead-letters/${id}`));
      assert.equal(e.attempts, 1);
      assert.match(e.lastError, /connect_failure/);
      assert.equal(e.idempotencyKey, 'client-key-1');
      // Now it works: replayed by hand, removed.
      await up.up();
      const ok = await request(`${px.adminUrl}/dead-letters/${id}/replay`, { method: 'POST' });
      assert.equal(ok.status, 200);
      assert.equal(up.delivered.length, 1);
      assert.equal(up.delivered[0]!.headers['idempotency-key'], 'client-key-1');
      assert.equal((await request(`${px.adminUrl}/dead-letters/${id}`)).status, 404);
      // GET is no body-bearing method: not spooled.
      await up.down();
      const g = await request(`${px.url('pay')}/x`);
      assert.equal(g.status, 503);
      assert.equal(g.headers['x-breakwater-dead-letter'], undefined);
    } finally {
      await px.close();
      if (up.listening) await up.down();
    }
  });

  it('bounds drop the oldest and count them; respond: accepted answers 202; a body over maxBodySize is not spooled', async () => {
    const up = new MortalUpstream();
    await up.up();
    await up.down();
    const px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: pay
    address: 127.0.0.1:0
    routes:
      - { name: r, upstream: u, deadLetter: { path: ${dir}/bounds.db, maxEntries: 3, maxBodySize: 1KiB, respond: accepted } }
upstreams:
  u: { url: "http://127.0.0.1:${up.port}", timeout: { connect: 300ms }, retry: { maxRetries: 0 } }
`);
    try {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await request(`${px.url('pay')}/q`, { method: 'POST', body: `m${i}` });
        assert.equal(r.status, 202);
        assert.deepEqual(json(r), { deadLetter: r.headers['x-breakwater-dead-letter'] });
        assert.equal(r.headers['x-breakwater-fallback'], undefined);
        ids.push(json(r).deadLetter);
      }
      const list = json(await request(`${px.adminUrl}/dead-letters`));
      assert.deepEqual(list.entries.map((e: { id: string }) => e.id), ids.slice(2));
      assert.equal(await metric(px, 'breakwater_dead_letters_dropped_total{route="r",reason="max_entries"}'), 2);
      assert.ok(px.logs.some((l) => l.msg === 'dead_letters_dropped' && l.reason === 'max_entries'));
      const big = await request(`${px.url('pay')}/q`, { method: 'POST', body: 'x'.repeat(4096) });
      assert.equal(big.status, 503);
      assert.equal(big.headers['x-breakwater-dead-letter'], undefined);
      assert.equal(await metric(px, 'breakwater_dead_letters_dropped_total{route="r",reason="too_large"}'), 1);
      // Delete by hand.
      const del = await request(`${px.adminUrl}/dead-letters/${ids[4]}`, { method: 'DELETE' });
      assert.equal(del.status, 200);
      assert.equal(json(await request(`${px.adminUrl}/dead-letters`)).count, 2);
    } finally {
      await px.close();
    }
  });

  it('an unwritable spool path: the request is answered as without a spool, the error logged and counted', async () => {
    const up = new MortalUpstream();
    await up.up();
    await up.down();
    const px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: pay
    address: 127.0.0.1:0
    routes:
      - { name: r, upstream: u, deadLetter: { path: /dev/null/spool.db } }
upstreams:
  u: { url: "http://127.0.0.1:${up.port}", timeout: { connect: 300ms }, retry: { maxRetries: 0 } }
`);
    try {
      const r = await request(`${px.url('pay')}/q`, { method: 'POST', body: 'x' });
      assert.equal(r.status, 503);
      assert.equal(json(r).error, 'connect_failure');
      assert.equal(r.headers['x-breakwater-dead-letter'], undefined);
      assert.equal(await metric(px, 'breakwater_dead_letters_dropped_total{route="r",reason="write_error"}'), 1);
      const err = px.logs.find((l) => l.msg === 'dead_letters_dropped' && l.reason === 'write_error');
      assert.match(String(err?.error), /\/dev\/null\/spool\.db: cannot open/);
      const list = await request(`${px.adminUrl}/dead-letters`);
      assert.equal(list.status, 503);
    } finally {
      await px.close();
    }
  });
  it('concurrent replays (all, twice, and each entry by id) deliver every entry exactly once', async () => {
    const up = new MortalUpstream();
    await up.up();
    await up.down();
    const px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: pay
    address: 127.0.0.1:0
    routes:
      - { name: r, upstream: u, deadLetter: { path: ${dir}/race.db, replay: { rate: 1000/s } } }
upstreams:
  u: { url: "http://127.0.0.1:${up.port}", timeout: { connect: 300ms }, retry: { maxRetries: 0 } }
`);
    try {
      const ids: string[] = [];
      for (let i = 0; i < 10; i++) ids.push((await request(`${px.url('pay')}/o`, { method: 'POST', body: `e${i}` })).headers['x-breakwater-dead-letter'] as string);
      await up.up();
      const calls = [
        request(`${px.adminUrl}/dead-letters/replay`, { method: 'POST' }),
        request(`${px.adminUrl}/dead-letters/replay?route=r`, { method: 'POST' }),
        ...ids.map((id) => request(`${px.adminUrl}/dead-letters/${id}/replay`, { method: 'POST' })),
      ];
      const answers = await Promise.all(calls);
      for (const a of answers.slice(2)) assert.ok([200, 404, 409].includes(a.status), `${a.status} ${a.body}`);
      const delivered = count(up.delivered.map((d) => d.id));
      assert.equal(delivered.size, 10);
      for (const [id, n] of delivered) assert.equal(n, 1, `${id} delivered ${n} times`);
      assert.equal(json(await request(`${px.adminUrl}/dead-letters`)).count, 0);
    } finally {
      await px.close();
      if (up.listening) await up.down();
    }
  });

  it('a request the fallback rescued is not spooled; the spool survives a reload, and an entry whose route is gone stays', async () => {
    const up = new MortalUpstream();
    await up.up();
    await up.down();
    const yaml = (routes: string) => `
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: pay
    address: 127.0.0.1:0
    routes:
${routes}
upstreams:
  u: { url: "http://127.0.0.1:${up.port}", timeout: { connect: 300ms }, retry: { maxRetries: 0 } }
  rescued:
    url: "http://127.0.0.1:${up.port}"
    timeout: { connect: 300ms }
    retry: { maxRetries: 0 }
    fallback: { response: { status: 200, body: degraded } }
`;
    const both = `      - { name: kept, match: { pathPrefix: /kept }, upstream: u, deadLetter: { path: ${dir}/reload.db } }
      - { name: rescue, match: { pathPrefix: /rescue }, upstream: rescued, deadLetter: { path: ${dir}/reload.db } }
      - { name: gone, upstream: u, deadLetter: { path: ${dir}/reload.db } }`;
    const px = await startProxy(yaml(both));
    try {
      const rescued = await request(`${px.url('pay')}/rescue`, { method: 'POST', body: 'r' });
      assert.equal(rescued.status, 200);
      assert.equal(rescued.body, 'degraded');
      assert.equal(rescued.headers['x-breakwater-dead-letter'], undefined);
      const kept = (await request(`${px.url('pay')}/kept`, { method: 'POST', body: 'k' })).headers['x-breakwater-dead-letter'] as string;
      const orphan = (await request(`${px.url('pay')}/other`, { method: 'POST', body: 'o' })).headers['x-breakwater-dead-letter'] as string;
      assert.equal(typeof kept, 'string');
      assert.equal(typeof orphan, 'string');
      px.write(yaml(`      - { name: kept, upstream: u, deadLetter: { path: ${dir}/reload.db, maxEntries: 5 } }`));
      assert.equal(json(await request(`${px.adminUrl}/reload`, { method: 'POST' })).result, 'success');
      const ids = json(await request(`${px.adminUrl}/dead-letters`)).entries.map((e: { id: string }) => e.id);
      assert.deepEqual(ids, [kept, orphan], 'both entries are still there after the reload');
      const r = await request(`${px.adminUrl}/dead-letters/${orphan}/replay`, { method: 'POST' });
      assert.equal(r.status, 409);
      assert.equal(json(r).result, 'no_route');
      // The route still configured spools into the same, still open, file.
      const again = await request(`${px.url('pay')}/kept`, { method: 'POST', body: 'k2' });
      assert.equal(typeof again.headers['x-breakwater-dead-letter'], 'string');
      assert.equal(json(await request(`${px.adminUrl}/dead-letters?route=kept`)).count, 2);
    } finally {
      await px.close();
    }
  });
  it('an upstream status listed in `on` is spooled and the upstream’s own answer goes back with the id', async () => {
    const up = new MortalUpstream(503);
    await up.up();
    const px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: pay
    address: 127.0.0.1:0
    routes:
      - { name: r, upstream: u, deadLetter: { path: ${dir}/status.db, on: [503] } }
upstreams:
  u: { url: "http://127.0.0.1:${up.port}", retry: { maxRetries: 0 } }
`);
    try {
      const r = await request(`${px.url('pay')}/o`, { method: 'PATCH', body: 'p' });
      assert.equal(r.status, 503);
      assert.equal(r.body, 'ok', 'the upstream’s body, unchanged');
      assert.equal(r.headers['x-breakwater-error'], undefined);
      const id = r.headers['x-breakwater-dead-letter'] as string;
      assert.equal(typeof id, 'string');
      assert.equal(json(await request(`${px.adminUrl}/dead-letters/${id}`)).reason, 'status');
      // A connect failure is not in this route's `on`: not spooled.
      await up.down();
      const c = await request(`${px.url('pay')}/o`, { method: 'POST', body: 'p' });
      assert.equal(c.status, 503);
      assert.equal(c.headers['x-breakwater-dead-letter'], undefined);
    } finally {
      await px.close();
      if (up.listening) await up.down();
    }
  });
  it('a burst of failures is spooled whole: 60 concurrent POSTs, 60 ids, 60 entries', async () => {
    const up = new MortalUpstream();
    await up.up();
    await up.down();
    const px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: pay
    address: 127.0.0.1:0
    routes:
      - { name: r, upstream: u, deadLetter: { path: ${dir}/burst.db } }
upstreams:
  u: { url: "http://127.0.0.1:${up.port}", timeout: { connect: 300ms }, retry: { maxRetries: 0 } }
`);
    try {
      const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => request(`${px.url('pay')}/b`, { method: 'POST', body: `burst-${i}` })));
      const ids = answers.map((a) => a.headers['x-breakwater-dead-letter']);
      assert.ok(ids.every((id) => typeof id === 'string'));
      assert.equal(new Set(ids).size, 60);
      const list = json(await request(`${px.adminUrl}/dead-letters`));
      assert.equal(list.count, 60);
      assert.equal(await metric(px, 'breakwater_dead_letters_total{route="r",reason="connect_failure"}'), 60);
    } finally {
      await px.close();
    }
  });
  it('maxAge removes old entries of an idle spool when it is looked at, and counts them', async () => {
    const up = new MortalUpstream();
    await up.up();
    await up.down();
    const px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: pay
    address: 127.0.0.1:0
    routes:
      - { name: r, upstream: u, deadLetter: { path: ${dir}/age.db, maxAge: 300ms } }
upstreams:
  u: { url: "http://127.0.0.1:${up.port}", timeout: { connect: 300ms }, retry: { maxRetries: 0 } }
`);
    try {
      const r = await request(`${px.url('pay')}/a`, { method: 'POST', body: 'old' });
      assert.equal(typeof r.headers['x-breakwater-dead-letter'], 'string');
      assert.equal(json(await request(`${px.adminUrl}/dead-letters`)).count, 1);
      await waitFor('the entry to age out', async () => json(await request(`${px.adminUrl}/dead-letters`)).count === 0, 5000);
      assert.equal(await metric(px, 'breakwater_dead_letters_dropped_total{route="r",reason="max_age"}'), 1);
      assert.equal(await metric(px, 'breakwater_dead_letters{route="r"}'), 0);
    } finally {
      await px.close();
    }
  });
  it('shutdown during a replay to a hanging upstream stops at once and keeps the entry', async () => {
    const down = new MortalUpstream();
    await down.up();
    await down.down();
    const px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: pay
    address: 127.0.0.1:0
    routes:
      - { name: r, upstream: u, deadLetter: { path: ${dir}/shutdown.db } }
upstreams:
  u: { url: "http://127.0.0.1:${down.port}", timeout: { connect: 300ms, total: 30s }, retry: { maxRetries: 0 } }
`);
    const hang = await startUpstream({ hang: true });
    let closed = false;
    try {
      const id = (await request(`${px.url('pay')}/h`, { method: 'POST', body: 'h' })).headers['x-breakwater-dead-letter'] as string;
      // The upstream comes back on another port and hangs: a reload points the route at it.
      px.write((await import('node:fs')).readFileSync(px.file, 'utf8').replace(`127.0.0.1:${down.port}`, `127.0.0.1:${hang.port}`));
      assert.equal(json(await request(`${px.adminUrl}/reload`, { method: 'POST' })).result, 'success');
      const replay = request(`${px.adminUrl}/dead-letters/${id}/replay`, { method: 'POST' }).catch(() => null);
      await waitFor('the replay to reach the upstream', () => hang.requests.length === 1, 5000);
      const t0 = Date.now();
      await px.close();
      closed = true;
      assert.ok(Date.now() - t0 < 5000, `close took ${Date.now() - t0} ms`);
      await replay;
      const store = new SpoolStore(`${dir}/shutdown.db`);
      try {
        assert.equal(store.get(id)?.body.toString(), 'h', 'the entry is still there');
        assert.equal(store.claim(id), true, 'and free to be replayed by the next process');
      } finally {
        store.close();
      }
    } finally {
      if (!closed) await px.close();
      await hang.close();
    }
  });
  it('an HTTP/2 (h2c) client gets the dead-letter id too, and the 202 of respond: accepted', async () => {
    const up = new MortalUpstream();
    await up.up();
    await up.down();
    const px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: pay
    address: 127.0.0.1:0
    routes:
      - { name: err, match: { pathPrefix: /err }, upstream: u, deadLetter: { path: ${dir}/h2.db } }
      - { name: acc, upstream: u, deadLetter: { path: ${dir}/h2.db, respond: accepted } }
upstreams:
  u: { url: "http://127.0.0.1:${up.port}", timeout: { connect: 300ms }, retry: { maxRetries: 0 } }
`);
    const session = http2.connect(px.url('pay'));
    const post = (path: string): Promise<{ status: number; id: unknown; body: string }> =>
      new Promise((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'text/plain' });
        let body = '';
        let head: http2.IncomingHttpHeaders = {};
        req.on('response', (h) => (head = h));
        req.setEncoding('utf8');
        req.on('data', (c: string) => (body += c));
        req.on('end', () => resolve({ status: Number(head[':status']), id: head['x-breakwater-dead-letter'], body }));
        req.on('error', reject);
        req.end('over h2');
      });
    try {
      const e = await post('/err/1');
      assert.equal(e.status, 503);
      assert.equal(typeof e.id, 'string');
      const a = await post('/acc/1');
      assert.equal(a.status, 202);
      assert.deepEqual(JSON.parse(a.body), { deadLetter: a.id });
      assert.equal(json(await request(`${px.adminUrl}/dead-letters/${a.id}`)).body, 'over h2');
    } finally {
      session.close();
      await px.close();
    }
  });
});
