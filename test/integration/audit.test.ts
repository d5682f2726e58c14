/**
 * The audit log and the admin token (SPEC §11.3), in-process: exactly one
 * `audit: true` line per config load (start, each reload request by the admin
 * API, the file watch) and per changing admin call; 401 without the token,
 * audited; the token never in any log line, any answer, `/config`, or
 * `breakwater validate` output. SIGHUP and the CLI's start-up refusal are in
 * test/e2e/audit.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { describeConfig } from '../../src/config/describe.ts';
import { loadConfigText } from '../../src/config/load.ts';
import { watchConfig } from '../../src/config/watch.ts';
import { Proxy } from '../../src/runtime/proxy.ts';
import { json, request, type Reply } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type LogLine, type TestProxy } from '../helpers/proxy.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

const TOKEN = 'tok-3f9a1c7e5b2d8a4f6c0e9b1d7a3f5c2e';
const ROTATED = 'tok-rotated-81c4e2a9f7b3d5c1e6a8';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

const baseline = snapshotHandles();
after(async () => {
  await assertNoLeaks(baseline);
});

function config(port: number, opts: { extra?: string; inventoryTimeout?: string; token?: boolean; bad?: boolean } = {}): string {
  return `
version: 1
admin:
  address: 127.0.0.1:0
${opts.token === false ? '' : '  token: ${ADMIN_TOKEN}'}
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: pay, match: { pathPrefix: /pay/ }, upstream: payments }
      - { name: inv, match: { pathPrefix: /inv/ }, upstream: inventory }
${opts.extra === undefined ? '' : `      - { name: ${opts.extra}, match: { pathPrefix: /${opts.extra}/ }, upstream: ${opts.extra} }`}
upstreams:
  payments:
    url: http://127.0.0.1:${port}
    circuitBreaker: { consecutiveFailures: 5 }
    requestHeaders: { set: { authorization: "Bearer \${PAYMENTS_SECRET}" } }
  inventory:
    url: http://127.0.0.1:${port}
    timeout: { total: ${opts.inventoryTimeout ?? '5s'} }
${opts.extra === undefined ? '' : `  ${opts.extra}: { url: http://127.0.0.1:${port} }`}
${opts.bad === true ? '  broken: { url: not-a-url }' : ''}
`;
}

const audits = (px: TestProxy, from = 0): LogLine[] => px.logs.slice(from).filter((l) => l.audit === true);

describe('the audit log (SPEC §11.3)', () => {
  let up: Upstream;
  let px: TestProxy;
  const env: Record<string, string | undefined> = { ADMIN_TOKEN: TOKEN, PAYMENTS_SECRET: 'payments-secret-value-xyz' };
  const replies: Reply[] = [];
  const admin = async (path: string, opts: { method?: string; body?: string; token?: string | null } = {}): Promise<Reply> => {
    const t = opts.token === undefined ? (env['ADMIN_TOKEN'] ?? '') : opts.token;
    const r = await request(`${px.adminUrl}${path}`, { method: opts.method ?? 'GET', ...(opts.body === undefined ? {} : { body: opts.body }), headers: t === null ? {} : bearer(t) });
    replies.push(r);
    return r;
  };
  /** Waits for `n` audit lines after `from` (the admin line is written when the answer is over), then a little more to see no extra one. */
  const nextAudits = async (from: number, n: number): Promise<LogLine[]> => {
    await waitFor(`${n} audit line(s)`, () => audits(px, from).length >= n, 5_000);
    await sleep(50);
    return audits(px, from);
  };

  before(async () => {
    up = await startUpstream({ status: 200, body: 'ok' });
    px = await startProxy(config(up.port), env);
  });
  after(async () => {
    await px.close();
    await up.close();
    // Nothing anywhere ever carried the tokens or the injected secret.
    const everything = JSON.stringify(px.logs) + replies.map((r) => JSON.stringify(r.headers) + r.body).join('\n');
    for (const secret of [TOKEN, ROTATED, 'payments-secret-value-xyz']) assert.ok(!everything.includes(secret), `${secret.slice(0, 8)}… never appears in a log line or an answer`);
  });

  it('writes one config_change line at start: source start, no old hash, everything added', () => {
    const start = audits(px);
    assert.equal(start.length, 1);
    const l = start[0]!;
    assert.equal(l.msg, 'config_change');
    assert.equal(l.source, 'start');
    assert.equal(l.oldHash, null);
    assert.equal(l.newHash, px.proxy.config.source.hash);
    assert.equal(l.result, 'success');
    assert.deepEqual(l.changes, {
      upstreams: { added: ['payments', 'inventory'], removed: [], changed: [] },
      routes: { added: ['pay', 'inv'], removed: [], changed: [] },
      listeners: { added: ['main'], removed: [], changed: [] },
      settings: [],
    });
  });

  it('answers /healthz, /readyz and /metrics without the token, everything else 401 with WWW-Authenticate, each refusal audited', async () => {
    const from = px.logs.length;
    for (const p of ['/healthz', '/readyz', '/metrics']) assert.equal((await admin(p, { token: null })).status, 200, p);
    assert.equal(audits(px, from).length, 0, 'reads are not audited');
    const missing = await admin('/config', { token: null });
    assert.equal(missing.status, 401);
    assert.equal(missing.headers['www-authenticate'], 'Bearer realm="breakwater-admin"');
    assert.equal(json(missing).error, 'unauthorized');
    const wrong = await admin('/upstreams', { token: 'not-the-token-at-all-000000' });
    assert.equal(wrong.status, 401);
    assert.match(String(wrong.headers['www-authenticate']), /error="invalid_token"/);
    const basic = await request(`${px.adminUrl}/config`, { headers: { authorization: `Basic ${Buffer.from(`a:${TOKEN}`).toString('base64')}` } });
    assert.equal(basic.status, 401);
    const reload = await admin('/reload', { method: 'POST', token: null });
    assert.equal(reload.status, 401);
    const lines = await nextAudits(from, 4);
    assert.deepEqual(
      lines.map((l) => [l.msg, l.method, l.path, l.status, l.reason]),
      [
        ['admin_unauthorized', 'GET', '/config', 401, 'missing'],
        ['admin_unauthorized', 'GET', '/upstreams', 401, 'invalid'],
        ['admin_unauthorized', 'GET', '/config', 401, 'malformed'],
        ['admin_unauthorized', 'POST', '/reload', 401, 'missing'],
      ],
    );
    for (const l of lines) assert.equal(l.client, '127.0.0.1');
    assert.ok(!lines.some((l) => l.msg === 'config_change'), 'a refused reload reloads nothing');
    // With the token: answered.
    assert.equal((await admin('/config')).status, 200);
    assert.equal((await admin('/upstreams')).status, 200);
    assert.equal((await request(`${px.adminUrl}/config`, { headers: { authorization: `bearer   ${TOKEN}` } })).status, 200, 'the scheme is case-insensitive');
  });

  it('never shows the token or an injected secret in /config', async () => {
    const c = json(await admin('/config'));
    assert.equal(c.config.admin.token, '[redacted]');
    assert.equal(c.config.upstreams.payments.requestHeaders.set.authorization, '[redacted]');
  });

  it('audits each changing admin call once, after it is answered, with its arguments, result and client', async () => {
    const from = px.logs.length;
    assert.equal((await admin('/upstreams/payments/circuit', { method: 'POST', body: '{"state":"open","note":"drill"}' })).status, 200);
    assert.equal((await admin('/upstreams/payments/circuit', { method: 'POST', body: '{"state":"bogus"}' })).status, 400);
    assert.equal((await admin('/upstreams/nope/circuit?why=test', { method: 'POST', body: '{"state":"open"}' })).status, 404);
    assert.equal((await admin('/upstreams/payments/circuit', { method: 'POST', body: '{"state":"auto","token":"sneaky-value-in-body"}' })).status, 200);
    assert.equal((await admin('/no/such/thing', { method: 'DELETE' })).status, 404);
    const lines = await nextAudits(from, 5);
    assert.equal(lines.length, 5, 'one line per call');
    assert.ok(lines.every((l) => l.msg === 'admin_action' && l.client === '127.0.0.1'));
    const [open, bad, unknown, auto, del] = lines as [LogLine, LogLine, LogLine, LogLine, LogLine];
    assert.deepEqual([open.method, open.path, open.status, open.outcome], ['POST', '/upstreams/payments/circuit', 200, 'success']);
    assert.deepEqual(open.args, { body: { state: 'open', note: 'drill' } });
    assert.deepEqual(open.details, { action: 'force_circuit', upstream: 'payments', requested: 'open', from: 'closed', to: 'open' });
    assert.deepEqual([bad.status, bad.outcome], [400, 'bad_state']);
    assert.deepEqual([unknown.status, unknown.outcome, unknown.args], [404, 'unknown_upstream', { query: { why: 'test' }, body: { state: 'open' } }]);
    assert.deepEqual(auto.args, { body: { state: 'auto', token: '[redacted]' } }, 'secret-looking keys are redacted');
    assert.deepEqual([del.method, del.path, del.status, del.outcome, del.args], ['DELETE', '/no/such/thing', 404, 'not_found', null]);
    assert.ok(!JSON.stringify(lines).includes('sneaky-value-in-body'));
  });

  it('bounds what it records of a body: a large or non-JSON one is measured, not copied', async () => {
    const from = px.logs.length;
    await admin('/upstreams/payments/circuit', { method: 'POST', body: `not json ${'x'.repeat(100)}` });
    const large = JSON.stringify({ state: 'closed', big: 'y'.repeat(10_000) });
    await admin('/upstreams/payments/circuit', { method: 'POST', body: large });
    const [text, big] = (await nextAudits(from, 2)) as [LogLine, LogLine];
    assert.deepEqual(text.args, { body: { bytes: 109, json: false } });
    assert.deepEqual(big.args, { body: { bytes: Buffer.byteLength(large), json: false } }, 'past the reader’s 4 KiB the body is cut, so it is only measured');
    assert.ok(JSON.stringify(big).length < 1_000);
    await admin('/upstreams/payments/circuit', { method: 'POST', body: '{"state":"auto"}' });
  });

  it('a reload through the API is one config_change line naming the client, with both hashes and what changed', async () => {
    const before = px.proxy.config.source.hash;
    const text = config(up.port, { extra: 'ledger', inventoryTimeout: '7s' });
    px.write(text);
    const from = px.logs.length;
    const r = await admin('/reload', { method: 'POST' });
    assert.equal(r.status, 200);
    assert.equal(json(r).hash, sha256(text));
    const lines = await nextAudits(from, 1);
    assert.equal(lines.length, 1, 'no admin_action line beside it');
    const l = lines[0]!;
    assert.deepEqual([l.msg, l.source, l.client, l.result, l.oldHash, l.newHash], ['config_change', 'api', '127.0.0.1', 'success', before, sha256(text)]);
    assert.deepEqual(l.changes, {
      upstreams: { added: ['ledger'], removed: [], changed: ['inventory'] },
      routes: { added: ['ledger'], removed: [], changed: ['inv'] },
      listeners: { added: [], removed: [], changed: ['main'] },
      settings: [],
    });
  });

  it('an unchanged file is one line with result unchanged; a broken one is one line with the errors, and the old config keeps running', async () => {
    const running = px.proxy.config.source.hash;
    let from = px.logs.length;
    assert.equal((await admin('/reload', { method: 'POST' })).status, 200);
    let lines = await nextAudits(from, 1);
    assert.deepEqual(
      lines.map((l) => [l.source, l.result, l.oldHash, l.newHash, l.changes]),
      [['api', 'unchanged', running, running, undefined]],
    );
    const bad = config(up.port, { extra: 'ledger', inventoryTimeout: '7s', bad: true });
    px.write(bad);
    from = px.logs.length;
    const r = await admin('/reload', { method: 'POST' });
    assert.equal(r.status, 400);
    lines = await nextAudits(from, 1);
    assert.equal(lines.length, 1);
    const l = lines[0]!;
    assert.deepEqual([l.source, l.result, l.oldHash, l.newHash, l.level], ['api', 'failure', running, sha256(bad), 'warn']);
    assert.match((l.errors as string[]).join('\n'), /upstreams\.broken\.url/);
    assert.equal(json(await admin('/config')).hash, running, 'the old hash stays');
  });

  it('reload requests that arrive during a reload share the next one: every requester is in exactly one line', async () => {
    px.write(config(up.port, { extra: 'ledger', inventoryTimeout: '8s' }));
    const from = px.logs.length;
    const rs = await Promise.all([0, 1, 2, 3].map(() => admin('/reload', { method: 'POST' })));
    assert.ok(rs.every((r) => r.status === 200));
    const lines = await nextAudits(from, 1);
    assert.ok(lines.every((l) => l.msg === 'config_change'));
    const requesters = lines.flatMap((l) => [{ source: l.source, client: l.client }, ...((l.alsoRequestedBy as object[] | undefined) ?? [])]);
    assert.equal(requesters.length, 4, JSON.stringify(lines));
    assert.equal(lines.filter((l) => l.result === 'success').length, 1, 'one of them applied the change');
  });

  it('rotates the token on reload: the old one is refused from then on, and the line says admin.token changed, never its value', async () => {
    env['ADMIN_TOKEN'] = ROTATED;
    px.write(`${config(up.port, { extra: 'ledger', inventoryTimeout: '8s' })}\n# rotated\n`);
    const from = px.logs.length;
    const r = await admin('/reload', { method: 'POST', token: TOKEN });
    assert.equal(r.status, 200, 'the call that reloads is checked against the token it found');
    const [l] = await nextAudits(from, 1);
    assert.deepEqual((l!.changes as { settings: string[] }).settings, ['admin.token']);
    assert.equal((await admin('/config', { token: TOKEN })).status, 401);
    assert.equal((await admin('/config', { token: ROTATED })).status, 200);
  });

  it('lets a reload drop the token while the admin API listens on loopback', async () => {
    // Off loopback the same reload fails (Proxy#keepsAdminToken); tests bind loopback only, so that branch is not exercised here.
    px.write(config(up.port, { extra: 'ledger', inventoryTimeout: '8s', token: false }));
    const from = px.logs.length;
    assert.equal((await admin('/reload', { method: 'POST' })).status, 200);
    const [l] = await nextAudits(from, 1);
    assert.deepEqual((l!.changes as { settings: string[] }).settings, ['admin.token']);
    assert.equal((await admin('/config', { token: null })).status, 200, 'no token configured: open again, on loopback');
  });

  it('a reload by the file watch is one line with source watch; the watcher’s own re-checks of an unchanged file add none', async () => {
    const w = watchConfig(px.file, () => void px.proxy.reload('watch'), { debounceMs: 100, pollMs: 200 });
    try {
      await sleep(300);
      const before = px.proxy.config.source.hash;
      const text = config(up.port, { extra: 'audit', inventoryTimeout: '8s', token: false });
      const from = px.logs.length;
      // An editor's save: a temp file renamed over the config.
      writeFileSync(`${px.file}.tmp`, text);
      renameSync(`${px.file}.tmp`, px.file);
      await waitFor('the watch reload', () => audits(px, from).length >= 1, 5_000);
      await sleep(1_000); // the stat poll sees the new inode too, and the unchanged file is not audited again
      const lines = audits(px, from);
      assert.equal(lines.length, 1, JSON.stringify(lines));
      assert.deepEqual([lines[0]!.source, lines[0]!.result, lines[0]!.oldHash, lines[0]!.newHash], ['watch', 'success', before, sha256(text)]);
      assert.equal(lines[0]!.client, undefined);
    } finally {
      w.close();
    }
  });
});

describe('breakwater validate and the token', () => {
  it('reports the admin block and where the token comes from, never the token', () => {
    const text = `version: 1\nadmin: { address: 0.0.0.0:9901, token: "\${BW_TOKEN}" }\nlisteners: [{ name: l, address: 127.0.0.1:0, upstream: u }]\nupstreams: { u: { url: http://127.0.0.1:1 } }\n`;
    const r = loadConfigText(text, 'v.yaml', { BW_TOKEN: TOKEN });
    assert.ok(r.ok);
    const out = describeConfig(r.config);
    assert.match(out, /admin {6}0\.0\.0\.0:9901; token set \(from \$BW_TOKEN\); required on every endpoint but \/healthz, \/readyz, \/metrics/);
    assert.match(out, /audit {6}config changes and admin actions/);
    assert.ok(!out.includes(TOKEN));
    const none = loadConfigText(text.replace(', token: "${BW_TOKEN}"', '').replace('0.0.0.0', '127.0.0.1'), 'v.yaml', {});
    assert.ok(none.ok);
    assert.match(describeConfig(none.config), /admin {6}127\.0\.0\.1:9901; no token \(loopback only\)/);
  });
});

describe('audit lines and log.level', () => {
  it('are written even when log.level silences info lines', async () => {
    const up = await startUpstream({ status: 200, body: 'ok' });
    const px = await startProxy(
      `version: 1\nadmin: { address: 127.0.0.1:0 }\nlog: { level: error }\nlisteners: [{ name: l, address: 127.0.0.1:0, upstream: u }]\nupstreams: { u: { url: "http://127.0.0.1:${up.port}", circuitBreaker: {} } }\n`,
    );
    try {
      assert.equal((await request(`${px.adminUrl}/upstreams/u/circuit`, { method: 'POST', body: '{"state":"open"}' })).status, 200);
      await waitFor('the admin line', () => px.logs.some((l) => l.msg === 'admin_action'), 5_000);
      assert.deepEqual(
        px.logs.map((l) => l.msg),
        ['config_change', 'admin_action'],
        'the audit lines, and nothing below error',
      );
    } finally {
      await px.close();
      await up.close();
    }
  });
});

describe('audit.file: the audit log in a file of its own', () => {
  let up: Upstream;
  let dir: string;
  before(async () => {
    up = await startUpstream({ status: 200, body: 'ok' });
    dir = mkdtempSync(path.join(tmpdir(), 'bw-audit-file-'));
  });
  after(async () => {
    await up.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const cfg = (file: string | null, prefix = '/a/') =>
    `version: 1\nadmin: { address: 127.0.0.1:0 }\n${file === null ? '' : `audit: { file: ${JSON.stringify(file)} }\n`}listeners:\n  - name: l\n    address: 127.0.0.1:0\n    routes: [{ name: r, match: { pathPrefix: ${prefix} }, upstream: u }]\nupstreams: { u: { url: "http://127.0.0.1:${up.port}", circuitBreaker: {} } }\n`;
  const linesOf = (file: string): LogLine[] =>
    existsSync(file)
      ? readFileSync(file, 'utf8')
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => JSON.parse(l) as LogLine)
      : [];

  it('appends every audit line there (mode 0600), none on the log stream; reopens on each reload request; a reload that cannot open the new one fails', async () => {
    const file = path.join(dir, 'audit.log');
    const px = await startProxy(cfg(file));
    try {
      assert.equal(statSync(file).mode & 0o777, 0o600);
      await request(`${px.adminUrl}/upstreams/u/circuit`, { method: 'POST', body: '{"state":"auto"}' });
      await waitFor('the admin line in the file', () => linesOf(file).length >= 2, 5_000);
      assert.deepEqual(linesOf(file).map((l) => [l.msg, l.audit]), [['config_change', true], ['admin_action', true]]);
      assert.ok(!px.logs.some((l) => l.audit === true), 'nothing audited on the log stream');

      // A logrotate-style rename, then SIGHUP: the next line is in a new file at the configured path.
      renameSync(file, `${file}.1`);
      assert.equal((await px.proxy.reload('SIGHUP')).result, 'unchanged');
      assert.deepEqual(linesOf(file).map((l) => [l.msg, l.source, l.result]), [['config_change', 'SIGHUP', 'unchanged']]);
      assert.equal(linesOf(`${file}.1`).length, 2, 'the rotated file keeps what it had');

      // A new path whose directory does not exist: the reload fails, nothing changes, the line goes to the open file.
      px.write(cfg(path.join(dir, 'missing', 'audit.log'), '/b/'));
      const bad = await px.proxy.reload('SIGHUP');
      assert.equal(bad.result, 'failure');
      assert.match(bad.errors.join('\n'), /cannot open the audit file .*missing.*its directory does not exist/);
      assert.equal((await request(`${px.url('l')}/a/x`)).status, 200, 'the old routes keep serving');
      assert.deepEqual(linesOf(file).at(-1)?.result, 'failure');

      // Back to the log stream: the line of the reload that drops audit.file is already there.
      px.write(cfg(null, '/c/'));
      assert.equal((await px.proxy.reload('SIGHUP')).result, 'success');
      const onStream = px.logs.filter((l) => l.audit === true);
      assert.deepEqual(onStream.map((l) => [l.msg, l.result, (l.changes as { settings: string[] }).settings]), [['config_change', 'success', ['audit']]]);
    } finally {
      await px.close();
    }
  });

  it('refuses to start when the file cannot be opened, leaving nothing bound', async () => {
    const text = cfg(path.join(dir, 'nope', 'audit.log'));
    const loaded = loadConfigText(text, path.join(dir, 'breakwater.yaml'), {});
    assert.ok(loaded.ok);
    await assert.rejects(Proxy.start(loaded.config, { logDestination: new Writable({ write: (_c, _e, cb) => cb() }), defaultMetrics: false }), (err: Error) => {
      assert.equal(err.name, 'AuditFileError');
      assert.match(err.message, /audit\.file/);
      return true;
    });
  });

  it('is relative to the config file, and validate names it', () => {
    const loaded = loadConfigText(cfg('logs/audit.log'), path.join(dir, 'breakwater.yaml'), {});
    assert.ok(loaded.ok);
    assert.equal(loaded.config.audit.file, path.join(dir, 'logs', 'audit.log'));
    assert.match(describeConfig(loaded.config), new RegExp(`audit {6}config changes and admin actions as audit: true lines appended to ${path.join(dir, 'logs', 'audit.log').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, reopened on every reload`));
  });
});
