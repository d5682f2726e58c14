/**
 * The admin API under a storm (SPEC §11.3): concurrent calls with the right
 * token, none, a wrong one, a Basic one; changing calls and reloads while the
 * config file is rewritten underneath; callers that leave mid-body. After it:
 * the audit log holds exactly one line per call that reached the dispatcher —
 * every refusal, every changing call, every reload request (shared reloads
 * name all their requesters) — nothing acted on a half-sent body, the token
 * appears nowhere, and nothing leaks.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type LogLine, type TestProxy } from '../helpers/proxy.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { sleep, waitFor } from '../helpers/wait.ts';
import { drive, scaled, type RequestSpec } from './lib.ts';

const TOKEN = 'chaos-admin-TOKEN-5e1d9c3a7b';
const ENV = { ADMIN_TOKEN: TOKEN };
const ok = { authorization: `Bearer ${TOKEN}` };

const config = (origin: string, v: number) => `
version: 1
admin: { address: 127.0.0.1:0, token: "\${ADMIN_TOKEN}" }
listeners:
  - name: app
    address: 127.0.0.1:0
    routes:
      - { name: api, match: { pathPrefix: /api/ }, upstream: api }
      - { name: v${v % 3}, match: { pathPrefix: /v${v % 3}/ }, upstream: api }
upstreams:
  api:
    url: ${origin}
    circuitBreaker: { consecutiveFailures: 50 }
`;

/** What each request of the storm is, by index, and what the audit log must say of it. */
type Kind = 'read' | 'missing' | 'invalid' | 'malformed' | 'action' | 'reload' | 'unknown' | 'open';
const KINDS: readonly Kind[] = ['read', 'missing', 'invalid', 'action', 'malformed', 'reload', 'unknown', 'open'];
const spec = (k: Kind, i: number): RequestSpec => {
  switch (k) {
    case 'read':
      return { path: i % 2 === 0 ? '/config' : '/upstreams', headers: ok };
    case 'missing':
      return { path: '/config' };
    case 'invalid':
      // Wrong tokens of every length, one a prefix of the right one.
      return { path: '/upstreams', headers: { authorization: `Bearer ${i % 3 === 0 ? TOKEN.slice(0, -1) : 'x'.repeat(1 + (i % 90))}` } };
    case 'malformed':
      return { method: 'POST', path: '/upstreams/api/circuit', headers: { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` }, body: '{"state":"open"}' };
    case 'action':
      return { method: 'POST', path: `/upstreams/api/circuit?i=${i}`, headers: ok, body: '{"state":"auto"}' };
    case 'reload':
      return { method: 'POST', path: '/reload', headers: ok };
    case 'unknown':
      return { method: 'DELETE', path: `/dead-letters/${i}`, headers: ok };
    case 'open':
      return { path: i % 2 === 0 ? '/metrics' : '/readyz' };
  }
};

describe('the admin API under a storm of calls', () => {
  let up: Upstream;
  let px: TestProxy;
  const baseline = snapshotHandles();

  before(async () => {
    up = await startUpstream({ status: 200, body: 'fine' });
    px = await startProxy(config(up.origin, 0), ENV);
  });
  after(async () => {
    await px?.close();
    await up?.close();
    await assertNoLeaks(baseline, { settleMs: 2000 });
  });

  it('audits exactly one line per call that reached it, acts on no half-sent body, never logs the token', async (t) => {
    const n = scaled(240, 40);
    const from = px.logs.length;
    let writing = true;
    // The config changes under the reloads: some find a new file, some the same one.
    const writer = (async () => {
      for (let v = 1; writing; v++) {
        px.write(config(up.origin, v));
        await sleep(40);
      }
    })();
    // Callers that leave mid-body, with and without the token.
    const aborted = Array.from({ length: 16 }, async (_, j) => {
      await sleep(j * 15);
      const s = net.connect(Number(new URL(px.adminUrl).port), '127.0.0.1');
      s.on('error', () => {});
      await new Promise<void>((r) => s.once('connect', () => r()));
      const auth = j % 2 === 0 ? `authorization: Bearer ${TOKEN}\r\n` : '';
      s.write(`POST /upstreams/api/circuit HTTP/1.1\r\nhost: a\r\n${auth}content-type: application/json\r\ncontent-length: 100\r\n\r\n{"state":"op`);
      await sleep(30);
      s.destroy();
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const outcomes = await drive({ url: px.adminUrl, requests: n, concurrency: 8, agent, make: (i) => spec(KINDS[i % KINDS.length]!, i) });
    await Promise.all(aborted);
    writing = false;
    await writer;
    agent.destroy();

    const count = (k: Kind) => outcomes.filter((o) => KINDS[o.index % KINDS.length] === k).length;
    for (const o of outcomes) {
      assert.ok(o.complete, `call ${o.index} (${KINDS[o.index % KINDS.length]}) completed: ${o.error}`);
      const k = KINDS[o.index % KINDS.length]!;
      const want = { read: 200, missing: 401, invalid: 401, malformed: 401, action: 200, reload: 200, unknown: 404, open: 200 }[k];
      assert.equal(o.status, want, `call ${o.index} (${k})`);
    }
    // Every line is written when its answer is over; the aborted callers' when their sockets close.
    const expected = count('missing') + count('invalid') + count('malformed') + count('action') + count('unknown');
    await waitFor('every audit line', () => px.logs.slice(from).filter((l) => l.audit === true && l.msg !== 'config_change').length >= expected, 10_000);
    await sleep(300);
    const lines = px.logs.slice(from).filter((l) => l.audit === true);
    const by = (msg: string, f: (l: LogLine) => boolean = () => true) => lines.filter((l) => l.msg === msg && f(l));

    const abortedLines = by('admin_action', (l) => l.outcome === 'aborted');
    const refusedAborted = by('admin_unauthorized', (l) => l.path === '/upstreams/api/circuit' && l.reason === 'missing');
    t.diagnostic(`${n} calls, ${lines.length} audit lines; aborted callers seen: ${abortedLines.length} with the token, ${refusedAborted.length} without`);
    assert.equal(by('admin_unauthorized', (l) => l.reason === 'missing').length - refusedAborted.length, count('missing'));
    assert.equal(by('admin_unauthorized', (l) => l.reason === 'invalid').length, count('invalid'));
    assert.equal(by('admin_unauthorized', (l) => l.reason === 'malformed').length, count('malformed'));
    assert.ok(refusedAborted.length <= 8);
    assert.equal(by('admin_action', (l) => l.path === '/upstreams/api/circuit' && l.outcome === 'success').length, count('action'));
    assert.equal(by('admin_action', (l) => l.method === 'DELETE' && l.status === 404).length, count('unknown'));
    assert.ok(abortedLines.length <= 8);
    for (const l of abortedLines) {
      assert.equal(l.status, null);
      assert.deepEqual(l.args, { body: { bytes: 12, json: false } }, 'a half-sent body is measured, not parsed');
    }
    assert.equal(by('admin_action').length, count('action') + count('unknown') + abortedLines.length, 'no other admin_action line (none for reloads)');
    // Reloads: each request is in exactly one config_change line.
    const changes = by('config_change');
    const requesters = changes.flatMap((l) => [{ source: l.source }, ...((l.alsoRequestedBy as { source: string }[] | undefined) ?? [])]);
    assert.equal(requesters.length, count('reload'));
    assert.ok(requesters.every((r) => r.source === 'api'));
    assert.ok(changes.some((l) => l.result === 'success'), 'some reloads applied a new file');
    t.diagnostic(`${count('reload')} reload calls in ${changes.length} config_change lines (${changes.filter((l) => l.result === 'success').length} applied)`);

    // Nothing acted on a half-sent {"state":"op…: the breaker is not forced.
    const state = JSON.parse((await (await fetch(`${px.adminUrl}/upstreams`, { headers: ok })).text()) as string) as { api: { circuitBreaker: { state: string } } };
    assert.equal(state.api.circuitBreaker.state, 'closed');
    assert.equal((await fetch(`${px.adminUrl}/readyz`)).status, 200);
    assert.ok(!JSON.stringify(px.logs).includes(TOKEN), 'the token is in no log line');
  });
});
