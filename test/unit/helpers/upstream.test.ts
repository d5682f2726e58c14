import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { refusedPort, startUpstream } from '../../helpers/upstream.ts';
import type { Upstream } from '../../helpers/upstream.ts';
import { rawRequest, request } from '../../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../../helpers/leaks.ts';

async function waitFor(cond: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** GET that records when each body chunk arrived and how the response ended. */
function timedGet(url: string): Promise<{ status: number; arrivals: number[]; body: string; error?: NodeJS.ErrnoException }> {
  return new Promise((resolve, reject) => {
    const arrivals: number[] = [];
    const chunks: Buffer[] = [];
    let started = false;
    let finishRef: (err: NodeJS.ErrnoException) => void = () => {};
    const req = http.get(url, { agent: false }, (res) => {
      started = true;
      let done = false;
      const finish = (error?: NodeJS.ErrnoException) => {
        if (done) return;
        done = true;
        resolve({ status: res.statusCode ?? 0, arrivals, body: Buffer.concat(chunks).toString(), ...(error ? { error } : {}) });
      };
      finishRef = finish;
      res.on('data', (c: Buffer) => {
        arrivals.push(performance.now());
        chunks.push(c);
      });
      res.on('error', finish);
      res.on('aborted', () => finish(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })));
      res.on('end', () => finish(res.complete ? undefined : Object.assign(new Error('incomplete'), { code: 'ECONNRESET' })));
    });
    // Socket errors go to the request even once the response has started.
    req.on('error', (err: NodeJS.ErrnoException) => (started ? finishRef(err) : reject(err)));
  });
}

let baseline: Map<string, number>;
before(() => {
  baseline = snapshotHandles();
});
after(async () => {
  await assertNoLeaks(baseline);
});

describe('scripted upstream', () => {
  let up: Upstream;
  before(async () => {
    up = await startUpstream();
  });
  after(async () => {
    await up.close();
  });

  test('an array script answers the n-th request with step n and repeats the last step', async () => {
    up.reset();
    up.setScript([{ status: 503, retryAfter: '1' }, { status: 502 }, { status: 200, body: 'ok' }]);
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await request(`${up.origin}/try/${i}`)).status);
    assert.deepEqual(statuses, [503, 502, 200, 200]);
    assert.deepEqual(up.requests.map((r) => r.url), ['/try/0', '/try/1', '/try/2', '/try/3']);
  });

  test('a step sets status, headers, Retry-After and a body sent with content-length', async () => {
    up.reset();
    up.setScript({ status: 429, headers: { 'x-one': 'a', 'x-many': ['b', 'c'] }, retryAfter: '7', body: 'slow down' });
    const reply = await request(`${up.origin}/`);
    assert.equal(reply.status, 429);
    assert.equal(reply.headers['x-one'], 'a');
    assert.equal(reply.headers['x-many'], 'b, c');
    assert.equal(reply.headers['retry-after'], '7');
    assert.equal(reply.headers['content-length'], '9');
    assert.equal(reply.body, 'slow down');
  });

  test('a function script sees the recorded request and its index', async () => {
    up.reset();
    up.setScript((req, index) => ({ status: 200, body: `${index}:${req.method}:${req.body.toString()}` }));
    assert.equal((await request(`${up.origin}/a`, { method: 'PUT', body: 'x' })).body, '0:PUT:x');
    assert.equal((await request(`${up.origin}/b`)).body, '1:GET:');
  });

  test('every request is recorded with its method, url, headers, raw headers, full body and arrival time', async () => {
    up.reset();
    up.setScript({});
    const before = Date.now();
    await request(`${up.origin}/rec?q=1`, { method: 'POST', headers: { 'X-Trace': 't1' }, body: 'hello body' });
    const [rec] = up.requests;
    assert.ok(rec);
    assert.equal(rec.method, 'POST');
    assert.equal(rec.url, '/rec?q=1');
    assert.equal(rec.headers['x-trace'], 't1');
    assert.ok(rec.rawHeaders.includes('X-Trace'));
    assert.equal(rec.body.toString(), 'hello body');
    assert.ok(rec.receivedAt >= before && rec.receivedAt <= Date.now());
  });

  test('delayMs holds the response headers back', async () => {
    up.reset();
    up.setScript({ delayMs: 200, body: 'late' });
    const t0 = performance.now();
    const reply = await request(`${up.origin}/`);
    assert.ok(performance.now() - t0 >= 190, 'answered too early');
    assert.equal(reply.body, 'late');
  });

  test('echo returns the request body and describes the request in headers', async () => {
    up.reset();
    up.setScript({ echo: true, status: 201 });
    const reply = await request(`${up.origin}/echo?x=1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-req': 'yes' },
      body: '{"a":1}',
    });
    assert.equal(reply.status, 201);
    assert.equal(reply.body, '{"a":1}');
    assert.equal(reply.headers['content-type'], 'application/json');
    assert.equal(reply.headers['x-echo-method'], 'POST');
    assert.equal(reply.headers['x-echo-url'], '/echo?x=1');
    const echoed = JSON.parse(String(reply.headers['x-echo-headers']));
    assert.equal(echoed['x-req'], 'yes');
    assert.equal(echoed['content-length'], '7');
  });

  test('slow chunks arrive spaced by chunkIntervalMs, with chunked encoding', async () => {
    up.reset();
    up.setScript({ chunks: ['one,', 'two,', 'three'], chunkIntervalMs: 150 });
    const got = await timedGet(`${up.origin}/slow`);
    assert.equal(got.error, undefined);
    assert.equal(got.body, 'one,two,three');
    assert.equal(got.arrivals.length, 3);
    const [a, b, c] = got.arrivals as [number, number, number];
    assert.ok(b - a >= 100 && c - b >= 100, `gaps ${b - a}ms, ${c - b}ms`);
    const raw = await rawRequest(up.port, 'GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    assert.match(raw.raw, /transfer-encoding: chunked/i);
  });

  test('reset before headers gives the client a socket error and no response', async () => {
    up.reset();
    up.setScript({ reset: 'before-headers' });
    await assert.rejects(request(`${up.origin}/`), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'ECONNRESET');
      return true;
    });
    assert.equal(up.requests.length, 1, 'the request is still recorded');
  });

  test('reset mid-body sends the head and part of the body, then cuts the connection', async () => {
    up.reset();
    up.setScript({ reset: 'mid-body', body: 'abcdefghij' });
    const got = await timedGet(`${up.origin}/`);
    assert.equal(got.status, 200);
    assert.equal(got.body, 'abcde');
    assert.ok(got.error, 'the response must end in an error');
    await assert.rejects(request(`${up.origin}/`));

    const raw = await rawRequest(up.port, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    assert.match(raw.raw, /^HTTP\/1\.1 200 /);
    assert.match(raw.raw, /content-length: 10/i);
    assert.ok(raw.raw.endsWith('\r\n\r\nabcde'), JSON.stringify(raw.raw));
    assert.equal(raw.closed, true);
  });

  test('reset mid-body with chunks sends all but the last chunk', async () => {
    up.reset();
    up.setScript({ reset: 'mid-body', chunks: ['a', 'b', 'c'], chunkIntervalMs: 20 });
    const got = await timedGet(`${up.origin}/`);
    assert.equal(got.status, 200);
    assert.equal(got.body, 'ab');
    assert.ok(got.error);
  });

  test('inFlight and maxInFlight count requests between arrival and response end', async () => {
    up.reset();
    up.setScript({ delayMs: 300 });
    const pending = [1, 2, 3].map(() => request(`${up.origin}/`));
    await waitFor(() => up.inFlight === 3, 'three requests in flight');
    await Promise.all(pending);
    await waitFor(() => up.inFlight === 0, 'no request in flight');
    assert.equal(up.maxInFlight, 3);
    assert.equal(up.connections, 3);
  });

  test('reset() clears records and counters and restarts the script', async () => {
    up.setScript([{ status: 500 }, { status: 200 }]);
    up.reset();
    assert.equal((await request(`${up.origin}/`)).status, 500);
    await waitFor(() => up.inFlight === 0, 'the response to end on the server');
    up.reset();
    assert.deepEqual(up.requests, []);
    assert.equal(up.connections, 0);
    assert.equal(up.maxInFlight, 0);
    assert.equal((await request(`${up.origin}/`)).status, 500);
  });
});

test('a hanging request stays open until close(), which frees every socket and the port', async () => {
  const local = snapshotHandles();
  const up = await startUpstream({ hang: true });
  const pending = request(`${up.origin}/`, { timeoutMs: 5000 });
  await waitFor(() => up.inFlight === 1, 'the request to arrive');
  await sleep(100);
  assert.equal(up.inFlight, 1, 'a hanging request is never answered');
  await up.close();
  await assert.rejects(pending, (err: NodeJS.ErrnoException) => err.code === 'ECONNRESET');
  assert.equal(up.inFlight, 0);
  await assertNoLeaks(local);
  await assert.rejects(request(up.origin), (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED');
});

test('close() cancels a pending delay and is safe to call twice', async () => {
  const local = snapshotHandles();
  const up = await startUpstream({ delayMs: 60_000 });
  const pending = request(`${up.origin}/`);
  await waitFor(() => up.requests.length === 1, 'the request to arrive');
  await Promise.all([up.close(), up.close()]);
  await assert.rejects(pending);
  await assertNoLeaks(local);
});

test('refusedPort gives a loopback port where connections are refused', async () => {
  const port = await refusedPort();
  assert.ok(port > 0);
  await assert.rejects(request(`http://127.0.0.1:${port}/`), (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED');
});
