import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { json, rawRequest, request } from '../../helpers/http.ts';
import { refusedPort, startUpstream } from '../../helpers/upstream.ts';
import type { Upstream } from '../../helpers/upstream.ts';
import { assertNoLeaks, snapshotHandles } from '../../helpers/leaks.ts';

let baseline: Map<string, number>;
let up: Upstream;
before(async () => {
  baseline = snapshotHandles();
  up = await startUpstream();
});
after(async () => {
  await up.close();
  await assertNoLeaks(baseline);
});

test('request sends method, headers and body and returns status, headers and body', async () => {
  up.setScript({ echo: true });
  const reply = await request(`${up.origin}/x`, { method: 'PATCH', headers: { 'x-a': '1' }, body: Buffer.from('é') });
  assert.equal(reply.status, 200);
  assert.equal(reply.body, 'é');
  assert.equal(reply.headers['x-echo-method'], 'PATCH');
  assert.ok(reply.rawHeaders.includes('x-echo-url'));
  assert.equal(up.requests.at(-1)?.headers['content-length'], '2');
});

test('request uses a fresh connection each time unless an agent is given', async () => {
  up.reset();
  up.setScript({});
  await request(up.origin);
  await request(up.origin);
  assert.equal(up.connections, 2);
  assert.equal(up.requests.at(-1)?.headers.connection, 'close');
});

test('request rejects after timeoutMs when no answer comes', async () => {
  up.setScript({ hang: true });
  const t0 = performance.now();
  await assert.rejects(request(up.origin, { timeoutMs: 150 }), /timed out after 150ms/);
  assert.ok(performance.now() - t0 >= 140);
});

test('request rejects when the connection is refused', async () => {
  await assert.rejects(request(`http://127.0.0.1:${await refusedPort()}/`), { code: 'ECONNREFUSED' });
});

test('rawRequest collects the answer until the server closes the connection', async () => {
  up.setScript({ status: 204 });
  const res = await rawRequest(up.port, 'GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
  assert.equal(res.closed, true);
  assert.match(res.raw, /^HTTP\/1\.1 204 No Content\r\n/);
});

test('rawRequest reports closed: false when the server keeps the connection open past timeoutMs', async () => {
  up.setScript({ body: 'kept' });
  const res = await rawRequest(up.port, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n', { timeoutMs: 300 });
  assert.equal(res.closed, false);
  assert.match(res.raw, /\r\n\r\nkept$/);
});

test('rawRequest shows the server\'s answer to a malformed request', async () => {
  const res = await rawRequest(up.port, 'NOT HTTP AT ALL\r\n\r\n');
  assert.equal(res.closed, true);
  assert.match(res.raw, /^HTTP\/1\.1 400 /);
});

test('json parses a JSON body and names status and body when it is not JSON', () => {
  assert.deepEqual(json({ status: 200, headers: {}, rawHeaders: [], body: '{"a":[1]}' }), { a: [1] });
  assert.throws(() => json({ status: 502, headers: {}, rawHeaders: [], body: '<html>' }), /status 502: <html>/);
});
