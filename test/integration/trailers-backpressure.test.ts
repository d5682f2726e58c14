/**
 * A response whose trailers reach breakwater while its client is not
 * reading: the relay has paused the upstream (backpressure), so part of the
 * body waits in breakwater when the trailers come. The client must still get
 * the whole body, then the trailers — never the trailers with a body cut
 * short, which a gRPC client reads as a call that ended OK with a message
 * missing. The client is node's HTTP/2 client with a small stream window, so
 * breakwater can send it little before it reads; the upstreams say when
 * breakwater has everything (an h2c upstream: a PING after the trailers was
 * acknowledged; an HTTP/1.1 one: its chunked body and trailers are written),
 * and only then does the client start reading.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';

/**
 * More than the client's window and breakwater's write buffers take before
 * the relay pauses (about 68 KiB with node 24), and less than that plus one
 * upstream stream window (undici's 256 KiB), so that the upstream can send
 * all of it while the relay is paused: about half of it waits in breakwater.
 */
const BODY = 128 * 1024;
const CLIENT_WINDOW = 16 * 1024;

/** One gRPC length-prefixed message (uncompressed) of `n` bytes in all. */
function grpcMessage(n: number): Buffer {
  const b = Buffer.alloc(n, 0x61);
  b[0] = 0;
  b.writeUInt32BE(n - 5, 1);
  return b;
}
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

interface Reply {
  status: number;
  body: Buffer;
  trailers: http2.IncomingHttpHeaders;
}

describe('a response whose trailers arrive while the client is not reading', () => {
  const baseline = snapshotHandles();
  let h2up: http2.Http2Server;
  let h1up: http.Server;
  let px: TestProxy;
  const h2sessions = new Set<http2.ServerHttp2Session>();
  /** Resolved by an upstream once breakwater has the whole response. */
  let delivered: () => void = () => {};

  before(async () => {
    h2up = http2.createServer();
    h2up.on('session', (s) => {
      h2sessions.add(s);
      s.on('close', () => h2sessions.delete(s));
    });
    h2up.on('stream', (stream) => {
      stream.on('error', () => {});
      stream.resume();
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => {
        stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': '' });
        // Frames are read in order: the PING's ACK means breakwater read the trailers.
        const done = delivered;
        stream.session!.ping(() => done());
      });
      stream.end(grpcMessage(BODY));
    });
    h1up = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream', trailer: 'x-checksum' });
      res.write(Buffer.alloc(BODY, 0x62));
      res.addTrailers({ 'x-checksum': sha(Buffer.alloc(BODY, 0x62)) });
      // HTTP/1.1 has no frames to overtake: written is enough, breakwater's parser reads in order.
      const done = delivered;
      res.end(() => done());
    });
    await new Promise<void>((r) => h2up.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => h1up.listen(0, '127.0.0.1', r));
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: grpc, address: 127.0.0.1:0, upstream: h2 }
  - { name: plain, address: 127.0.0.1:0, upstream: h1 }
upstreams:
  h2:
    url: http://127.0.0.1:${(h2up.address() as AddressInfo).port}
    protocol: h2c
    retry: { maxRetries: 0 }
  h1:
    url: http://127.0.0.1:${(h1up.address() as AddressInfo).port}
    retry: { maxRetries: 0 }
`);
  });

  after(async () => {
    await px?.close();
    for (const s of h2sessions) s.destroy();
    await new Promise<void>((r) => h2up.close(() => r()));
    h1up.closeAllConnections();
    await new Promise<void>((r) => h1up.close(() => r()));
    await assertNoLeaks(baseline);
  });

  /** A POST from a client that reads nothing until the upstream has delivered everything to breakwater. */
  async function slowCall(listener: string, headers: http2.OutgoingHttpHeaders): Promise<Reply> {
    const upstreamDone = new Promise<void>((r) => (delivered = r));
    const session = http2.connect(px.url(listener), { settings: { initialWindowSize: CLIENT_WINDOW } });
    try {
      const req = session.request({ ':method': 'POST', ':path': '/svc/Big', ...headers });
      req.on('error', () => {});
      const head = new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        req.once('response', resolve);
        req.once('error', reject);
      });
      req.pause();
      req.end(grpcMessage(16));
      const status = Number((await head)[':status']);
      await upstreamDone;
      const chunks: Buffer[] = [];
      let trailers: http2.IncomingHttpHeaders = {};
      req.on('trailers', (t) => (trailers = t));
      req.on('data', (c: Buffer) => chunks.push(c));
      const ended = new Promise<void>((resolve, reject) => {
        req.once('end', resolve);
        req.once('error', reject);
      });
      req.resume();
      await ended;
      return { status, body: Buffer.concat(chunks), trailers };
    } finally {
      session.close();
    }
  }

  it('relays the whole gRPC body from an h2c upstream, then its trailers', { timeout: 20_000 }, async () => {
    const r = await slowCall('grpc', { 'content-type': 'application/grpc', te: 'trailers' });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, BODY);
    assert.equal(sha(r.body), sha(grpcMessage(BODY)));
    assert.equal(r.trailers['grpc-status'], '0');
  });

  it('relays the whole chunked body from an HTTP/1.1 upstream, then its trailers', { timeout: 20_000 }, async () => {
    const r = await slowCall('plain', { te: 'trailers' });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, BODY);
    assert.equal(r.trailers['x-checksum'], sha(r.body));
  });
});
