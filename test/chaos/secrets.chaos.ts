/**
 * Secrets never leak. A config injects credentials from the environment
 * (`${API_TOKEN}`, `${API_KEY}` in `requestHeaders.set`); clients send their
 * own `authorization`, `cookie`, `proxy-authorization` and a secret in the
 * query string. After a mixed run — successes, upstream failures, every kind
 * of generated error, malformed requests, valid and invalid reloads (one of
 * them with a secret interpolated into a field that rejects it) — no secret
 * may appear in any log line, any admin answer, or any generated response.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { rawRequest } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { refusedPort, startUpstream, type Upstream } from '../helpers/upstream.ts';
import { admin, drive, one } from './lib.ts';

const ENV = {
  API_TOKEN: 'tok-SECRET-7f3a9e',
  API_KEY: 'key-SECRET-b21c44',
  NEW_TOKEN: 'tok-SECRET-rotated-5d0e',
};
const CLIENT = {
  authorization: 'Bearer CLIENT-AUTHZ-MARKER-91',
  cookie: 'session=COOKIE-MARKER-42; theme=dark',
  'proxy-authorization': 'Basic PROXY-AUTHZ-MARKER-17',
  'user-agent': 'chaos-client/1',
};
const QUERY_SECRET = 'QUERY-MARKER-3344';
const SECRETS = [ENV.API_TOKEN, ENV.API_KEY, ENV.NEW_TOKEN, 'CLIENT-AUTHZ-MARKER-91', 'COOKIE-MARKER-42', 'PROXY-AUTHZ-MARKER-17', QUERY_SECRET];

function config(upOrigin: string, deadOrigin: string, tokenVar: string, extra = ''): string {
  return `
version: 1
admin: { address: 127.0.0.1:0 }
log: { level: debug, includeQuery: false, headers: [user-agent, x-trace-me] }
listeners:
  - name: app
    address: 127.0.0.1:0
    limits: { headerSize: 2KiB, bodySize: 4KiB }
    routes:
      - { name: api, match: { pathPrefix: /api/ }, upstream: api }
      - { name: limited, match: { pathPrefix: /limited/ }, upstream: limited }
      - { name: broken, match: { pathPrefix: /broken/ }, upstream: broken }
upstreams:
  api:
    url: ${upOrigin}
    requestHeaders:
      set: { authorization: "Bearer \${${tokenVar}}", x-api-key: "\${API_KEY}" }
    timeout: { perTry: 300ms, total: 700ms }
    retry: { maxRetries: 1, backoff: { strategy: immediate } }
    circuitBreaker: { consecutiveFailures: 4, openDuration: 300ms }
  limited:
    url: ${upOrigin}
    requestHeaders: { set: { x-api-key: "\${API_KEY}" } }
    rateLimit: { rate: 5/s, burst: 2 }
  broken:
    url: ${deadOrigin}
    requestHeaders: { set: { authorization: "Bearer \${${tokenVar}}" } }
    retry: { maxRetries: 0 }
${extra}`;
}

describe('secrets never leak', () => {
  let up: Upstream;
  let px: TestProxy;
  let dead: string;
  const baseline = snapshotHandles();
  /** Every generated (x-breakwater-error) answer: status, headers and body as text. */
  const generated: string[] = [];

  before(async () => {
    up = await startUpstream((req) => {
      if (req.url.startsWith('/api/fail')) return { status: 503, body: 'unavailable' };
      if (req.url.startsWith('/api/reset')) return { reset: 'before-headers' };
      if (req.url.startsWith('/api/hang')) return { hang: true };
      return { status: 200, body: 'fine' };
    });
    dead = `http://127.0.0.1:${await refusedPort()}`;
    px = await startProxy(config(up.origin, dead, 'API_TOKEN'), ENV);
  });

  after(async () => {
    await px?.close();
    await up?.close();
    await assertNoLeaks(baseline, { settleMs: 3000 });
  });

  it('keeps every secret out of logs, admin answers and generated responses through a mixed run', async (t) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const paths = [
      `/api/ok?token=${QUERY_SECRET}`,
      `/api/fail?token=${QUERY_SECRET}`,
      '/api/reset',
      '/api/hang',
      `/limited/x?token=${QUERY_SECRET}`,
      '/broken/x',
      `/nowhere?token=${QUERY_SECRET}`,
    ];
    const record = (o: { status: number; headers: http.IncomingHttpHeaders; body: string }): void => {
      if (o.headers['x-breakwater-error'] !== undefined) generated.push(`${o.status} ${JSON.stringify(o.headers)} ${o.body}`);
    };
    const run = async (n: number): Promise<void> => {
      const outcomes = await drive({
        url: px.url('app'),
        requests: n,
        concurrency: 8,
        agent,
        make: (i) => ({
          method: i % 4 === 1 ? 'POST' : 'GET',
          path: paths[i % paths.length]!,
          headers: CLIENT,
          ...(i % 4 === 1 ? { body: `secret-body=${ENV.API_KEY}` } : {}),
        }),
      });
      outcomes.forEach(record);
    };

    await run(70);
    // A valid reload that rotates the token, an invalid one that puts a secret
    // into a field that must reject it, an invalid one naming a missing variable.
    px.write(config(up.origin, dead, 'NEW_TOKEN'));
    assert.equal((await px.proxy.reload('chaos')).result, 'success');
    await run(35);
    px.write(config(up.origin, dead, 'NEW_TOKEN').replace('timeout: { perTry: 300ms, total: 700ms }', 'timeout: { perTry: 300ms, total: "${API_TOKEN}" }'));
    assert.equal((await px.proxy.reload('chaos')).result, 'failure', 'a secret as a duration');
    px.write(config(up.origin, dead, 'NEW_TOKEN').replace('url: ${dead}'.replace('${dead}', dead), 'url: "${API_KEY}"'));
    assert.equal((await px.proxy.reload('chaos')).result, 'failure', 'a secret as a url');
    px.write(config(up.origin, dead, 'NEW_TOKEN').replace('rateLimit: { rate: 5/s, burst: 2 }', 'rateLimit: { rate: 5/s, burst: "${API_KEY}" }'));
    assert.equal((await px.proxy.reload('chaos')).result, 'failure', 'a secret as a number');
    px.write(config(up.origin, dead, 'NEW_TOKEN', `  extra:\n    url: http://127.0.0.1:1\n    requestHeaders: { set: { x-k: "\${NOT_SET_ANYWHERE}" } }\n`));
    assert.equal((await px.proxy.reload('chaos')).result, 'failure', 'a missing variable');
    await run(35);

    // Malformed and oversized requests carrying secrets: 431, 400, 413, 405.
    const secretHead = `authorization: ${CLIENT.authorization}\r\ncookie: ${CLIENT.cookie}\r\nproxy-authorization: ${CLIENT['proxy-authorization']}\r\n`;
    const raws = [
      `GET /api/ok?token=${QUERY_SECRET} HTTP/1.1\r\nHost: a\r\n${secretHead}X-Pad: ${'p'.repeat(3000)}\r\n\r\n`,
      `POST /api/ok HTTP/1.1\r\nHost: a\r\n${secretHead}Transfer-Encoding: chunked\r\n\r\nzz\r\n`,
      `POST /api/ok HTTP/1.1\r\nHost: a\r\n${secretHead}Content-Length: 5000\r\n\r\n${ENV.API_KEY}`,
      `CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\n${secretHead}\r\n`,
      `GET /api/ok HTTP/1.1\r\nHost: a\r\n${secretHead}Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n`,
    ];
    const rawAnswers: string[] = [];
    for (const b of raws) rawAnswers.push((await rawRequest(px.port('app'), b, { timeoutMs: 1500 })).raw);

    // Admin answers, after everything.
    const adminAnswers: Record<string, string> = {};
    for (const p of ['/config', '/upstreams', '/metrics', '/healthz', '/readyz']) adminAnswers[p] = (await admin(px, p)).body;
    const forced = await one(px.adminUrl, { method: 'POST', path: '/upstreams/api/circuit', body: '{"state":"auto"}' }, 0, false, 3000);
    adminAnswers['POST circuit'] = forced.body;
    agent.destroy();

    // The run did exercise what it claims to.
    const codes = new Set(generated.map((g) => /"error":"([a-z_]+)"/.exec(g)?.[1]));
    t.diagnostic(`generated codes seen: ${[...codes].sort().join(', ')}; ${px.logs.length} log lines; ${rawAnswers.length} raw answers`);
    for (const c of ['no_route', 'rate_limited', 'connect_failure', 'upstream_reset', 'timeout', 'circuit_open']) assert.ok(codes.has(c), `the run produced ${c}`);
    assert.ok(px.logs.some((l) => l.msg === 'reload_failed'));

    // Where secrets must not be.
    const where: [string, string][] = [
      ...px.logs.map((l, i) => [`log line ${i} (${l.msg})`, JSON.stringify(l)] as [string, string]),
      ...Object.entries(adminAnswers).map(([p, body]) => [`admin ${p}`, body] as [string, string]),
      ...generated.map((g, i) => [`generated answer ${i}`, g] as [string, string]),
      ...rawAnswers.map((r, i) => [`raw answer ${i}`, r] as [string, string]),
    ];
    const leaks: string[] = [];
    for (const [name, text] of where) {
      for (const s of SECRETS) {
        if (!text.includes(s)) continue;
        const at = text.indexOf(s);
        leaks.push(`${s} in ${name}: …${text.slice(Math.max(0, at - 120), at + s.length + 40)}…`);
      }
    }
    assert.deepEqual(leaks.slice(0, 6), [], `${leaks.length} secret leaks`);

    // And where they must be: the injected credential goes upstream, the client's does not.
    const seen = up.requests.filter((r) => r.url.startsWith('/api/'));
    assert.ok(seen.length > 0);
    for (const r of seen) {
      assert.ok(r.headers.authorization === `Bearer ${ENV.API_TOKEN}` || r.headers.authorization === `Bearer ${ENV.NEW_TOKEN}`, `upstream got authorization ${String(r.headers.authorization)}`);
      assert.equal(r.headers['x-api-key'], ENV.API_KEY);
      assert.equal(r.headers['proxy-authorization'], undefined, 'proxy-authorization is hop-by-hop and never forwarded');
    }
  });
});
