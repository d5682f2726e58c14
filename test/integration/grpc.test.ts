/**
 * gRPC end to end with real peers (SPEC §10.1, §10.2): a @grpc/grpc-js
 * client talks to breakwater's h2c listener, breakwater talks to a grpc-js
 * server over h2c (`protocol: h2c`). All four call shapes, deadlines,
 * retries on UNAVAILABLE, the breaker, the rate limit, 4 MiB messages both
 * ways, cancellation, and grpcStatus in the access log — as a gRPC
 * application sees them, not as frames.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { json, request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type LogLine, type TestProxy } from '../helpers/proxy.ts';
import { waitFor } from '../helpers/wait.ts';

const PROTO = `
syntax = "proto3";
package bw.test;
message Msg { string text = 1; bytes blob = 2; int32 seq = 3; }
service Echo {
  rpc Unary (Msg) returns (Msg);
  rpc ServerStream (Msg) returns (stream Msg);
  rpc ClientStream (stream Msg) returns (Msg);
  rpc Bidi (stream Msg) returns (stream Msg);
}
`;

interface Msg {
  text?: string;
  blob?: Buffer;
  seq?: number;
}

const MiB = 1024 * 1024;
const MAX_MESSAGE = 8 * MiB;
const MESSAGE_LIMITS = { 'grpc.max_receive_message_length': MAX_MESSAGE, 'grpc.max_send_message_length': MAX_MESSAGE };
const sha = (b: Buffer | undefined): string => createHash('sha256').update(b ?? Buffer.alloc(0)).digest('hex');

type EchoClient = grpc.Client & {
  Unary(m: Msg, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, r?: Msg) => void): grpc.ClientUnaryCall;
  ServerStream(m: Msg, md?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientReadableStream<Msg>;
  ClientStream(md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, r?: Msg) => void): grpc.ClientWritableStream<Msg>;
  Bidi(md?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientDuplexStream<Msg, Msg>;
};

function unary(c: EchoClient, m: Msg, md = new grpc.Metadata(), opts: grpc.CallOptions = {}): Promise<Msg> {
  return new Promise((resolve, reject) => {
    c.Unary(m, md, { deadline: Date.now() + 15_000, ...opts }, (err, r) => (err ? reject(err) : resolve(r!)));
  });
}

function unaryError(c: EchoClient, m: Msg, md = new grpc.Metadata(), opts: grpc.CallOptions = {}): Promise<grpc.ServiceError> {
  return unary(c, m, md, opts).then(
    (r) => assert.fail(`expected an error, got ${JSON.stringify(r.text)}`),
    (err: grpc.ServiceError) => err,
  );
}

const meta = (pairs: Record<string, string>): grpc.Metadata => {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(pairs)) md.set(k, v);
  return md;
};

describe('gRPC through breakwater with grpc-js on both sides (h2c in, h2c out)', () => {
  const baseline = snapshotHandles();
  let dir: string;
  let server: grpc.Server;
  let px: TestProxy;
  let Echo: grpc.ServiceClientConstructor;
  const clients: grpc.Client[] = [];
  /** Calls the server saw, by method and by the `x-key` metadata. */
  const calls = new Map<string, number>();
  /** Server-side calls that were cancelled, by `x-key`. */
  const cancelled = new Set<string>();
  /** The deadline each call arrived with (grpc-js reads it from grpc-timeout), by `x-key`. */
  const deadlines = new Map<string, number>();

  const count = (key: string): number => calls.get(key) ?? 0;
  const seen = (call: grpc.ServerUnaryCall<Msg, Msg> | grpc.ServerReadableStream<Msg, Msg> | grpc.ServerWritableStream<Msg, Msg> | grpc.ServerDuplexStream<Msg, Msg>): string => {
    const key = String(call.metadata.get('x-key')[0] ?? '');
    calls.set(key, count(key) + 1);
    const d = call.getDeadline();
    deadlines.set(key, d instanceof Date ? d.getTime() : Number(d));
    (call as grpc.ServerUnaryCall<Msg, Msg>).on('cancelled', () => cancelled.add(key));
    return key;
  };

  const client = (listener: string, extra: grpc.ChannelOptions = {}): EchoClient => {
    const c = new Echo(`127.0.0.1:${px.port(listener)}`, grpc.credentials.createInsecure(), {
      ...MESSAGE_LIMITS,
      'grpc.enable_retries': 0, // breakwater's retries only
      ...extra,
    }) as unknown as EchoClient;
    clients.push(c);
    return c;
  };
  const logFor = async (key: string): Promise<LogLine> => {
    let line: LogLine | undefined;
    await waitFor(`access-log line for ${key}`, () => {
      line = px.requests().find((l) => (l['headers'] as Record<string, unknown> | undefined)?.['x-key'] === key);
      return line !== undefined;
    });
    return line!;
  };
  const upstreamState = async (name: string): Promise<{ bulkhead: { active: number; queued: number } }> =>
    json(await request(`${px.adminUrl}/upstreams`))[name];
  const inflight = async (): Promise<number> => {
    const text = (await request(`${px.adminUrl}/metrics`)).body.toString();
    let sum = 0;
    for (const m of text.matchAll(/^breakwater_inflight_requests\{[^}]*\} (\S+)$/gm)) sum += Number(m[1]);
    return sum;
  };

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bw-grpc-'));
    writeFileSync(path.join(dir, 'echo.proto'), PROTO);
    const def = protoLoader.loadSync(path.join(dir, 'echo.proto'), { keepCase: true, defaults: false });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { bw: { test: { Echo: grpc.ServiceClientConstructor } } };
    Echo = pkg.bw.test.Echo;

    server = new grpc.Server(MESSAGE_LIMITS);
    server.addService(Echo.service, {
      Unary(call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
        const key = seen(call);
        const text = call.request.text ?? '';
        if (text === 'hang') return; // answered by nobody: the deadline or breakwater's timeout ends it
        if (text === 'unavailable') return cb({ code: grpc.status.UNAVAILABLE, details: 'down for the test' });
        if (text === 'fail-once' && count(key) === 1) return cb({ code: grpc.status.UNAVAILABLE, details: 'first try fails' });
        cb(null, { text: `echo ${text}`, blob: call.request.blob, seq: count(key) });
      },
      ServerStream(call: grpc.ServerWritableStream<Msg, Msg>) {
        seen(call);
        const n = call.request.seq ?? 0;
        if (n > 0) {
          for (let i = 0; i < n; i++) call.write({ text: `${call.request.text} #${i}`, seq: i, blob: call.request.blob });
          call.end();
          return;
        }
        // seq 0: stream until the client cancels
        let i = 0;
        const timer = setInterval(() => call.write({ text: `tick ${i}`, seq: i++ }), 10);
        call.on('cancelled', () => clearInterval(timer));
        call.on('close', () => clearInterval(timer));
      },
      ClientStream(call: grpc.ServerReadableStream<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
        seen(call);
        const texts: string[] = [];
        const hash = createHash('sha256');
        call.on('data', (m: Msg) => {
          texts.push(m.text ?? '');
          hash.update(m.blob ?? Buffer.alloc(0));
        });
        call.on('end', () => cb(null, { text: texts.join(','), seq: texts.length, blob: Buffer.from(hash.digest('hex')) }));
      },
      Bidi(call: grpc.ServerDuplexStream<Msg, Msg>) {
        seen(call);
        call.on('data', (m: Msg) => call.write({ text: `re: ${m.text}`, seq: (m.seq ?? 0) * 2 }));
        call.on('end', () => call.end());
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const origin = `http://127.0.0.1:${port}`;

    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
log: { headers: [x-key] }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      # The bidi test runs on this route, which retries: a call whose first
      # message is not followed by its end streams through (not retried).
      - { name: bidi, match: { pathPrefix: /bw.test.Echo/Bidi }, upstream: echo }
      - { name: rest, upstream: echo }
  - { name: breaker, address: 127.0.0.1:0, upstream: brk }
  - { name: limited, address: 127.0.0.1:0, upstream: lim }
  - { name: short, address: 127.0.0.1:0, upstream: short }
upstreams:
  echo:
    url: ${origin}
    protocol: h2c
    timeout: { total: 10s, perTry: 10s }
    retry: { maxRetries: 2, on: [unavailable], backoff: { base: 10ms, max: 20ms } }
    bulkhead: { maxConcurrent: 20 }
  brk:
    url: ${origin}
    protocol: h2c
    retry: { maxRetries: 0 }
    circuitBreaker: { consecutiveFailures: 2, failOn: [unavailable], openDuration: 60s }
  lim:
    url: ${origin}
    protocol: h2c
    rateLimit: { rate: 1/m, burst: 1 }
  short:
    url: ${origin}
    protocol: h2c
    retry: { maxRetries: 0 }
    timeout: { total: 300ms }
`);
  });

  after(async () => {
    for (const c of clients) c.close();
    await px.close();
    await new Promise<void>((r) => server.tryShutdown(() => r()));
    server.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
    await assertNoLeaks(baseline, { settleMs: 5000 });
  });

  it('relays a unary call with its message intact, and logs grpcStatus 0 with status 200', async () => {
    const c = client('main');
    const r = await unary(c, { text: 'hello', blob: Buffer.from([0, 1, 2, 255]) }, meta({ 'x-key': 'unary-1' }));
    assert.equal(r.text, 'echo hello');
    assert.deepEqual([...r.blob!], [0, 1, 2, 255]);
    const line = await logFor('unary-1');
    assert.equal(line['status'], 200);
    assert.equal(line['grpcStatus'], 0);
    assert.equal(line['upstream'], 'echo');
  });

  it('relays a server-streaming call: every message, in order', async () => {
    const c = client('main');
    const got: Msg[] = [];
    const call = c.ServerStream({ text: 'part', seq: 25 }, meta({ 'x-key': 'ss-1' }));
    await new Promise<void>((resolve, reject) => {
      call.on('data', (m: Msg) => got.push(m));
      call.on('error', reject);
      call.on('end', resolve);
    });
    assert.deepEqual(got.map((m) => m.text), Array.from({ length: 25 }, (_, i) => `part #${i}`));
    assert.equal((await logFor('ss-1'))['grpcStatus'], 0);
  });

  it('relays a client-streaming call: the server reads every message the client wrote', async () => {
    const c = client('main');
    const blobs = Array.from({ length: 10 }, () => randomBytes(10_000));
    const r = await new Promise<Msg>((resolve, reject) => {
      const call = c.ClientStream(meta({ 'x-key': 'cs-1' }), { deadline: Date.now() + 15_000 }, (err, m) => (err ? reject(err) : resolve(m!)));
      blobs.forEach((blob, i) => call.write({ text: `m${i}`, blob }));
      call.end();
    });
    assert.equal(r.text, blobs.map((_, i) => `m${i}`).join(','));
    assert.equal(r.seq, 10);
    assert.equal(r.blob!.toString(), sha(Buffer.concat(blobs)));
  });

  it('relays a bidirectional stream on a route with retries: each answer arrives before the next message is sent', async () => {
    const c = client('main');
    const call = c.Bidi(meta({ 'x-key': 'bidi-1' }), { deadline: Date.now() + 15_000 });
    const answers: Msg[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      call.on('error', reject);
      call.on('end', resolve);
    });
    for (let i = 1; i <= 5; i++) {
      const next = new Promise<Msg>((resolve) => call.once('data', resolve));
      call.write({ text: `ping ${i}`, seq: i });
      // ping-pong: would wait for the deadline if either direction were held back
      answers.push(await Promise.race([next, ended.then(() => assert.fail('the call ended early'))]));
    }
    call.end();
    await ended;
    assert.deepEqual(answers.map((m) => [m.text, m.seq]), [1, 2, 3, 4, 5].map((i) => [`re: ping ${i}`, i * 2]));
  });

  it('carries 4 MiB messages both ways, with grpc-js message limits raised', async () => {
    const c = client('main');
    const blob = randomBytes(4 * MiB);
    const r = await unary(c, { text: 'big', blob }, meta({ 'x-key': 'big-1' }));
    assert.equal(r.blob!.length, blob.length);
    assert.equal(sha(r.blob), sha(blob));
    // and a stream of large messages from the server
    const got: Buffer[] = [];
    const call = c.ServerStream({ text: 'big', seq: 3, blob }, meta({ 'x-key': 'big-2' }));
    await new Promise<void>((resolve, reject) => {
      call.on('data', (m: Msg) => got.push(m.blob!));
      call.on('error', reject);
      call.on('end', resolve);
    });
    assert.equal(got.length, 3);
    for (const b of got) assert.equal(sha(b), sha(blob));
  });

  it('retries a trailers-only UNAVAILABLE per retry.on: [unavailable]: the client sees OK, the server saw 2 calls', async () => {
    const c = client('main');
    const r = await unary(c, { text: 'fail-once' }, meta({ 'x-key': 'retry-1' }));
    assert.equal(r.text, 'echo fail-once');
    assert.equal(r.seq, 2);
    assert.equal(count('retry-1'), 2);
    const line = await logFor('retry-1');
    assert.equal(line['grpcStatus'], 0);
    const tries = line['tries'] as { outcome: string; grpcStatus: number | null }[];
    assert.equal(tries.length, 2);
    assert.equal(tries[0]!.grpcStatus, 14);
  });

  it('passes the client deadline upstream as grpc-timeout: a hanging server ends in DEADLINE_EXCEEDED long before timeout.total, and the server sees the cancel', async () => {
    const c = client('main');
    const started = Date.now();
    const err = await unaryError(c, { text: 'hang' }, meta({ 'x-key': 'deadline-1' }), { deadline: Date.now() + 400 });
    assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms; timeout.total is 10 s`);
    const deadline = deadlines.get('deadline-1') ?? Infinity;
    assert.ok(deadline - started < 1000, `the server saw a deadline ${deadline - started} ms after the call started`);
    await waitFor('the server to see the call cancelled', () => cancelled.has('deadline-1'));
    await waitFor('the bulkhead slot to be free', async () => (await upstreamState('echo')).bulkhead.active === 0);
  });

  it("answers DEADLINE_EXCEEDED itself when the upstream's timeout.total expires on a hanging server", async () => {
    const c = client('short');
    const err = await unaryError(c, { text: 'hang' }, meta({ 'x-key': 'deadline-2' }));
    assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
    assert.match(err.details, /breakwater timeout/);
    const line = await logFor('deadline-2');
    assert.equal(line['status'], 200);
    assert.equal(line['error'], 'timeout');
    assert.equal(line['grpcStatus'], 4);
    await waitFor('the server to see the call cancelled', () => cancelled.has('deadline-2'));
  });

  it('opens the breaker on UNAVAILABLE per failOn; the open breaker answers UNAVAILABLE with a message, without calling the server', async () => {
    const c = client('breaker');
    for (let i = 0; i < 2; i++) {
      const err = await unaryError(c, { text: 'unavailable' }, meta({ 'x-key': 'brk' }));
      assert.equal(err.code, grpc.status.UNAVAILABLE);
      assert.equal(err.details, 'down for the test');
    }
    const err = await unaryError(c, { text: 'unavailable' }, meta({ 'x-key': 'brk-open' }));
    assert.equal(err.code, grpc.status.UNAVAILABLE);
    assert.match(err.details, /breakwater circuit_open/);
    assert.equal(count('brk'), 2);
    assert.equal(count('brk-open'), 0);
    const line = await logFor('brk-open');
    assert.equal(line['error'], 'circuit_open');
    assert.equal(line['grpcStatus'], 14);
  });

  it('answers RESOURCE_EXHAUSTED when the rate limit refuses a call', async () => {
    const c = client('limited');
    assert.equal((await unary(c, { text: 'first' }, meta({ 'x-key': 'rl-1' }))).text, 'echo first');
    const err = await unaryError(c, { text: 'second' }, meta({ 'x-key': 'rl-2' }));
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(err.details, /breakwater rate_limited/);
    assert.equal(count('rl-2'), 0);
    assert.equal((await logFor('rl-2'))['grpcStatus'], 8);
  });

  it('frees the bulkhead slot and cancels the upstream call when the client cancels a server stream', async () => {
    const c = client('main');
    const call = c.ServerStream({ text: 'forever', seq: 0 }, meta({ 'x-key': 'cancel-1' }));
    const errored = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    let n = 0;
    await new Promise<void>((resolve) => {
      call.on('data', () => {
        if (++n === 3) resolve();
      });
    });
    assert.equal((await upstreamState('echo')).bulkhead.active, 1);
    call.cancel();
    assert.equal((await errored).code, grpc.status.CANCELLED);
    await waitFor('the server to see the call cancelled', () => cancelled.has('cancel-1'));
    await waitFor('the bulkhead slot to be free', async () => (await upstreamState('echo')).bulkhead.active === 0);
    await waitFor('the inflight gauge to be 0', async () => (await inflight()) === 0);
    const line = await logFor('cancel-1');
    assert.equal(line['upstream'], 'echo');
    // and the listener still serves the next call
    assert.equal((await unary(c, { text: 'after' }, meta({ 'x-key': 'cancel-2' }))).text, 'echo after');
  });
});
