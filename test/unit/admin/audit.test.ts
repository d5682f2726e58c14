import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { argumentsOf, recordBody } from '../../../src/admin/audit.ts';
import { TokenCheck } from '../../../src/admin/auth.ts';

/** Only identity matters to argumentsOf: bodies are keyed by the request object. */
const req = (body?: string): IncomingMessage => {
  const r = {} as IncomingMessage;
  if (body !== undefined) recordBody(r, body, Buffer.byteLength(body));
  return r;
};

describe('admin call arguments for the audit line', () => {
  it('are null without query or body, and take both when present', () => {
    assert.equal(argumentsOf(req(), '', []), null);
    assert.deepEqual(argumentsOf(req('{"state":"open"}'), 'route=a&upstream=b', []), { query: { route: 'a', upstream: 'b' }, body: { state: 'open' } });
  });

  it('redact secret-looking keys at any depth, and any value holding the admin token', () => {
    const body = JSON.stringify({ password: 'p', nested: { apiKey: 'k', ok: 1, deeper: { Authorization: 'Bearer x' } }, note: 'has tok-ABCDEFGH in it' });
    assert.deepEqual(argumentsOf(req(body), 'session=abc&x=1', ['tok-ABCDEFGH']), {
      query: { session: '[redacted]', x: '1' },
      body: { password: '[redacted]', nested: { apiKey: '[redacted]', ok: 1, deeper: { Authorization: '[redacted]' } }, note: '[redacted]' },
    });
  });

  it('bound strings, keys, items and depth, and keep __proto__ a plain key', () => {
    const args = argumentsOf(req(JSON.stringify({ s: 'z'.repeat(500), list: Array.from({ length: 30 }, (_, i) => i), a: { b: { c: { d: 1 } } } })), '', []);
    const body = (args as { body: { s: string; list: unknown[]; a: unknown } }).body;
    assert.equal(body.s.length, 201);
    assert.equal(body.list.length, 21);
    assert.equal(body.list.at(-1), '…and 10 more');
    assert.deepEqual(body.a, { b: { c: '…' } });
    const proto = argumentsOf(req('{"__proto__":{"polluted":true}}'), '', []) as { body: Record<string, unknown> };
    assert.deepEqual(Object.keys(proto.body), ['__proto__']);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  });

  it('measure a body that is not JSON instead of copying it, and replace oversized arguments by their size', () => {
    assert.deepEqual(argumentsOf(req('state=open'), '', []), { body: { bytes: 10, json: false } });
    const wide = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, 'v'.repeat(200)]));
    const out = argumentsOf(req(JSON.stringify(wide)), '', []) as { truncated: boolean; chars: number };
    assert.equal(out.truncated, true);
    assert.ok(out.chars > 4096);
  });
});

describe('the admin token check', () => {
  const t = new TokenCheck();
  const TOKEN = 'a-token-of-some-length-123456';
  it('needs the token everywhere but GET/HEAD of the probe and scrape paths, and only when one is set', () => {
    assert.equal(TokenCheck.needed(null, 'POST', '/reload'), false);
    for (const p of ['/healthz', '/readyz', '/metrics']) {
      assert.equal(TokenCheck.needed(TOKEN, 'GET', p), false);
      assert.equal(TokenCheck.needed(TOKEN, 'HEAD', p), false);
      assert.equal(TokenCheck.needed(TOKEN, 'POST', p), true);
    }
    for (const p of ['/config', '/upstreams', '/reload', '/dead-letters', '/nope']) assert.equal(TokenCheck.needed(TOKEN, 'GET', p), true);
  });

  it('accepts exactly `Bearer <token>` (scheme in any case), and says why it refuses without echoing anything', () => {
    assert.deepEqual(t.check(TOKEN, `Bearer ${TOKEN}`), { ok: true });
    assert.deepEqual(t.check(TOKEN, `bEaReR ${TOKEN}`), { ok: true });
    assert.deepEqual(t.check(TOKEN, undefined), { ok: false, reason: 'missing' });
    assert.deepEqual(t.check(TOKEN, ''), { ok: false, reason: 'missing' });
    assert.deepEqual(t.check(TOKEN, TOKEN), { ok: false, reason: 'malformed' });
    assert.deepEqual(t.check(TOKEN, `Bearer ${TOKEN} extra`), { ok: false, reason: 'malformed' });
    assert.deepEqual(t.check(TOKEN, `Bearer ${TOKEN}x`), { ok: false, reason: 'invalid' });
    assert.deepEqual(t.check(TOKEN, `Bearer ${TOKEN.slice(0, -1)}`), { ok: false, reason: 'invalid' });
    assert.deepEqual(t.check(TOKEN, 'Bearer x'), { ok: false, reason: 'invalid' }, 'a short guess costs the same compare');
  });

  it('follows a rotated token', () => {
    assert.deepEqual(t.check('another-token-000000000', `Bearer ${TOKEN}`), { ok: false, reason: 'invalid' });
    assert.deepEqual(t.check('another-token-000000000', 'Bearer another-token-000000000'), { ok: true });
  });
});
