import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { failure } from '../../../src/errors.ts';
import { respond } from '../../../src/http/respond.ts';
import { Exchange } from '../../../src/pipeline/exchange.ts';
import type { Reply } from '../../../src/pipeline/handler.ts';
import { request } from '../../helpers/http.ts';

/** The rescue point against a real ServerResponse: each request path picks the reply to render. */
describe('the rescue point (http/respond.ts)', () => {
  let server: http.Server;
  let base: string;
  const replies = new Map<string, Reply>();

  before(async () => {
    server = http.createServer((req, res) => {
      const ex = new Exchange(req, res, 'l', 'rid-1', req.method ?? 'GET', req.url ?? '/', 'h');
      ex.route = 'r';
      ex.upstream = 'u';
      respond(ex, replies.get(req.url ?? '/')!);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });

  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it('renders a failure as SPEC §4.7 says: status, code header, JSON body naming route, upstream and request id', async () => {
    replies.set('/f', failure('bulkhead_full'));
    const r = await request(`${base}/f`);
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-breakwater-error'], 'bulkhead_full');
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['x-request-id'], 'rid-1');
    assert.deepEqual(JSON.parse(r.body), { error: 'bulkhead_full', message: 'too many concurrent requests to the upstream', upstream: 'u', route: 'r', requestId: 'rid-1' });
    assert.equal(r.headers['retry-after'], undefined);
  });

  it('adds Retry-After in whole seconds, rounded up, for rate_limited and circuit_open', async () => {
    replies.set('/rl', failure('rate_limited', 1_200));
    replies.set('/co', failure('circuit_open', 0));
    assert.equal((await request(`${base}/rl`)).headers['retry-after'], '2');
    assert.equal((await request(`${base}/co`)).headers['retry-after'], '1');
  });

  it('closes the connection after a failure that says so', async () => {
    replies.set('/close', failure('request_too_large', 0, true));
    const r = await request(`${base}/close`);
    assert.equal(r.status, 413);
    assert.equal(r.headers.connection, 'close');
  });

  it('serves a static fallback with x-breakwater-fallback: response and an exact length', async () => {
    replies.set('/s', { type: 'static', status: 503, headers: { 'content-type': 'application/json' }, body: '{"degraded":true}' });
    const r = await request(`${base}/s`);
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-breakwater-fallback'], 'response');
    assert.equal(r.headers['content-length'], '17');
    assert.equal(r.body, '{"degraded":true}');
  });

  it('serves a stored response: a Buffer body, repeated headers, its own fallback header or none, no length on a 204', async () => {
    replies.set('/stale', { type: 'static', status: 200, headers: { link: ['</a>', '</b>'], age: '3' }, body: Buffer.from('stored'), fallback: 'cache' });
    replies.set('/fresh', { type: 'static', status: 200, headers: {}, body: Buffer.from('fresh'), fallback: null });
    replies.set('/empty', { type: 'static', status: 204, headers: {}, body: Buffer.alloc(0), fallback: 'cache' });
    const stale = await request(`${base}/stale`);
    assert.equal(stale.body, 'stored');
    assert.equal(stale.headers['x-breakwater-fallback'], 'cache');
    assert.equal(stale.headers['content-length'], '6');
    assert.equal(stale.headers.link, '</a>, </b>');
    assert.equal(stale.headers.age, '3');
    const fresh = await request(`${base}/fresh`);
    assert.equal(fresh.body, 'fresh');
    assert.equal(fresh.headers['x-breakwater-fallback'], undefined);
    const empty = await request(`${base}/empty`);
    assert.equal(empty.status, 204);
    assert.equal(empty.headers['content-length'], undefined);
    const head = await request(`${base}/stale`, { method: 'HEAD' });
    assert.equal(head.headers['content-length'], '6', 'a HEAD says how long the GET would be');
    assert.equal(head.body, '');
  });
});
